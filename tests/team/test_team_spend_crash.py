"""Spend across a supervisor killed with SIGKILL (its claude processes die with it, by
their parent-death signal) and `up` again: the resumed session's next turn is charged its
own cost and tokens, neither the session's earlier spend again nor nothing (real claude
CLI, scripted model reporting the same usage on every turn)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from test_team_ops import agents_by_name

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
USAGE = {"input_tokens": 10_000, "output_tokens": 1_000}


@pytest.mark.parametrize("turns_before_kill", [1, 2])
def test_a_supervisor_killed_then_up_again_charges_each_turn_once(
    team: TeamFactory, turns_before_kill: int
) -> None:
    """Two turns, a clean stop (the CLI saves its running total), `up`, one or two more
    turns, kill -9 of the supervisor (the CLI, killed too, saves nothing: resumed, it
    continues the total it resumed with), `up`, one turn. Every turn costs the same."""
    t = team([{"agent": agent_rule("a"), "text": "done", "usage": USAGE}], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "q0") == "done"
    assert t.ask("a", "q1") == "done"
    t.signal(signal.SIGTERM)
    assert t.wait_exit() == 0
    t.up()
    t.wait_ready("a")
    for i in range(turns_before_kill):
        assert t.ask("a", f"r{i}") == "done"
    cli_pid = t.agent_pid("a")
    t.signal(signal.SIGKILL)
    t.wait_exit(10)
    t.proc = None
    t.wait_for(lambda: cli_pid is None or not _alive(cli_pid), 30, "the orphaned claude gone")
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "after") == "done"
    count = 3 + turns_before_kill
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "a")) == count and e, 30, "turns")
    assert len({e["session_id"] for e in turns}) == 1  # one conversation, resumed twice
    share = turns[0]["cost_usd"]
    assert share > 0
    assert [e["cost_usd"] for e in turns] == pytest.approx([share] * count)
    assert [(e["input_tokens"], e["output_tokens"]) for e in turns] == [(10_000, 1_000)] * count
    row = t.wait_for(lambda: (r := agents_by_name(t)["a"])["turns"] == count and r, 30, "ps")
    assert row["cost_usd"] == pytest.approx(count * share)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
