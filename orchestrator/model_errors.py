"""What went wrong with the model in a turn, and what that is worth: wait, retry, or give up.

Recorded from the bundled CLI 2.1.33x in stream-json (tests/team/test_team_reliability.py
runs each case against it):

- While it retries a failed API call it emits ``system``/``api_retry`` with ``attempt``,
  ``max_retries``, ``retry_delay_ms``, ``error_status`` (the HTTP status; null when no
  answer came: connection refused, DNS failure) and ``error`` (``authentication_failed``,
  ``overloaded``, ``rate_limit``, ``unknown``...). It retries 401, 429, 5xx, 529 and
  connection failures (``CLAUDE_CODE_MAX_RETRIES`` times, backoff 0.5 s doubling up to
  32 s), not 400, 403 or 404.
- When it gives up: an assistant message from the ``<synthetic>`` model whose text is the
  reason ("Invalid API key", "API Error: Connection refused ... (ECONNREFUSED)"), then a
  result with ``is_error``, subtype ``success``, ``api_error_status`` and
  ``terminal_reason`` ``api_error`` (``prompt_too_long`` for a prompt over the context).
- ``max_turns`` reached: subtype ``error_max_turns``; an interrupt: subtype
  ``error_during_execution``, terminal reason ``aborted_streaming``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from claude_agent_sdk import ResultMessage

# The model will not answer this agent until someone fixes something: retrying costs
# minutes and helps nobody.
UNAVAILABLE_STATUSES = frozenset({401, 403, 404})
# The request itself is wrong: the same turn would fail again, and be paid for again.
DETERMINISTIC_STATUSES = frozenset({400, 413, 422})
DETERMINISTIC_SUBTYPES = frozenset(
    {"error_max_turns", "error_max_budget_usd", "error_max_structured_output_retries"}
)
DETERMINISTIC_TERMINALS = frozenset({"prompt_too_long"})

Kind = Literal["unavailable", "deterministic", "transient"]

_STATUS_WORDS = {
    401: "the API key was rejected",
    403: "the API key may not use this model",
    404: "the model was not found",
}


@dataclass(frozen=True)
class ModelError:
    """One failed API call the CLI reported while retrying (a ``model_error`` log event)."""

    status: int | None
    type: str
    attempt: int | None
    max_retries: int | None
    retry_in_s: float | None

    @classmethod
    def from_retry(cls, data: Mapping[str, Any]) -> ModelError:
        delay = data.get("retry_delay_ms")
        return cls(
            status=_int_or_none(data.get("error_status")),
            type=str(data.get("error") or "unknown"),
            attempt=_int_or_none(data.get("attempt")),
            max_retries=_int_or_none(data.get("max_retries")),
            retry_in_s=round(delay / 1000, 2) if isinstance(delay, int | float) else None,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "type": self.type,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "retry_in_s": self.retry_in_s,
        }

    def short(self) -> str:
        """A few words for ``ps``: what failed and how far the retries are."""
        what = f"HTTP {self.status} {self.type}" if self.status else f"no answer ({self.type})"
        if self.attempt is not None and self.max_retries is not None:
            what += f", retry {self.attempt}/{self.max_retries}"
        return what

    def unavailable_reason(self) -> str | None:
        """The reason to give up now, if the status says retrying cannot help."""
        if self.status in UNAVAILABLE_STATUSES:
            return f"{_STATUS_WORDS[self.status]} (HTTP {self.status} {self.type})"
        return None


@dataclass(frozen=True)
class Failure:
    """A failed turn: ``kind`` decides what happens to its messages; ``reason`` is for people."""

    kind: Kind
    reason: str


def classify(result: ResultMessage, text: str) -> Failure:
    """What a failed turn's result (and the text that came with it) is worth."""
    status = result.api_error_status
    reason = _reason(result, text)
    if status in UNAVAILABLE_STATUSES:
        return Failure("unavailable", f"{_STATUS_WORDS[status]}: {reason}")
    if (
        status in DETERMINISTIC_STATUSES
        or result.subtype in DETERMINISTIC_SUBTYPES
        or result.terminal_reason in DETERMINISTIC_TERMINALS
    ):
        return Failure("deterministic", reason)
    return Failure("transient", reason)


def no_answer(result: ResultMessage) -> bool:
    """The CLI gave up without any HTTP answer (connection refused, DNS, timeout)."""
    return result.api_error_status is None and result.terminal_reason == "api_error"


def _reason(result: ResultMessage, text: str) -> str:
    if result.subtype == "error_max_turns":
        return f"max_turns reached after {result.num_turns} model/tool round trips"
    if result.subtype == "error_max_budget_usd":
        return "the agent's max_budget_usd was reached"
    words = (text or result.result or "").strip() or "; ".join(result.errors or [])
    words = words or f"{result.subtype} ({result.terminal_reason or 'no reason given'})"
    status = result.api_error_status
    if status and str(status) not in words:
        words = f"HTTP {status}: {words}"
    return words[:500]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
