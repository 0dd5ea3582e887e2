"""What a turn cost, and an agent's totals across turns, restarts and resumed sessions.

The one place that turns the CLI's figures into per-turn numbers. Budgets,
``ps`` and the ``turn`` log event all read :class:`TurnUsage`.

Measured on the bundled CLI (2.1.33x): a ``ResultMessage``'s ``usage`` holds
the tokens of that turn only, but ``total_cost_usd`` is the session's running
total, and a session resumed with ``--resume`` continues that total from where
it stopped. A session that starts afresh (no resume, or the resume failed)
starts again at 0. So a turn's cost is the running total minus the total last
seen for the same session.

Tokens the same way: ``usage`` leaves out what the turn's subagents asked the model
(seen: a 50,000-token subagent call, the turn's ``usage`` said 20 tokens), and a
``/compact`` reports all zeros there; ``model_usage`` is the session's running total
per model, subagents and compactions included (measured on 2.1.332). A turn's tokens
are the difference of that total summed over models, and never less than its own
``usage`` (should a CLI ever restart the per-model count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from claude_agent_sdk import ResultMessage


@dataclass(frozen=True)
class TurnUsage:
    """One turn's cost and tokens (``cost_usd`` is this turn's, not the session's)."""

    cost_usd: float
    session_id: str | None
    session_cost_usd: float  # the CLI's running total for the session after this turn
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    # The CLI's running token totals for the session (from model_usage): the next turn's
    # baseline, kept across restarts with the totals.
    session_tokens: dict[str, int] | None = None
    # A model the CLI does not price and `prices:` does not name, priced at the highest
    # known rate (orchestrator/spend.py): the `turn` event says which.
    price_unknown: tuple[str, ...] = ()

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )

    def fields(self) -> dict[str, Any]:
        out = asdict(self)
        del out["session_tokens"]  # a baseline, not this turn's figures
        if out["price_unknown"]:
            out["price_unknown"] = list(out["price_unknown"])  # as the `spend` event says it
        else:
            del out["price_unknown"]
        return out


class SessionCost:
    """The running total last seen for one session: the baseline of the next turn's cost."""

    def __init__(
        self,
        session_id: str | None,
        total_usd: float,
        tokens: Mapping[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.total_usd = total_usd if session_id else 0.0
        # A session resumed from totals written before this baseline was kept: unknown, so
        # its first turn counts its own usage only (the running total would count it all).
        self.tokens: dict[str, int] | None = (
            _zero() if not session_id else None if tokens is None else _baseline(tokens)
        )

    def reset(self) -> None:
        """The session was not resumed: its total starts again at 0."""
        self.session_id = None
        self.total_usd = 0.0
        self.tokens = _zero()

    def turn(self, result: ResultMessage) -> TurnUsage:
        """The usage of the turn that ended with ``result``; moves the baseline on."""
        total = float(result.total_cost_usd or 0.0)
        same_session = result.session_id and result.session_id == self.session_id
        before = self.total_usd if same_session else 0.0
        # A total below the baseline means the CLI started counting afresh after all.
        cost = total - before if total >= before else total
        self.session_id = result.session_id or self.session_id
        self.total_usd = total
        usage = result.usage or {}
        running = session_tokens(result.model_usage)
        known = self.tokens if same_session else _zero()
        baseline = dict(known) if known is not None else _zero()
        tokens = {}
        for key in TOKEN_KEYS:
            now = running.get(key, 0)
            # A total below the baseline: counting started afresh (as for the cost).
            since = 0 if known is None else now - baseline[key] if now >= baseline[key] else now
            tokens[key] = max(since, _int(usage, key))
            if key in running:
                baseline[key] = now
        self.tokens = baseline
        return TurnUsage(
            cost_usd=round(cost, 6),
            session_id=self.session_id,
            session_cost_usd=round(total, 6),
            session_tokens=dict(baseline),
            input_tokens=tokens["input_tokens"],
            output_tokens=tokens["output_tokens"],
            cache_read_input_tokens=tokens["cache_read_input_tokens"],
            cache_creation_input_tokens=tokens["cache_creation_input_tokens"],
        )


TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
# model_usage's names for them (per model, the session's running totals).
_MODEL_USAGE_KEYS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadInputTokens": "cache_read_input_tokens",
    "cacheCreationInputTokens": "cache_creation_input_tokens",
}


def session_tokens(model_usage: Mapping[str, Any] | None) -> dict[str, int]:
    """The session's running token totals, summed over models; {} if not reported."""
    out: dict[str, int] = {}
    for figures in (model_usage or {}).values():
        if not isinstance(figures, Mapping):
            continue
        for theirs, ours in _MODEL_USAGE_KEYS.items():
            if theirs in figures:
                out[ours] = out.get(ours, 0) + _int(figures, theirs)
    return out


def add_turn(totals: Mapping[str, Any], usage: TurnUsage, *, turn: bool = True) -> dict[str, Any]:
    """An agent's totals after one more turn (a new dict; ``totals`` is left alone).
    ``turn=False``: spend that is not a turn of its own (a compaction)."""
    out = dict(totals)
    out["turns"] = int(out.get("turns") or 0) + (1 if turn else 0)
    for key in TOKEN_KEYS:
        out[key] = int(out.get(key) or 0) + int(getattr(usage, key))
    out["cost_usd"] = round(float(out.get("cost_usd") or 0.0) + usage.cost_usd, 6)
    out["last_turn_cost_usd"] = usage.cost_usd
    out["session_id"] = usage.session_id or out.get("session_id")
    out["session_cost_usd"] = usage.session_cost_usd
    if usage.session_tokens is not None:
        out["session_tokens"] = dict(usage.session_tokens)
    return out


def cut_off(
    requests: Mapping[Any, tuple[str, Mapping[str, Any]]],
    usd: float,
    session_id: str | None,
    session: SessionCost,
) -> TurnUsage:
    """A turn cut off before its result: its requests' tokens as far as the stream had
    counted them (each request's input at its start, its output when its message came),
    and ``usd``, their priced estimate (orchestrator/prices.py)."""

    def tally(key: str) -> int:
        return sum(_int(usage, key) for _, usage in requests.values())

    return TurnUsage(
        cost_usd=usd,
        session_id=session_id,
        session_cost_usd=session.total_usd,
        input_tokens=tally("input_tokens"),
        output_tokens=tally("output_tokens"),
        cache_read_input_tokens=tally("cache_read_input_tokens"),
        cache_creation_input_tokens=tally("cache_creation_input_tokens"),
    )


def _baseline(tokens: Mapping[str, Any]) -> dict[str, int]:
    return {k: _int(tokens, k) for k in TOKEN_KEYS}


def _zero() -> dict[str, int]:
    return dict.fromkeys(TOKEN_KEYS, 0)


def _int(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
