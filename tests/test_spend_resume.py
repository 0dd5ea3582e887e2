"""Which running figures a resumed session's first turn is counted from, when the CLI
that ran it last was killed with its supervisor (never closed: `session_live` in the
totals). The CLI then resumes with the figures it had resumed with (measured: it saves
only at a clean exit), except when its stdin closed just before the signal came and it
saved its last ones after all (seen once in six runs): the turn's own usage tells."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from claude_agent_sdk import ResultMessage

from orchestrator.spend import Spend

TURN = {"input_tokens": 10_000, "output_tokens": 1_000}


def _tokens(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


# Resumed (clean) at $0.12 and 20,000/2,000 tokens; one turn later seen at $0.18, 30,000/3,000.
KILLED = {
    "session_id": "s1",
    "session_cost_usd": 0.18,
    "session_tokens": _tokens(30_000, 3_000),
    "session_models": {"claude-opus-5-5": {**_tokens(30_000, 3_000), "cost": 0.18}},
    "session_live": True,
    "session_resumed_usd": 0.12,
    "session_resumed_tokens": _tokens(20_000, 2_000),
    "cost_usd": 0.18,
}


def _result(total: float, running_input: int) -> ResultMessage:
    running = {"inputTokens": running_input, "outputTokens": running_input // 10}
    return ResultMessage(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=False,
        num_turns=1,
        session_id="s1",
        total_cost_usd=total,
        usage=dict(TURN),
        model_usage={"claude-opus-5-5": {**running, "costUSD": total}},
    )


def _spend(totals: dict[str, Any]) -> Spend:
    async def on_event(*_: Any) -> None:
        return None

    spend = Spend(
        "a",
        lambda: SimpleNamespace(prices={}),  # type: ignore[arg-type, return-value]
        on_event,
        structlog.get_logger(),
        session_id="s1",
        totals=totals,
        budgets=None,
    )
    spend.connected()
    return spend


def test_a_killed_clis_session_counts_from_what_it_resumed_with() -> None:
    """It resumed with $0.12 again: the next turn ($0.18 running) cost $0.06 and 11,000
    tokens (before: $0 and the turn's own usage, the last seen taken as the baseline)."""
    spend = _spend(dict(KILLED))
    usage = spend.count(_result(0.18, 30_000))
    assert (usage.cost_usd, usage.input_tokens, usage.output_tokens) == (0.06, 10_000, 1_000)
    assert spend.totals["cost_usd"] == pytest.approx(0.24)
    assert spend.totals["session_live"] is True  # this CLI runs until closed
    spend.closed()
    assert spend.totals["session_live"] is False


def test_a_killed_cli_that_saved_its_last_figures_after_all_counts_from_those() -> None:
    """Its running tokens are the last seen plus the turn's own usage: it resumed with
    $0.18, and the turn ($0.24 running) cost $0.06, not $0.12."""
    spend = _spend(dict(KILLED))
    usage = spend.count(_result(0.24, 40_000))
    assert (usage.cost_usd, usage.input_tokens, usage.output_tokens) == (0.06, 10_000, 1_000)
    assert spend.totals["session_resumed_usd"] == 0.18  # what a next kill resumes with


def test_a_cleanly_closed_clis_session_counts_from_the_last_figures_seen() -> None:
    spend = _spend({**KILLED, "session_live": False})
    usage = spend.count(_result(0.24, 40_000))
    assert (usage.cost_usd, usage.input_tokens) == (0.06, 10_000)
