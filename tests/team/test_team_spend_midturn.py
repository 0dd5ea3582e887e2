"""A supervisor killed (kill -9) in the middle of a turn after earlier turns of the same
CLI run, then `up` again: the ledger holds exactly what the scripted model answered, the
earlier turns once (real claude CLI, scripted model)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from test_team_spend import hung_turn_rules, spent_tokens
from test_team_spend_crash import _alive

from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
QUICK = {"input_tokens": 10_000, "output_tokens": 1_000}


def test_a_turn_killed_after_two_turns_charges_the_earlier_turns_once(
    team: TeamFactory,
) -> None:
    """A turn, a clean stop (the CLI saves its figures: $0.06), `up`, two more turns
    ($0.18), a third whose first request (30,100 tokens) is answered and whose second
    hangs, kill -9 of the supervisor (and of the CLI), `up`. Measured on 2.1.332: the
    killed CLI saved nothing at its new prompts (the transcript's last `cost-state` is the
    clean stop's), the resumed one continued from $0.06, the figures it had resumed with,
    and the next `up` takes those as the baseline: the ledger holds each answered request
    once (the cut one as the stream had counted it, 30,001), the two earlier turns not
    again. Guards the rule should the CLI start saving at each prompt."""
    rules = [
        *hung_turn_rules(120),
        {"agent": agent_rule("alice"), "match": "quick", "text": "done", "usage": QUICK},
    ]
    t = team(rules, {"alice": {}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "quick zero") == "done"
    t.signal(signal.SIGTERM)
    assert t.wait_exit() == 0
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "quick one") == "done"
    assert t.ask("alice", "quick two") == "done"
    t.wait_for(lambda: spent_tokens(t) == 33_000, 30, "the three turns in the ledger")
    cli_pid = t.agent_pid("alice")
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    t.signal(signal.SIGKILL)
    t.wait_exit(10)
    t.proc = None
    t.wait_for(lambda: cli_pid is None or not _alive(cli_pid), 30, "the orphaned claude gone")
    t.up()
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "alice")) == 4 and e, 30, "turns")
    redelivered = turns[-1]
    assert (redelivered["input_tokens"], redelivered["output_tokens"]) == (30_010, 101)
    # Its own cost: what the running total grew by since the figures the CLI resumed with.
    assert redelivered["cost_usd"] == pytest.approx(
        redelivered["session_cost_usd"] - turns[0]["session_cost_usd"]
    )
    t.wait_for(lambda: spent_tokens(t) >= 33_000 + 30_001 + 30_111, 30, "all in the ledger")
    assert spent_tokens(t) <= 33_000 + 30_100 + 30_111
    (spend,) = t.log_events("spend")
    assert (spend["cause"], spend["cost_estimated"]) == ("supervisor_died", True)
