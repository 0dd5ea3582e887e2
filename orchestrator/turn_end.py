"""What a turn's end means for its messages: answered and acked, failed (given back,
the session maybe rewound to before it), stopped over budget (handed back uncounted),
or interrupted by a stop (left to the session's end). Each is counted and told to the
supervisor as a ``turn`` or ``spend`` event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import ResultMessage

from orchestrator.batching import fit_reply
from orchestrator.context import ContextKeeper, too_long
from orchestrator.give_back import GiveBack
from orchestrator.inbox import Inbox
from orchestrator.lifecycle import OnEvent, RunnerEvent
from orchestrator.mailbox import Message
from orchestrator.spend import Spend
from orchestrator.turn_reader import TurnReader


@dataclass
class ResumePoint:
    """The last entry of the last turn that succeeded (``at``), and whether the session
    must go back there (``rewind``): after an API error the CLI keeps the failed user
    message and merges it into the next turn (measured), so one poison message would
    fail every turn after it."""

    at: str | None
    rewind: bool = False


class TurnEnd:
    """One runner's turn endings: its spend, its inbox, its give-back and its context."""

    def __init__(
        self,
        *,
        spend: Spend,
        inbox: Inbox,
        giving: GiveBack,
        context: ContextKeeper,
        resume: ResumePoint,
        on_event: OnEvent,
        log: Any,
    ) -> None:
        self.spend = spend
        self.inbox = inbox
        self.giving = giving
        self.context = context
        self.resume = resume  # the runner's: read when it (re)connects
        self.on_event = on_event
        self.log = log

    async def finish(
        self,
        fresh: list[Message],
        reader: TurnReader,
        result: ResultMessage,
        final: str,
        *,
        started: float,
        interrupted: bool,
    ) -> None:
        if interrupted:
            await self.spend.spent(result, "interrupted")
            return  # released by run(): the turn did not finish
        if too_long(result):  # paid for, though the session ends on it
            await self.spend.spent(result, "context_overflow")
        self.context.check(result, final, fresh)  # raises ContextOverflow
        if self.spend.over_budget:
            await self._stopped_for_budget(fresh, result, time.monotonic() - started)
            return
        await self._settle(fresh, reader, result, final, time.monotonic() - started)

    async def _settle(
        self,
        batch: list[Message],
        reader: TurnReader,
        result: ResultMessage,
        final: str,
        took_s: float,
    ) -> None:
        usage = self.spend.count(result)  # a failed turn is paid for too
        stats = {
            "messages": [m.id for m in batch],
            "duration_ms": result.duration_ms,
            **usage.fields(),  # this turn's cost_usd, tokens, the session's running total
            "total_cost_usd": self.spend.totals["cost_usd"],  # the agent's, across sessions
            "took_s": round(took_s, 3),
        }
        if result.is_error or reader.unavailable:
            failure = await reader.failure(result, final)
            self.log.warning(
                "turn_failed",
                kind=failure.kind,
                reason=failure.reason,
                subtype=result.subtype,
                status=result.api_error_status,
                **stats,
            )
            await self.giving.failed_turn(batch, failure)
            self.inbox.inflight = []
            self.resume.rewind = reader.unavailable is not None or result.terminal_reason in (
                "api_error",
                "prompt_too_long",
            )
            await self.on_event(
                RunnerEvent.TURN,
                {**stats, "error": True, "failure": failure, "totals": self.spend.totals},
            )
            return
        final = fit_reply(final)
        self.resume.at = reader.uuid or self.resume.at
        await self.inbox.answer(batch, reader.turn.replied, final)
        self.log.info("turn", **stats)
        await self.on_event(
            RunnerEvent.TURN, {**stats, "totals": self.spend.totals, "resume_at": self.resume.at}
        )

    async def _stopped_for_budget(
        self, batch: list[Message], result: ResultMessage, took_s: float
    ) -> None:
        """The turn was interrupted over budget: its messages go back to the queue
        uncounted, where the paused agent's requests are answered ``budget_exceeded``."""
        usage = self.spend.count(result)
        stats = {"messages": [m.id for m in batch], **usage.fields(), "took_s": round(took_s, 3)}
        await self.inbox.release(batch)
        self.log.warning("turn_stopped_for_budget", **stats)
        await self.on_event(RunnerEvent.TURN, {**stats, "totals": self.spend.totals})
