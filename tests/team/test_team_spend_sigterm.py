"""Spend across a claude ended by SIGTERM (someone's `kill`, a service manager's stop):
its handler shuts it down and it saves its running figures (exit code 143), unlike a
claude killed (SIGKILL), which saves nothing (real claude CLI, scripted model)."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from test_team_spend import (
    SUMMARY,
    compaction_charged_then_next_turn,
    hung_compaction_rules,
    hung_turn_rules,
    spent_tokens,
)

from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
QUICK = {"input_tokens": 10_000, "output_tokens": 1_000}


def _spent_usd(t: Team) -> float:
    with sqlite3.connect(t.db_path) as db:
        (usd,) = db.execute("SELECT coalesce(sum(usd), 0) FROM spend").fetchone()
    return float(usd)


def _terminate(t: Team, signum: int) -> None:
    """Signal the agent's claude; wait for the session that replaces it."""
    pid = t.agent_pid("alice")
    assert pid
    os.kill(pid, signum)
    t.wait_for(lambda: t.agent_pid("alice") not in (None, pid), 90, "a new session")


# SIGTERM: it exits 143 (the SDK's error carries the code); SIGINT: it exits 0 (no error).
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_claude_ended_by_sigterm_is_charged_once(team: TeamFactory, signum: int) -> None:
    """A turn, a clean restart (the CLI resumed with $0.06), two turns, SIGTERM between
    turns; a turn, then a turn whose first request (30,100 tokens) is answered and whose
    second hangs, SIGTERM. Measured on 2.1.332: each time the CLI exited 143 (0 on SIGINT,
    129 on SIGHUP) and saved its
    figures (the transcript's `cost-state`: $0.18 between turns; $0.302 mid-turn, the cut
    request in them), and the resumed session continued from them. Read as saving nothing
    (the baseline put back to the figures it resumed with), the next turn was charged the
    session's earlier turns again ($0.18 for a $0.06 turn) and the redelivered turn the cut
    request a second time ($0.36406, beside its $0.12002 estimate). Now: the ledger holds
    every token the model served once, and in dollars the CLI's own running figure.
    (SIGINT mid-turn: the CLI ends the turn with a result, error_during_execution, before
    it exits: a failed turn with its own figures, nothing cut.)"""
    rules = [
        *hung_turn_rules(120),
        {"agent": agent_rule("alice"), "match": "quick", "text": "done", "usage": QUICK},
    ]
    t = team(rules, {"alice": {}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "quick zero") == "done"
    t.octy("restart", "alice")
    t.wait_ready("alice")
    assert t.ask("alice", "quick one") == "done"
    assert t.ask("alice", "quick two") == "done"
    t.wait_for(lambda: spent_tokens(t) == 33_000, 30, "the three turns in the ledger")
    _terminate(t, signum)  # between turns
    assert t.ask("alice", "quick three") == "done"
    t.wait_for(lambda: spent_tokens(t) >= 44_000, 30, "the turn after in the ledger")
    assert spent_tokens(t) == 44_000
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    _terminate(t, signum)  # mid-turn
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 120).body == "fine"
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "alice")) == 5 and e, 30, "turns")
    assert len({e["session_id"] for e in turns}) == 1  # one conversation throughout
    if signum == signal.SIGTERM:
        (spend,) = t.log_events("spend")
        assert (spend["cause"], spend["cost_estimated"]) == ("session_died", True)
        # The cut request once (its estimate and the part the estimate missed), the
        # redelivered turn's 30,111: what the model served.
        t.wait_for(lambda: spent_tokens(t) >= 44_000 + 60_211, 30, "all in the ledger")
        assert spent_tokens(t) == 44_000 + 30_100 + 30_111
    else:  # SIGINT: the CLI ends the turn first (a failed turn, priced), then exits 0
        assert not t.log_events("spend")
        assert len(t.log_events("turn_failed", "alice")) == 1
        t.wait_for(lambda: spent_tokens(t) > 44_000 + 60_211, 30, "all in the ledger")
    # In dollars: the CLI's own running figure for the session, every turn once.
    assert _spent_usd(t) == pytest.approx(turns[-1]["session_cost_usd"])


def test_a_compaction_cut_by_sigterm_is_charged_once(team: TeamFactory) -> None:
    """The first turn (11,000 tokens, $0.06) fills the 12,000-token window; the summary
    request of the /compact that follows hangs and the CLI gets SIGTERM: it exits 143 and
    saves its figures, the summary request not in them (it streams nothing of it). The
    request is charged its estimate (the context in use, 10,000 input tokens, $0.04), the
    next turn its own $0.06, from the figures the CLI saved."""
    t = team(
        hung_compaction_rules(QUICK),
        {"alice": {"context_window": 12_000}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.model.requests_matching(SUMMARY), 60, "the summary request")
    _terminate(t, signal.SIGTERM)
    compaction_charged_then_next_turn(
        t, "session_died", tokens=10_000, usd=0.04, turn_usd=0.06, turn_tokens=11_000
    )
