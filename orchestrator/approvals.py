"""Approvals through the queue: a call matching ``approve:`` waits for a yes.

An approval is a request from the agent to its approver (``user`` unless
``approver: NAME``) whose body is ``{"approval": {...}, "text": ...}``: the
agent, the tool, its input, the turn's cause, the subagent if one made the
call. The answer is the request's reply: ``{"approval": "granted"}`` or
``{"approval": "denied", "reason": ...}`` from ``octy-orchestrate approve/deny``,
or a text starting with "approve"/"yes" from an agent or a script. No answer
within ``approval_timeout`` is a denial with that reason (the request is then
answered ``timeout`` and leaves the pending list).

Because it is a queue request, a pending approval outlives the supervisor: after
a restart the redelivered turn makes the same call, and the same request (same
agent, tool, input and cause) is waited on again, or its answer used.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from orchestrator import errors
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.relay import Turn, text_of

log = structlog.get_logger()

GRANTED, DENIED = "granted", "denied"
_YES = ("approve", "approved", "yes", "allow", "granted", "ok")


def approval_of(message: Message) -> dict[str, Any] | None:
    """The approval fields of a request, or None if it is not an approval."""
    body = message.body
    if message.kind != "request" or not isinstance(body, dict):
        return None
    fields = body.get("approval")
    return fields if isinstance(fields, dict) else None


def answer_of(reply: Message) -> tuple[bool, str]:
    """(granted, reason) from an approver's reply, whatever shape it took."""
    if reply.error:
        return False, f"no approval: {reply.error}" + (
            f" ({reply.error_detail})" if reply.error_detail else ""
        )
    body = reply.body
    if isinstance(body, dict) and body.get("approval") in (GRANTED, DENIED):
        reason = str(body.get("reason") or "")
        if body["approval"] == GRANTED:
            return True, f"approved by {reply.sender}" + (f": {reason}" if reason else "")
        return False, f"denied by {reply.sender}" + (f": {reason}" if reason else "")
    text = text_of(body).strip()
    first = text.split(maxsplit=1)[0].strip(".,:;!").lower() if text else ""
    if first in _YES:
        return True, f"approved by {reply.sender}: {text}"
    return False, f"denied by {reply.sender}: {text or '(no reason given)'}"


def key_of(agent: str, tool: str, tool_input: dict[str, Any], cause_id: str | None) -> str:
    raw = json.dumps([agent, tool, tool_input, cause_id], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Approvals:
    """Asks one agent's approver and waits, as the agent's :class:`Policy` decides."""

    def __init__(
        self,
        agent: str,
        mailbox: AsyncMailboxBackend,
        settings: Callable[[], tuple[str, float]],  # (approver, timeout_s), read per call
        turn: Callable[[], Turn | None],
        on_event: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.agent = agent
        self.mailbox = mailbox
        self.settings = settings
        self.turn = turn
        self.on_event = on_event
        self.log = log.bind(agent=agent)

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
            request = await self.mailbox.request(
                self.agent, approver, body, cause_id=cause, ttl_s=timeout_s
            )
            self.log.info(
                "approval_requested", request_id=request.id, tool=tool, input=tool_input,
                approver=approver, subagent=subagent, cause_id=cause,
            )
        else:
            self.log.info("approval_resumed", request_id=request.id, tool=tool)
        granted, reason = await self._wait(request, timeout_s, turn)
        event = "approval_granted" if granted else "approval_denied"
        self.log.info(event, request_id=request.id, tool=tool, reason=reason, subagent=subagent)
        return granted, reason

    async def _existing(self, approver: str, key: str, timeout_s: float) -> Message | None:
        """The same approval asked before (a redelivered turn after a restart)."""
        for m in await self.mailbox.list(sender=self.agent, recipient=approver, limit=500):
            fields = approval_of(m)
            if fields is not None and fields.get("key") == key:
                return m
        return None

    async def _wait(
        self, request: Message, timeout_s: float, turn: Turn | None
    ) -> tuple[bool, str]:
        reply = await self.mailbox.find_reply(request.id)
        if reply is not None:
            return answer_of(reply)
        left = request.created_at + timeout_s - time.time()
        await self.on_event("blocked", {"reason": "approval", "request_id": request.id})
        if turn is not None:
            turn.asks_in_flight += 1  # waiting on a person is not a hung turn
        try:
            if left > 0:
                reply = await self.mailbox.wait_for_reply(request.id, left)
                return answer_of(reply)
        except errors.RequestTimeout:
            pass
        except errors.RequestFailed as exc:
            return False, f"no approval: {exc.code} ({exc})"
        finally:
            if turn is not None:
                turn.asks_in_flight -= 1
            await self.on_event("unblocked", {"request_id": request.id})
        why = f"no answer from the approver within {timeout_s:g}s: denied"
        if not await self.mailbox.fail_request(request.id, errors.RequestTimeout.code, why):
            late = await self.mailbox.find_reply(request.id)  # answered just now
            if late is not None:
                return answer_of(late)
        return False, why
