"""Costs are right: the CLI's total_cost_usd is a session's running total, so a turn's cost is
the difference, and an agent's total is kept across restarts and resumed sessions (issue 9.3).
Real claude CLI against the scripted model, which reports fixed usage figures per turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from claude_agent_sdk import ResultMessage
from team_harness import Team, agent_rule
from test_team_ops import agents_by_name

from orchestrator.usage import SessionCost, add_turn

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
USAGE = {"input_tokens": 10_000, "output_tokens": 1_000}


def _turn_events(t: Team) -> list[dict[str, Any]]:
    path = t.folder / "logs" / "a.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e.get("event") == "turn"]


def test_each_turn_costs_its_own_share_and_totals_survive_restarts(team: TeamFactory) -> None:
    """Every turn asks the same scripted usage, so every turn costs the same: each `turn` event
    shows that cost (not the session's running total) and the agent's total; `ps --json` and
    `ps` show the sum. A restart (the session resumed, its running total continuing) and a
    whole new supervisor keep the total. Before: ps summed running totals (1+2+3 = 6 shares
    after three turns)."""
    t = team([{"agent": agent_rule("a"), "text": "done", "usage": USAGE}], {"a": {}})
    t.octy("up", "-d")
    t.wait_ready("a")
    for i in range(3):
        assert t.ask("a", f"q{i}") == "done"
    turns = t.wait_for(lambda: len(e := _turn_events(t)) == 3 and e, what="three turn events")
    share = turns[0]["cost_usd"]
    assert share > 0
    assert [e["cost_usd"] for e in turns] == [share] * 3
    assert [e["total_cost_usd"] for e in turns] == pytest.approx([share, 2 * share, 3 * share])
    assert turns[2]["session_cost_usd"] == pytest.approx(3 * share)
    assert turns[0]["input_tokens"] == USAGE["input_tokens"]
    row = t.wait_for(lambda: (r := agents_by_name(t)["a"])["turns"] == 3 and r, what="ps")
    assert row["cost_usd"] == pytest.approx(3 * share)
    assert row["last_turn_cost_usd"] == pytest.approx(share)

    old_pid = row["pid"]
    t.octy("restart", "a")  # a new claude process resuming the same session
    t.wait_for(
        lambda: (r := agents_by_name(t)["a"])["state"] == "ready" and r["pid"] != old_pid,
        what="a restarted",
    )
    assert t.ask("a", "q3") == "done"
    t.octy("down")
    t.octy("up", "-d")  # a new supervisor: totals come back from the registry
    t.wait_ready("a")
    assert t.ask("a", "q4") == "done"
    turns = t.wait_for(lambda: len(e := _turn_events(t)) == 5 and e, what="five turn events")
    assert [e["cost_usd"] for e in turns] == pytest.approx([share] * 5)
    assert turns[-1]["total_cost_usd"] == pytest.approx(5 * share)
    assert len({e["session_id"] for e in turns}) == 1  # one conversation, resumed twice
    # Tokens are the difference of the session's running model_usage (usage.py): the baseline
    # survives the restart and the new supervisor (session_tokens in the totals).
    assert [(e["input_tokens"], e["output_tokens"]) for e in turns] == [(10_000, 1_000)] * 5
    row = t.wait_for(lambda: (r := agents_by_name(t)["a"])["turns"] == 5 and r, what="ps")
    assert row["cost_usd"] == pytest.approx(5 * share)
    assert f"${5 * share:.4f}" in t.octy("ps").stdout
    t.octy("down")


def _result(session_id: str, total: float) -> ResultMessage:
    return ResultMessage(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=False,
        num_turns=1,
        session_id=session_id,
        total_cost_usd=total,
        usage={"input_tokens": 5},
    )


def test_a_session_started_afresh_starts_its_cost_at_zero() -> None:
    """A resume that failed (a new session id) or a CLI that restarted its count: the turn's
    cost is the new running total, not a negative difference."""
    cost = SessionCost("s1", 0.5)
    assert cost.turn(_result("s1", 0.7)).cost_usd == pytest.approx(0.2)
    assert cost.turn(_result("s2", 0.1)).cost_usd == pytest.approx(0.1)  # another session
    assert cost.turn(_result("s2", 0.05)).cost_usd == pytest.approx(0.05)  # counted afresh
    totals = add_turn({}, cost.turn(_result("s2", 0.08)))
    assert totals["cost_usd"] == pytest.approx(0.03)
    assert totals["turns"] == 1
    assert totals["input_tokens"] == 5


def _tokens(session_id: str, running_input: int, own_input: int = 5) -> ResultMessage:
    """A result whose model_usage says the session's running input tokens, over two models
    (a subagent on another model), and whose own usage says ``own_input``."""
    half = running_input // 2
    return ResultMessage(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=False,
        num_turns=1,
        session_id=session_id,
        total_cost_usd=0.0,
        usage={"input_tokens": own_input},
        model_usage={
            "claude-opus-4-5": {"inputTokens": half, "outputTokens": 1},
            "claude-haiku-4-5": {"inputTokens": running_input - half, "outputTokens": 0},
        },
    )


def test_a_turns_tokens_are_the_difference_of_the_sessions_running_model_usage() -> None:
    """Subagents and compactions are in model_usage (the session's running total per model)
    but not in the turn's usage: the turn's tokens are the difference, never below its own
    usage; the baseline comes back with the totals, and an unknown one (totals written
    before it was kept) counts the turn's own usage rather than the whole session."""
    cost = SessionCost("s1", 0.0, {"input_tokens": 1000, "output_tokens": 1})
    first = cost.turn(_tokens("s1", 51_000))
    assert (first.input_tokens, first.output_tokens) == (50_000, 0)
    assert cost.turn(_tokens("s1", 51_002)).input_tokens == 5  # its own usage is the floor
    resumed = SessionCost("s1", 0.0, first.session_tokens)  # a restart: the baseline kept
    assert resumed.turn(_tokens("s1", 52_000)).input_tokens == 1000
    unknown = SessionCost("s1", 0.0, None)
    assert unknown.turn(_tokens("s1", 90_000, own_input=7)).input_tokens == 7
    assert unknown.turn(_tokens("s1", 90_100)).input_tokens == 100
    fresh = SessionCost(None, 0.0)
    assert fresh.turn(_tokens("s9", 300)).input_tokens == 300
    assert add_turn({}, first, turn=False)["turns"] == 0  # a compaction is not a turn
