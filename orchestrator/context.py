"""An agent's context window: how full it is, compaction between turns, and a fresh
session with a hand-over when the prompt no longer fits.

Context in use is the last model request's input: ``input_tokens +
cache_read_input_tokens + cache_creation_input_tokens`` of the last top-level
assistant message (each carries its request's usage). The window comes from
``context_window:`` in agents.yaml, else the window the CLI reports for the model
it runs (``modelUsage.contextWindow``: it knows a 1M session chosen through env or
settings, which the roster's model name does not show), else :data:`CONTEXT_WINDOWS`
by model name (before the first turn), else 200,000.

Compaction is the CLI's own ``/compact``, sent as a user turn through the SDK:
the CLI asks the model for a summary (a request whose last user message starts
"CRITICAL: Respond with TEXT ONLY" and asks to "create a detailed summary of
the conversation so far"), replaces the conversation with it, and reports a
``compact_boundary`` system message with ``pre_tokens`` and ``post_tokens``
(measured on the bundled CLI 2.1.332).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog
from claude_agent_sdk import AssistantMessage, ResultMessage, SystemMessage

from orchestrator.lifecycle import EndReason, OnEvent, RunnerEvent
from orchestrator.mailbox import Message
from orchestrator.prices import known_to_cli
from orchestrator.prompts import handover
from orchestrator.roster import AgentSpec

log = structlog.get_logger()

# Model name (searched) -> context window in tokens; the first match wins.
CONTEXT_WINDOWS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\[1m\]|-1m\b"), 1_000_000),  # the 1M-token variants (e.g. sonnet-4-5[1m])
    (re.compile(r"claude-(opus|sonnet|haiku)-4|claude-(3|4)"), 200_000),
)
DEFAULT_WINDOW = 200_000
COMPACT_TIMEOUT_S = 600.0  # when the agent has no turn_timeout
REPEAT_GROWTH = 0.1  # of the window, before compacting again after an ineffective compaction
# After a failed compaction (the summary request refused, no boundary reported): turns to
# let pass before trying again, doubled for each failure in a row, up to the last.
RETRY_TURNS = (4, 8, 16, 32, 64)
_TOO_LONG = re.compile(r"prompt is too long", re.IGNORECASE)


class SessionOver(Exception):
    """The session cannot go on; ``reason`` is the SessionEnd reason the runner returns."""

    reason = EndReason.ERROR

    def __init__(self, detail: str, handover: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.handover = handover


class ContextOverflow(SessionOver):
    """The model refused the prompt as too long: a fresh session takes over."""

    reason = EndReason.CONTEXT_OVERFLOW


class CompactTimeout(SessionOver):
    """The CLI went silent while compacting: its late answer would be mistaken for the
    next turn's, so the session is restarted (and resumed) instead."""

    reason = EndReason.TURN_TIMEOUT


def window_for(model: str | None, override: int | None, reported: int | None = None) -> int:
    if override:
        return override
    if reported:
        return reported
    for pattern, size in CONTEXT_WINDOWS:
        if model and pattern.search(model):
            return size
    return DEFAULT_WINDOW


def too_long(result: ResultMessage) -> bool:
    """Whether a failed turn failed because the prompt no longer fits the window."""
    if not result.is_error:
        return False
    texts = [result.result or "", *(result.errors or [])]
    return any(_TOO_LONG.search(str(t)) for t in texts)


