"""The agent side of approvals: ask the approver through the queue and wait.

See :mod:`orchestrator.approvals` for the request's shape and how answers read.
While it waits the agent is ``blocked`` (reason ``approval``) in the registry,
and the turn watchdog does not count the wait as silence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from orchestrator import errors
from orchestrator.approvals import answer_of, approval_of, key_of
from orchestrator.lifecycle import OnEvent, RunnerEvent
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.relay import Turn

log = structlog.get_logger()


class Approvals:
    """Asks one agent's approver and waits, as the agent's :class:`Policy` decides."""

    def __init__(
        self,
        agent: str,
        mailbox: AsyncMailboxBackend,
        settings: Callable[[], tuple[str, float]],  # (approver, timeout_s), read per call
        turn: Callable[[], Turn | None],
        on_event: OnEvent,
    ) -> None:
        self.agent = agent
        self.mailbox = mailbox
        self.settings = settings
        self.turn = turn
        self.on_event = on_event
        self.log = log.bind(agent=agent)
        self._waiting = 0  # approvals this session waits on (parallel tool calls)
        # Answers this session already acted on: the same call again in the same turn asks
        # afresh. (A new session, after a restart, may use an answer given meanwhile.)
        self._used: set[str] = set()

    async def decide(
        self, tool: str, tool_input: dict[str, Any], subagent: str | None
    ) -> tuple[bool, str]:
        approver, timeout_s = self.settings()
        turn = self.turn()
        cause = turn.cause_id if turn else None
        key = key_of(self.agent, tool, tool_input, cause)
        request = await self._existing(approver, key, timeout_s)
        if request is None:
            body = {
                "approval": {
                    "key": key,
                    "agent": self.agent,
                    "subagent": subagent,
                    "tool": tool,
                    "input": tool_input,
                    "cause_id": cause,
                    "timeout_s": timeout_s,
                },
                "text": f"'{self.agent}' asks to run {tool} {json.dumps(tool_input)[:2000]}. "
                "Answer 'approve', or 'deny: <reason>'.",
            }
            try:
                # wait_s: an approver agent asking this one back would deadlock both
                request = await self.mailbox.request(
                    self.agent, approver, body, cause_id=cause, wait_s=timeout_s
                )
            except errors.OrchestratorError as exc:
                self.log.warning("approval_denied", tool=tool, reason=str(exc))
                return False, f"no approval: cannot ask {approver}: {exc}"
            self.log.info(
                "approval_requested",
                request_id=request.id,
                tool=tool,
                input=tool_input,
                approver=approver,
                subagent=subagent,
                cause_id=cause,
            )
        else:
            self.log.info("approval_resumed", request_id=request.id, tool=tool)
        self._used.add(request.id)
        granted, reason = await self._wait(request, timeout_s, turn)
        event = "approval_granted" if granted else "approval_denied"
        self.log.info(event, request_id=request.id, tool=tool, reason=reason, subagent=subagent)
        return granted, reason

    async def _existing(self, approver: str, key: str, timeout_s: float) -> Message | None:
        """The same approval asked before (a redelivered turn after a restart)."""
        for m in await self.mailbox.list(sender=self.agent, recipient=approver, limit=500):
            fields = approval_of(m)
            if fields is not None and fields.get("key") == key and m.id not in self._used:
                return m
        return None

    async def _wait(
        self, request: Message, timeout_s: float, turn: Turn | None
    ) -> tuple[bool, str]:
        reply = await self.mailbox.find_reply(request.id)
        if reply is not None:
            return answer_of(reply, request)
        left = request.created_at + timeout_s - time.time()
        self._waiting += 1
        if self._waiting == 1:
            await self.on_event(
                RunnerEvent.BLOCKED, {"reason": "approval", "request_id": request.id}
            )
        if turn is not None:
            turn.asks_in_flight += 1  # waiting on a person is not a hung turn
        try:
            if left > 0:
                reply = await self.mailbox.wait_for_reply(request.id, left)
                return answer_of(reply, request)
        except errors.RequestTimeout:
            pass
        except errors.RequestFailed as exc:
            return False, f"no approval: {exc.code} ({exc})"
        finally:
            if turn is not None:
                turn.asks_in_flight -= 1
            self._waiting -= 1
            if self._waiting == 0:
                await self.on_event(RunnerEvent.UNBLOCKED, {"request_id": request.id})
        why = f"no answer from the approver within {timeout_s:g}s: denied"
        if not await self.mailbox.fail_request(request.id, errors.RequestTimeout.code, why):
            late = await self.mailbox.find_reply(request.id)  # answered just now
            if late is not None:
                return answer_of(late, request)
        return False, why
