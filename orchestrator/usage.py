"""What a turn cost, and an agent's totals across turns, restarts and resumed sessions.

The one place that turns the CLI's figures into per-turn numbers. Budgets,
``ps`` and the ``turn`` log event all read :class:`TurnUsage`.

Measured on the bundled CLI (2.1.33x): a ``ResultMessage``'s ``usage`` holds
the tokens of that turn only, but ``total_cost_usd`` is the session's running
total, and a session resumed with ``--resume`` continues that total from where
it stopped. A session that starts afresh (no resume, or the resume failed)
starts again at 0. So a turn's cost is the running total minus the total last
seen for the same session.
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

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )

    def fields(self) -> dict[str, Any]:
        return asdict(self)


class SessionCost:
    """The running total last seen for one session: the baseline of the next turn's cost."""

    def __init__(self, session_id: str | None, total_usd: float) -> None:
        self.session_id = session_id
        self.total_usd = total_usd if session_id else 0.0

    def reset(self) -> None:
        """The session was not resumed: its total starts again at 0."""
        self.session_id = None
        self.total_usd = 0.0

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
        return TurnUsage(
            cost_usd=round(cost, 6),
            session_id=self.session_id,
            session_cost_usd=round(total, 6),
            input_tokens=_int(usage, "input_tokens"),
            output_tokens=_int(usage, "output_tokens"),
            cache_read_input_tokens=_int(usage, "cache_read_input_tokens"),
            cache_creation_input_tokens=_int(usage, "cache_creation_input_tokens"),
        )


def add_turn(totals: Mapping[str, Any], usage: TurnUsage) -> dict[str, Any]:
    """An agent's totals after one more turn (a new dict; ``totals`` is left alone)."""
    out = dict(totals)
    out["turns"] = int(out.get("turns") or 0) + 1
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ):
        out[key] = int(out.get(key) or 0) + int(getattr(usage, key))
    out["cost_usd"] = round(float(out.get("cost_usd") or 0.0) + usage.cost_usd, 6)
    out["last_turn_cost_usd"] = usage.cost_usd
    out["session_id"] = usage.session_id or out.get("session_id")
    out["session_cost_usd"] = usage.session_cost_usd
    return out


def _int(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
