"""`top` shows spend and context as they were recorded, in a real terminal (tmux) over a
real team (real claude CLI, scripted model whose rules set the usage): BUD%, CTX% and
COST match `ps --json` and the ledger, and the state says why (`paused (budget)`); a
request whose body holds terminal escapes is drawn as text; the team going down and a
tiny terminal leave `top` running."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from tmux_screen import Terminal, row_of

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

TeamFactory = Callable[..., Team]
COLUMNS = ["AGENT", "STATE", "PID", "UP", "RST", "PEND", "IN-FLIGHT", "TURNS", "TOKENS", "COST"]
HOSTILE = "job \x1b]0;PWNED\x07 \x1b[2J"


def test_top_shows_spend_and_context_as_recorded(team: TeamFactory) -> None:
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": r"job",
                "text": "done",
                "usage": {"input_tokens": 3900, "output_tokens": 100},
            },
        ],
        {"alice": {"budget": {"tokens": 10_000, "per": "run"}, "context_window": 10_000}},
    )
    t.up()
    t.wait_ready("alice")
    for _ in range(3):  # 12,000 of 10,000 tokens: paused after the third
        assert t.ask("alice", HOSTILE) == "done"
    t.wait_for(lambda: t.states().get("alice") == "paused", what="alice paused")
    ps = next(a for a in json.loads(t.octy("ps", "--json").stdout)["agents"])
    with sqlite3.connect(t.db_path) as db:
        (ledger,) = db.execute("SELECT sum(usd) FROM spend WHERE agent = 'alice'").fetchone()
    assert ps["cost_usd"] == pytest.approx(ledger)
    env = {**t.env, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(t.folder, env, width=120, height=30)
    try:
        title = term.title()
        # the whole row (a frame drawn before the layout settled may be cut short)
        screen = term.wait(
            lambda s: (r := row_of(s, "alice"))[1:2] == ["paused"] and len(r) >= 15,
            "alice paused, her whole row",
        )
        row = row_of(screen, "alice")
        assert row[2] == "(budget)"  # why, beside the state
        del row[2]
        assert row[COLUMNS.index("COST")] == f"${ledger:.4f}"
        assert row[COLUMNS.index("COST") + 1] == "120"  # BUD%: 12,000 of 10,000 tokens
        assert row[COLUMNS.index("COST") + 2] == "39"  # CTX%: 3,900 of 10,000
        assert f"${ledger:.4f}" in screen.splitlines()[0]  # the team's cost
        assert "\\x1b]0;PWNED\\x07" in screen  # the body, escaped in the event pane
        assert term.title() == title  # never retitled

        t.stop()  # the team goes down under it
        screen = term.wait(lambda s: "supervisor NOT RUNNING" in s, "the team line says so")
        assert f"${ledger:.4f}" in screen.splitlines()[0][:100]  # its cost on 100 columns
        term.resize(20, 5)
        term.wait(lambda s: "alice" in s, "a row at 20x5")
        term.resize(120, 30)
        screen = term.wait(  # her whole row again: a frame of the resize may be cut short
            lambda s: (
                (r := row_of(s, "alice"))[1:2] == ["stopped"] and len(r) > COLUMNS.index("COST")
            ),
            "back at 120x30, her whole row",
        )
        assert row_of(screen, "alice")[COLUMNS.index("COST")] == f"${ledger:.4f}"
    finally:
        term.close()