class ContextKeeper:
    """One session's context figures; compacts between turns; builds the hand-over."""

    def __init__(
        self,
        name: str,
        spec: Callable[[], AgentSpec],
        on_event: OnEvent,
    ) -> None:
        self.name = name
        self.spec = spec
        self.on_event = on_event
        self.tokens: int | None = None
        self.model: str | None = None
        self.reported_window: int | None = None
        self.last_result = ""
        self.handover: str | None = None  # set by the supervisor for a fresh session
        # After a compaction that left the context above the threshold (a large system
        # prompt, say), or one that failed, do not compact after every turn (each is a
        # paid summary request): wait for REPEAT_GROWTH more of the window...
        self._floor = 0
        # ...or, after a failure, for this many more turns (None: no failure pending).
        self._retry_in: int | None = None
        self._failures = 0  # in a row

    @property
    def window(self) -> int:
        model = self.model or self.spec().model
        # For a model outside its catalog (a gateway's name) the CLI reports 1,000,000, a
        # guess (measured on 2.1.332): a 200,000-token model would never compact. Such a
        # model has the default window, or `context_window:`.
        reported = self.reported_window if model and known_to_cli(model) else None
        return window_for(self.spec().model or self.model, self.spec().context_window, reported)

    def observe(self, item: Any) -> None:
        """Called with every top-level message of a turn."""
        if isinstance(item, AssistantMessage) and item.usage and item.model != "<synthetic>":
            u = item.usage
            self.tokens = sum(
                int(u.get(k) or 0)
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            self.model = item.model
        elif isinstance(item, ResultMessage) and item.model_usage and self.model:
            usage = item.model_usage.get(self.model)
            reported = usage.get("contextWindow") if usage else None
            self.reported_window = reported if isinstance(reported, int) else None

    def framed(self, text: str) -> str:
        """The first turn of a fresh session carries the hand-over, once."""
        if not self.handover:
            return text
        handover, self.handover = self.handover, None
        return f"{handover}\n\n{text}"

    def check(self, result: ResultMessage, final: str, batch: list[Message]) -> None:
        """After a turn: remember its result, or raise ContextOverflow."""
        if too_long(result):
            detail = (result.result or "prompt is too long")[:300]
            raise ContextOverflow(detail, self._handover(batch))
        if not result.is_error:
            self.last_result = final

    def figures(self) -> dict[str, Any]:
        window = self.window
        spec = self.spec()
        return {
            "tokens": self.tokens,
            "window": window,
            "share": None if self.tokens is None else round(self.tokens / window, 4),
            "model": spec.model or self.model,
            "compact_at": spec.compact_at,
        }

    async def between_turns(
        self,
        query: Callable[[str], Awaitable[None]],
        next_item: Callable[[], Awaitable[Any]],
        *,
        may_compact: bool = True,
    ) -> ResultMessage | None:
        """Publish the figures; compact when past ``compact_at`` of the window (and
        ``may_compact``). The compaction's result, whose spend the caller counts: its
        summary is a model request like any other."""
        if self.tokens is None:
            return None
        await self.on_event(RunnerEvent.CONTEXT, self.figures())
        threshold = self.spec().compact_at
        if threshold is None or self.tokens < threshold * self.window:
            return None
        due = self.tokens >= self._floor
        if not due and self._retry_in is not None:
            self._retry_in -= 1
            due = self._retry_in <= 0
        if not due or not may_compact:
            return None
        before = self.tokens
        log.info("compacting", agent=self.name, tokens=before, window=self.window)
        await query("/compact")
        boundary: dict[str, Any] = {}
        failed: str | None = None
        result: ResultMessage | None = None
        timeout = self.spec().turn_timeout_s or COMPACT_TIMEOUT_S
        with anyio.move_on_after(timeout) as scope:
            while True:
                item = await next_item()
                if isinstance(item, SystemMessage) and item.subtype == "compact_boundary":
                    boundary = dict(item.data.get("compact_metadata") or {})
                elif isinstance(item, ResultMessage):
                    result = item
                    failed = (item.result or "compaction failed") if item.is_error else None
                    break
        if scope.cancelled_caught:
            log.warning(
                "compact_failed", agent=self.name, tokens=before, reason="timeout", **self._failed()
            )
            raise CompactTimeout(f"no answer to /compact within {timeout:g}s")
        if failed or not boundary:
            log.warning(
                "compact_failed",
                agent=self.name,
                tokens=before,
                reason=failed or "no compact_boundary reported",
                **self._failed(),
            )
            return result
        after = boundary.get("post_tokens")
        self.tokens = int(after) if isinstance(after, int) else None
        self._failures, self._retry_in = 0, None
        if self.tokens is not None and self.tokens >= threshold * self.window:
            self._floor = self.tokens + int(REPEAT_GROWTH * self.window)
        else:  # below the threshold: compact_at holds again
            self._floor = 0
        log.info(
            "compacted",
            agent=self.name,
            before=before,
            after=self.tokens,
            cli_pre_tokens=boundary.get("pre_tokens"),
            window=self.window,
            **({"next_at_tokens": self._floor} if self._floor else {}),
        )
        await self.on_event(RunnerEvent.CONTEXT, {**self.figures(), "compacted_from": before})
        return result

    def _failed(self) -> dict[str, Any]:
        """Back off after a failed compaction; the log fields saying when it tries again."""
        self._retry_in = RETRY_TURNS[min(self._failures, len(RETRY_TURNS) - 1)]
        self._failures += 1
        self._floor = (self.tokens or 0) + int(REPEAT_GROWTH * self.window)
        return {
            "failures_in_a_row": self._failures,
            "retry_after_turns": self._retry_in,
            "retry_at_tokens": self._floor,
            "retry": (
                f"after {self._retry_in} more turns, or once the context reaches "
                f"{self._floor:,} tokens"
            ),
        }

    def _handover(self, batch: list[Message]) -> str:
        return handover(self.last_result, batch)
