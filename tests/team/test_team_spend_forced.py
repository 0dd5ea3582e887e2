"""Spend of a turn cut by a forced stop: the agent's claude SIGSTOPped mid-turn (its second
model request hangs), `restart` (`up --grace 1`): the grace, the interrupt and its wait run out,
the session is cancelled and the CLI's process group killed (real claude CLI, scripted
model)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from test_team_spend import cli_stopped, hung_turn_rules, spent_tokens

from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


@pytest.mark.parametrize("resumed", [False, True])
def test_a_turn_cut_by_a_forced_stop_is_charged_once(team: TeamFactory, resumed: bool) -> None:
    """A first turn (1,010 tokens) sets the session's figures (``resumed``: then a clean
    restart and another such turn, the cut turn's CLI a resumed one); the second turn's first
    request (30,100 tokens) is answered, the second hangs and the CLI is SIGSTOPped; the
    restart forces the session to end. The cut request is charged (an estimate, 30,001
    tokens as the stream counted them), the redelivered turn its own figure, nothing twice.
    Before: the tally was dropped with the session, only the redelivery was in the ledger."""
    first = {"agent": agent_rule("alice"), "match": "hello", "text": "hi"}
    first["usage"] = {"input_tokens": 1000, "output_tokens": 10}
    t = team([first, *hung_turn_rules(120)], {"alice": {}})
    t.up(extra=["--grace", "1"])  # what a restart gives a turn in progress
    t.wait_ready("alice")
    assert t.ask("alice", "hello") == "hi"
    if resumed:
        old = t.agent_pid("alice")
        t.octy("restart", "alice")
        t.wait_for(lambda: t.agent_pid("alice") not in (None, old), 90, "a resumed session")
        assert t.ask("alice", "hello") == "hi"
    before = 1010 * (1 + resumed)
    t.wait_for(lambda: spent_tokens(t) == before, 30, "the first turns in the ledger")
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    with cli_stopped(t):
        t.octy("restart", "alice")
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    done = 2 + resumed
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "alice")) == done and e, 30, "turns")
    turns = turns[-2:]  # the last before the cut, the redelivery
    assert turns[0]["session_id"] == turns[1]["session_id"]  # resumed, not afresh
    # The killed CLI saved nothing: resumed, it continued from the figures it had resumed
    # with (0, or the first turn's after the clean restart), not the last result's. The
    # redelivered turn is charged its own cost: neither the earlier turns again nor less
    # them (it was $0.11786, the last result's figures taken as the baseline).
    assert turns[1]["session_cost_usd"] == pytest.approx(0.0042 * resumed + 0.12206)
    assert turns[1]["cost_usd"] == pytest.approx(0.12206)
    assert (turns[1]["input_tokens"], turns[1]["output_tokens"]) == (30_010, 101)
    t.wait_for(lambda: spent_tokens(t) >= before + 30_001 + 30_111, 30, "all in the ledger")
    assert spent_tokens(t) <= before + 30_100 + 30_111
    (spend,) = t.log_events("spend")
    assert (spend["cut_off"], spend["cost_estimated"]) == ("forced", True)


def test_a_turn_cut_by_forcing_a_live_cli_is_charged_once(team: TeamFactory) -> None:
    """The same cut turn, its claude alive: a stop, then a second Ctrl-C forces it. The CLI
    exits at its stdin's end and saves its figures with the cut request in them (measured:
    the redelivered turn's running figures counted it again, 60,010 input tokens), so the
    next turn is taken less the estimate: over the two, the cut request once. Before the
    fix: the tally dropped; charged without moving the baseline: 91,222 tokens."""
    first = {"agent": agent_rule("alice"), "match": "hello", "text": "hi"}
    first["usage"] = {"input_tokens": 1000, "output_tokens": 10}
    t = team([first, *hung_turn_rules(120)], {"alice": {}})
    t.up(extra=["--grace", "30"])
    t.wait_ready("alice")
    assert t.ask("alice", "hello") == "hi"
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    t.signal(signal.SIGTERM)
    t.wait_for(lambda: t.log_events("stopping"), 30, "the stop under way")
    t.signal(signal.SIGINT)  # the second: forced
    assert t.wait_exit(60) == 0
    t.proc = None
    (spend,) = t.log_events("spend")
    assert (spend["cause"], spend["cut_off"], spend["cost_estimated"]) == ("forced", "forced", True)
    t.up()
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    t.wait_for(lambda: len(t.log_events("turn", "alice")) == 2, 30, "the redelivery counted")
    t.wait_for(lambda: spent_tokens(t) >= 1010 + 30_001 + 30_111, 30, "all in the ledger")
    assert spent_tokens(t) <= 1010 + 30_100 + 30_111
