"""A turn_timeout whose claude does not exit as it is closed (stuck: here SIGSTOPped),
so the close kills it (real claude CLI, scripted model)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from test_team_spend import (
    SUMMARY,
    cli_stopped,
    compaction_charged_then_next_turn,
    hung_compaction_rules,
    hung_turn_rules,
    spent_tokens,
)
from test_team_spend_sigterm import QUICK, _spent_usd

from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_a_turn_timeout_whose_claude_is_killed_charges_once(team: TeamFactory) -> None:
    """A turn, a clean restart (the CLI resumed with $0.06), a turn; then a turn whose
    first request (30,100 tokens) is answered and whose second hangs, the CLI
    SIGSTOPped: turn_timeout (3s), and the close, which it does not answer, kills it
    (SIGKILL after the SDK's SIGTERM): it saved nothing, and resumed it continues from
    the $0.06 it had resumed with. The cut request is charged its estimate, as before;
    the baseline was the last seen figures plus that estimate ($0.24002, as for a CLI
    that closed cleanly), so the redelivered turn's total ($0.18206) fell below it and
    was read as counted afresh: charged $0.18206, the first turn's $0.06 (11,000
    tokens) a second time. Now the close's kill puts the baseline back to the figures
    it resumed with, as any death by a signal does: the redelivery is charged its own
    $0.12206."""
    rules = [
        *hung_turn_rules(120),
        {"agent": agent_rule("alice"), "match": "quick", "text": "done", "usage": QUICK},
    ]
    t = team(rules, {"alice": {"turn_timeout": "3s"}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "quick zero") == "done"
    t.octy("restart", "alice")
    t.wait_ready("alice")
    assert t.ask("alice", "quick one") == "done"
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    with cli_stopped(t):
        pass  # the turn_timeout ends the session; the close kills the stuck CLI
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    ended = [(e["reason"], e["exit_code"]) for e in t.log_events("session_ended", "alice")]
    assert ended[-1] == ("turn_timeout", None)
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "alice")) == 3 and e, 30, "turns")
    assert [e["cost_usd"] for e in turns] == [0.06, 0.06, 0.12206]
    (spend,) = t.log_events("spend", "alice")
    assert (spend["cause"], spend["input_tokens"]) == ("turn_timeout", 30_000)
    # Every turn once: the cut request's estimate (30,001 of its 30,100: what the
    # stream had counted), the redelivered turn's 30,111.
    t.wait_for(lambda: spent_tokens(t) >= 22_000 + 30_001 + 30_111, 30, "all in the ledger")
    assert spent_tokens(t) == 22_000 + 30_001 + 30_111
    assert _spent_usd(t) == pytest.approx(0.06 + 0.06 + 0.12002 + 0.12206)


def test_a_compaction_timed_out_whose_claude_is_killed_is_charged(team: TeamFactory) -> None:
    """The first turn (1,000 tokens, $0.0056) fills the 1,000-token window; the summary
    request of the /compact that follows hangs, the CLI SIGSTOPped: the compaction times
    out (turn_timeout, 3s) and the close kills the CLI, which saved nothing. The summary
    request is charged as one cut by the CLI's death is (the context in use as input: 900
    tokens, $0.0036, an estimate): it was charged nothing (a CLI closed cleanly counts
    it in the figures it saves; a killed one saves none). The next turn, from the figures
    the CLI had resumed with: its own $0.0056."""
    t = team(
        hung_compaction_rules(),
        {"alice": {"context_window": 1000, "turn_timeout": "3s"}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.model.requests_matching(SUMMARY), 60, "the summary request")
    with cli_stopped(t):
        pass  # the turn_timeout ends the session; the close kills the stuck CLI
    compaction_charged_then_next_turn(
        t, "turn_timeout", tokens=900, usd=0.0036, turn_usd=0.0056, turn_tokens=1_000
    )
