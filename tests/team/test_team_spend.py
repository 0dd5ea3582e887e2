"""Every model request reaches the spend ledger, and a turn stops once over budget (real
claude CLI, scripted model whose rules set the usage): a turn that overflows the
context, a /compact between turns, a subagent's requests; a token budget interrupts the
turn that spends it; no compaction while paused."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from team_harness import Team, agent_rule, scout_rules

from orchestrator import errors
from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
SUMMARY = "create a detailed summary of the conversation so far"


def spent_tokens(t: Team, agent: str = "alice") -> int:
    with sqlite3.connect(t.db_path) as db:
        row = db.execute(
            "SELECT coalesce(sum(input_tokens + output_tokens + cache_read_input_tokens"
            " + cache_creation_input_tokens), 0) FROM spend WHERE agent = ?",
            (agent,),
        ).fetchone()
    return int(row[0])


def compaction_charged_then_next_turn(
    t: Team, cut_off: str, *, tokens: int, usd: float, turn_usd: float, turn_tokens: int
) -> None:
    """alice's cut compaction is charged once, an estimate (``cut_off``: what cut it), and
    her next turn only its own cost: the ledger holds each request once."""
    (spend,) = t.wait_for(lambda: t.log_events("spend", "alice"), 30, "the compaction's spend")
    assert (spend["cause"], spend["cut_off"], spend["cost_estimated"]) == (
        "compaction",
        cut_off,
        True,
    )
    assert (spend["input_tokens"], spend["cost_usd"]) == (tokens, usd)
    t.wait_ready("alice")
    assert t.ask("alice", "job 2") == "done"
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "alice")) == 2 and e, 30, "turns")
    assert [e["cost_usd"] for e in turns] == [turn_usd, turn_usd]
    total = turn_tokens + tokens + turn_tokens
    t.wait_for(lambda: spent_tokens(t) >= total, 30, "the second turn in the ledger")
    assert spent_tokens(t) == total


def test_the_turn_that_overflows_the_context_is_in_the_ledger(team: TeamFactory) -> None:
    """A 50,000-token request, then "prompt is too long": the fresh session answers, and
    the overflowed turn's 50,100 tokens are counted (they were not: 8 tokens were)."""
    a = agent_rule("alice")
    t = team(
        [
            {"agent": a, "match": SUMMARY, "error": "prompt_too_long"},
            {"agent": a, "tool_result": "BOOMTOOL", "error": "prompt_too_long"},
            {
                "agent": a,
                "match": r"(?s)\A(?!.*Context reset).*boom",
                "tool_use": {"name": "Bash", "input": {"command": "echo BOOMTOOL"}},
                "usage": {"input_tokens": 50000, "output_tokens": 100},
            },
            {
                "agent": a,
                "match": "boom",
                "text": "boom handled",
                "usage": {"input_tokens": 7, "output_tokens": 1},
            },
        ],
        {"alice": {"tools": ["Bash"]}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "boom please", timeout=120) == "boom handled"
    t.wait_for(lambda: spent_tokens(t) >= 50_108, 30, "the overflowed turn in the ledger")
    assert [e["cause"] for e in t.log_events("spend")] == ["context_overflow"]


def test_a_compaction_between_turns_is_counted(team: TeamFactory) -> None:
    """compact_at past after the first turn: the /compact's 40,500-token summary request
    reaches the ledger (its result's usage says 0; model_usage has it)."""
    a = agent_rule("alice")
    t = team(
        [
            {
                "agent": a,
                "match": SUMMARY,
                "text": "<summary>short</summary>",
                "usage": {"input_tokens": 40000, "output_tokens": 500},
            },
            {
                "agent": a,
                "match": "job",
                "text": "done",
                "usage": {"input_tokens": 900, "output_tokens": 100},
            },
        ],
        {"alice": {"context_window": 1000, "budget": {"tokens": 1_000_000, "per": "1d"}}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.log_events("compacted"), 60, "the compaction")
    t.wait_for(lambda: spent_tokens(t) >= 41_500, 30, "the compaction in the ledger")
    assert [e["cause"] for e in t.log_events("spend")] == ["compaction"]


def test_no_compaction_while_paused_by_the_budget(team: TeamFactory) -> None:
    """The turn spends the budget and the context is past compact_at: the agent pauses
    and does not compact (a summary is spend too)."""
    a = agent_rule("alice")
    t = team(
        [
            {"agent": a, "match": SUMMARY, "text": "<summary>short</summary>"},
            {
                "agent": a,
                "match": "job",
                "text": "done",
                "usage": {"input_tokens": 900, "output_tokens": 100},
            },
        ],
        {"alice": {"context_window": 1000, "budget": {"tokens": 1000, "per": "1d"}}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.states().get("alice") == "paused", 30, "alice paused")
    # The context figures are published after the pause decision, in the same step.
    t.wait_for(lambda: context_tokens(t) is not None, 30, "the context figures")
    assert not t.model.requests_matching(SUMMARY)
    assert not t.log_events("compacting")


def context_tokens(t: Team) -> int | None:
    with t.mailbox() as mb:
        info = mb.agent("alice")
    context = info.meta.get("context") if info else None
    return context.get("tokens") if isinstance(context, dict) else None


def test_a_subagents_tokens_are_counted(team: TeamFactory) -> None:
    """The subagent's 50,010-token request is in the ledger with the lead's 22 (the
    turn's result usage leaves subagents out; it was counted in dollars only)."""
    lead = agent_rule("lead")
    t = team(
        [
            {
                "match": "SCOUTJOB",
                "text": "scout done",
                "usage": {"input_tokens": 50000, "output_tokens": 10},
            },
            {
                "agent": lead,
                "tool_result": "scout done",
                "text": "lead done",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
            {
                "agent": lead,
                "match": "go",
                "tool_use": {
                    "name": "Agent",
                    "input": {
                        "subagent_type": "scout",
                        "description": "look",
                        "prompt": "SCOUTJOB",
                    },
                },
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        ],
        {
            "lead": {
                "tools": ["Read"],
                "subagents": {
                    "scout": {"description": "finds", "prompt": "You scout.", "tools": ["Read"]}
                },
            }
        },
    )
    t.up()
    t.wait_ready("lead")
    assert t.ask("lead", "go") == "lead done"
    t.wait_for(lambda: spent_tokens(t, "lead") >= 50_032, 30, "the subagent's tokens")
    assert spent_tokens(t, "lead") == 50_032


def test_a_turn_stops_once_over_its_token_budget(team: TeamFactory) -> None:
    """Budget 25,000 tokens, a turn of 11 requests of 20,100 each: the turn is interrupted
    after the request that crosses the budget (it ran to 221,100 before), the request is
    answered budget_exceeded, and alice is paused."""
    a = agent_rule("alice")
    usage = {"input_tokens": 20000, "output_tokens": 100}
    t = team(
        [
            {
                "agent": a,
                "tool_result": "alice",
                "times": 9,
                "tool_use": {"name": "mcp__octy__agents", "input": {}},
                "usage": usage,
            },
            {"agent": a, "tool_result": "alice", "text": "finished", "usage": usage},
            {
                "agent": a,
                "match": "work",
                "tool_use": {"name": "mcp__octy__agents", "input": {}},
                "usage": usage,
            },
        ],
        {"alice": {"budget": {"tokens": 25000, "per": "1d"}}},
    )
    t.up()
    t.wait_ready("alice")
    with pytest.raises(errors.BudgetExceeded):
        t.ask("alice", "work", timeout=120)
    t.wait_for(lambda: t.states().get("alice") == "paused", 30, "alice paused")
    # Bound: the request that crossed, and at most the one already under way. The
    # interrupted request is charged from the CLI's running tally: its 20,000 input
    # tokens at once, its output as far as it had streamed (6 of 100 seen under load).
    assert 40_100 <= spent_tokens(t) <= 60_300
    assert len(t.log_events("budget_turn_stopped")) == 1


def test_a_turn_interrupted_by_a_stop_is_counted(team: TeamFactory) -> None:
    """A turn whose first request (30,100 tokens) is done and whose second hangs, stopped
    with `--grace 1`: interrupted and requeued, and its 30,100 tokens are in the ledger."""
    a = agent_rule("alice")
    t = team(
        [
            {"agent": a, "tool_result": "alice", "text": "late", "delay": 120},
            {
                "agent": a,
                "match": "slow",
                "tool_use": {"name": "mcp__octy__agents", "input": {}},
                "usage": {"input_tokens": 30000, "output_tokens": 100},
            },
        ],
        {"alice": {}},
    )
    t.up(extra=["--grace", "1"])
    t.wait_ready("alice")
    t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the second request")
    t.signal(signal.SIGTERM)
    assert t.wait_exit(60) == 0
    assert spent_tokens(t) >= 30_100
    assert [e["cause"] for e in t.log_events("spend")] == ["interrupted"]


def hung_compaction_rules(usage: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """alice's turns ("job …": ``usage``, by default 1,000 tokens, 900 in, 100 out, which
    fill a 1,000-token window) and a /compact whose summary request hangs for 120 s."""
    a = agent_rule("alice")
    return [
        {"agent": a, "match": SUMMARY, "text": "<summary>s</summary>", "delay": 120},
        {
            "agent": a,
            "match": "job",
            "text": "done",
            "usage": usage or {"input_tokens": 900, "output_tokens": 100},
        },
    ]


@contextlib.contextmanager
def cli_stopped(t: Team) -> Iterator[int]:
    """alice's claude SIGSTOPped (its pid given) until, after the block, the supervisor has
    replaced it with a new session; let go (SIGCONT) if it is still there."""
    pid = t.agent_pid("alice")
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
        t.wait_for(lambda: t.agent_pid("alice") not in (None, pid), 90, "a new session")
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed by the close or the stop
            os.kill(pid, signal.SIGCONT)


def hung_turn_rules(hang_s: float) -> list[dict[str, Any]]:
    """A turn whose first request (30,100 tokens, a tool call) is answered and whose
    second hangs for ``hang_s`` once; redelivered, the turn ends with 11 more tokens."""
    a = agent_rule("alice")
    return [
        {"agent": a, "tool_result": "alice", "text": "late", "delay": hang_s, "times": 1},
        {
            "agent": a,
            "tool_result": "alice",
            "text": "fine",
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
        {
            "agent": a,
            "match": "slow",
            "tool_use": {"name": "mcp__octy__agents", "input": {}},
            "usage": {"input_tokens": 30000, "output_tokens": 100},
        },
    ]


def test_a_turn_ended_by_turn_timeout_is_counted_and_its_redelivery_too(
    team: TeamFactory,
) -> None:
    """turn_timeout 3s, the second request hangs: the session is restarted and the turn
    redelivered. Both attempts' tokens are in the ledger (the hung one's were not:
    30,111 of 60,211 served), the hung one's with cause turn_timeout."""
    t = team(hung_turn_rules(30), {"alice": {"turn_timeout": "3s"}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "slow job", timeout=120) == "fine"
    assert len(t.model.requests_matching("slow")) == 2
    # The hung turn's tally has the input tokens its answer streamed and the output
    # tokens known when the assistant message came (the CLI sends it before the final
    # count): at least 30,001 of its 30,100, and nothing counted twice.
    both = 30_001 + 30_111
    t.wait_for(lambda: spent_tokens(t) >= both, 30, "both attempts in the ledger")
    assert spent_tokens(t) <= 2 * 30_100 + 11
    (spend,) = t.log_events("spend")
    assert (spend["cause"], spend["input_tokens"]) == ("turn_timeout", 30_000)
    # The CLI prices a turn at its result, which never came: the tally is priced instead
    # (test_team_spend_cutoff.py), 30,000 input and 1 output token at opus-5-5's rates.
    assert (spend["cost_usd"], spend["cost_estimated"]) == (0.12002, True)


def test_a_turn_whose_cli_dies_is_counted(team: TeamFactory) -> None:
    """The claude process is killed while the second request hangs: the first request's
    30,100 tokens are in the ledger with cause session_died, and the redelivered turn's."""
    t = team(hung_turn_rules(120), {"alice": {}})
    t.up()
    t.wait_ready("alice")
    pid = t.agent_pid("alice")
    assert pid is not None
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the second request")
    os.kill(pid, signal.SIGKILL)
    mb = t.mailbox()
    reply = t.wait_for(lambda: mb.find_reply(request.id), 120, "the redelivered turn's reply")
    assert reply.body == "fine"
    t.wait_for(lambda: spent_tokens(t) >= 30_001 + 30_111, 30, "both attempts in the ledger")
    assert spent_tokens(t) <= 2 * 30_100 + 11
    assert [e["cause"] for e in t.log_events("spend")] == ["session_died"]


def test_a_session_resumed_by_a_new_supervisor_counts_its_subagents(team: TeamFactory) -> None:
    """The session's running per-model totals (the baseline of a turn's tokens) were kept
    with the agent's totals but not read back: after a restart of the supervisor, the
    resumed session's first turn counted its own usage only, without its subagent's
    100,000-token request (measured: 200,000 input tokens of 300,000); and since a gateway
    model's turns are priced from their tokens, $3.15 of $4.725."""
    lead = agent_rule("lead")
    usage = {"input_tokens": 100_000, "output_tokens": 1000}
    t = team(
        [
            *scout_rules(usage),
            {"agent": lead, "match": "first", "text": "first done", "usage": usage},
        ],
        {
            "lead": {
                "model": "gw-priced",
                "tools": ["Read"],
                "subagents": {
                    "scout": {"description": "finds", "prompt": "You scout.", "tools": ["Read"]}
                },
            }
        },
        prices={"gw-priced": {"input": 15, "output": 75}},
    )
    t.up()
    t.wait_ready("lead")
    assert t.ask("lead", "first") == "first done"
    t.wait_for(lambda: spent_tokens(t, "lead") == 101_000, 30, "the first turn's row")
    t.signal(signal.SIGTERM)
    assert t.wait_exit() == 0
    t.up()
    t.wait_ready("lead")
    assert t.ask("lead", "go") == "lead done"
    t.wait_for(lambda: spent_tokens(t, "lead") > 101_000, 30, "the second turn's row")
    assert spent_tokens(t, "lead") == 4 * 101_000
    first, second = t.log_events("turn", "lead")
    assert second["session_id"] == first["session_id"]  # resumed, not started afresh
    assert second["cost_usd"] == pytest.approx(3 * (100_000 * 15 + 1000 * 75) / 1e6)
