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
from test_team_spend import hung_turn_rules, spent_tokens

from orchestrator.scripted_model import tool_results

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
    # Killed between turns: the last turn's figures are in the registry (the reply goes
    # out before the turn is recorded).
    done = 2 + turns_before_kill
    t.wait_for(lambda: agents_by_name(t)["a"]["turns"] == done, 30, "the turns recorded")
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


def test_a_turn_under_way_when_the_supervisor_is_killed_is_charged_by_the_next_up(
    team: TeamFactory,
) -> None:
    """The turn's first request (30,100 tokens) is answered, the second hangs, the
    supervisor is killed: the next `up` charges the first (an estimate, cause
    supervisor_died; 30,001 tokens as the stream had counted them) and the redelivered
    turn (30,111). Before: only the redelivery was
    in the ledger; each supervisor killed mid-turn spent unseen by the budgets."""
    t = team(hung_turn_rules(120), {"alice": {}})
    t.up()
    t.wait_ready("alice")
    cli_pid = t.agent_pid("alice")
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    t.signal(signal.SIGKILL)
    t.wait_exit(10)
    t.proc = None
    t.wait_for(lambda: cli_pid is None or not _alive(cli_pid), 30, "the orphaned claude gone")
    assert spent_tokens(t) == 0
    t.up()
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    # The first request as far as the stream had counted it (its output at its message).
    t.wait_for(lambda: spent_tokens(t) >= 30_001 + 30_111, 30, "both attempts in the ledger")
    assert spent_tokens(t) <= 30_100 + 30_111
    (spend,) = t.log_events("spend")
    assert (spend["cause"], spend["cut_off"], spend["cost_estimated"]) == (
        "supervisor_died",
        "session_died",
        True,
    )
    assert spend["input_tokens"] == 30_000
