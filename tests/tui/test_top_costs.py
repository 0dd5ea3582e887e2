"""`top`'s costs against the budgets' ledger (the `spend` table), with a real team (real
claude CLI, scripted model): an agent removed by a hot reload leaves the registry, not
the team's total, and when it comes back its cost is what the ledger says."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

from orchestrator.tui.data import TeamSource

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
USAGE = {"input_tokens": 10_000, "output_tokens": 1_000}


def ledger(t: Team) -> dict[str, float]:
    conn = sqlite3.connect(t.folder / "queue" / "team.db")
    try:
        return dict(conn.execute("SELECT agent, sum(usd) FROM spend GROUP BY agent").fetchall())
    finally:
        conn.close()


def test_costs_keep_an_agent_removed_by_reload(team: TeamFactory) -> None:
    t = team(
        [
            {"agent": agent_rule("a"), "text": "a here", "usage": USAGE},
            {"agent": agent_rule("b"), "text": "b here", "usage": USAGE},
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    assert t.ask("a", "one") == "a here"
    assert t.ask("b", "two") == "b here"
    spent = t.wait_for(lambda: len(s := ledger(t)) == 2 and s, what="both turns in the ledger")
    source = TeamSource.resolve(t.roster_path)
    try:
        team_total = t.wait_for(
            lambda: (c := source.snapshot().team.cost_usd) > 0 and c, what="a total"
        )
        assert team_total == pytest.approx(sum(spent.values()))

        t.write_roster({"a": {}})  # b removed: its registry row goes
        t.wait_for(lambda: "b" not in t.states(), what="b removed")
        snap = source.snapshot()
        assert [r.name for r in snap.agents] == ["a"]
        assert snap.team.cost_usd == pytest.approx(sum(spent.values()))  # b's turn still counts

        t.write_roster({"a": {}, "b": {}})  # b back: a new registry row, with no totals
        t.wait_ready("a", "b")
        snap = source.snapshot()
        b_row = next(r for r in snap.agents if r.name == "b")
        assert b_row.cost_usd == pytest.approx(spent["b"])
        assert snap.team.cost_usd == pytest.approx(sum(spent.values()))
    finally:
        source.close()
