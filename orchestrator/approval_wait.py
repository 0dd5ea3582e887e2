"""The agent side of approvals: ask the approver through the queue and wait.

See :mod:`orchestrator.approvals` for the request's shape and how answers read.
While it waits the agent is ``blocked`` (reason ``approval``) in the registry,
and the turn watchdog does not count the wait as silence.

One grant, one call: when a grant lets a call through, its request id is written to the
agent's registry row (meta ``approvals_used``) before the hook answers "allow". The row
is in the queue (SQLite or NATS) and survives the supervisor, so a turn redelivered after
a SIGKILL, a ``restart`` or a hung turn, which makes the same call again, asks afresh
instead of running the command a second time on the answer already acted on; an answer
that arrived while no session was waiting is still used (nobody acted on it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import partial
from typing import Any

import anyio
import structlog

from orchestrator import errors
from orchestrator.approvals import answer_of, approval_of, key_of, shown_input, timeout_of
from orchestrator.lifecycle import OnEvent, RunnerEvent
from orchestrator.mailbox import AgentInfo, AsyncMailboxBackend, Message
from orchestrator.prompts import APPROVAL_GRAMMAR
from orchestrator.relay import Turn

log = structlog.get_logger()

USED_META = "approvals_used"  # the agent's meta key: grants already acted on, newest last
USED_KEPT = 200  # only a redelivered turn's calls look here: the recent ones are enough
LATE_SLACK_S = 5.0  # a grant written this long past its approval_timeout still counts
# When (time.monotonic()) the PreToolUse hook asking must have answered: the CLI gives up on
# it then (measured: it cancels the callback at the matcher's timeout to the millisecond,
# and the model reads "PreToolUse hook did not respond before its timeout (host client may
# be unreachable)"), which left the request pending for a late `approve` to grant into
# nothing. Set by the policy hook (orchestrator/policy.py) for the call it decides.
HOOK_DEADLINE: ContextVar[float | None] = ContextVar("hook_deadline", default=None)
# The grant the hook call took (its use recorded), as the means to give it back: the policy
# hook refuses an approved command that other agents' writes held until the hook had to
# answer, and the approval then stands for the same call made again (True: given back).
TAKEN: ContextVar[Callable[[], Awaitable[bool]] | None] = ContextVar("approval_taken", default=None)


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
        # afresh. Grants acted on are also recorded in the queue (USED_META), for the
        # sessions after this one; an answer nobody acted on may still be used.
        self._used: set[str] = set()
        self._marking = anyio.Lock()  # parallel calls: one read-modify-write of the list

    async def decide(
        self, tool: str, tool_input: dict[str, Any], subagent: str | None, why: str = ""
    ) -> tuple[bool, str]:
        TAKEN.set(None)
        approver, timeout_s = self.settings()
        turn = self.turn()
        cause = turn.cause_id if turn else None
        key = key_of(self.agent, tool, tool_input, cause)
        try:
            used = self._used | await self._used_before()
        except errors.OrchestratorError as exc:
            self.log.warning("approval_denied", tool=tool, reason=str(exc))
            return False, f"no approval: cannot read the approvals already used: {exc}"
        request = await self._existing(approver, key, used)
        if request is None:
            shown, shortened = shown_input(tool_input)
            body = {
                "approval": {
                    "key": key,
                    "agent": self.agent,
                    "subagent": subagent,
                    "tool": tool,
                    "input": shown,
                    "cause_id": cause,
                    "timeout_s": timeout_s,
                    **({"input_shortened": True} if shortened else {}),
                    **({"why": why} if why else {}),
                },
                "text": f"'{self.agent}' asks to run {tool} {json.dumps(shown)[:2000]}"
                + (f" ({why})" if why else "")
                + ". "
                + APPROVAL_GRAMMAR,
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
                input=shown,
                approver=approver,
                subagent=subagent,
                cause_id=cause,
                why=why,
            )
        else:
            self.log.info("approval_resumed", request_id=request.id, tool=tool)
        self._used.add(request.id)
        try:
            granted, reason = await self._wait(request, timeout_s, turn)
        except errors.MessageNotFound:
            # Gone while waited on (lost with a NATS server's store, or ended and purged
            # meanwhile): no answer can come. It came out of the hook as an error in the
            # check (`policy_failed`), the reason a bare "no message with id".
            self.log.warning("request_gone", request_id=request.id, tool=tool)
            granted, reason = (
                False,
                f"no approval: the approval request {request.id} is no longer in the queue "
                "(its NATS server lost its store, or it was removed); try again",
            )
        if granted:
            try:
                await self._mark_used(request.id)
                TAKEN.set(partial(self._give_back, request.id))
            except errors.OrchestratorError as exc:
                # Not recorded: a restart could run the call twice on this one grant, so it
                # does not run now; the grant stays unused for the next try to take.
                self._used.discard(request.id)
                granted = False
                reason = (
                    f"approved, but the use of approval {request.id} could not be recorded "
                    f"({exc}), so the call was not made; try again"
                )
        event = "approval_granted" if granted else "approval_denied"
        self.log.info(event, request_id=request.id, tool=tool, reason=reason, subagent=subagent)
        return granted, reason

    async def _existing(self, approver: str, key: str, used: set[str]) -> Message | None:
        """The same approval asked before (a redelivered turn after a restart), if nobody
        acted on its answer yet."""
        for m in await self.mailbox.list(sender=self.agent, recipient=approver, limit=500):
            fields = approval_of(m)
            if fields is not None and fields.get("key") == key and m.id not in used:
                return m
        return None

    async def _used_before(self) -> set[str]:
        return set(_used_ids(await self.mailbox.agent(self.agent)))

    async def _mark_used(self, request_id: str) -> None:
        """Record in the queue that a grant was acted on (before the call runs)."""
        async with self._marking:
            ids = [i for i in _used_ids(await self.mailbox.agent(self.agent)) if i != request_id]
            ids = [*ids[-(USED_KEPT - 1) :], request_id]
            await self.mailbox.update_agent(self.agent, meta={USED_META: ids}, heartbeat=False)

    async def _give_back(self, request_id: str) -> bool:
        """The grant ``request_id`` was not acted on after all: its use is struck out, so
        the same call again runs on it. False if the queue could not be written (the
        grant then stays used: the call asks again)."""
        try:
            async with self._marking:
                ids = _used_ids(await self.mailbox.agent(self.agent))
                if request_id in ids:
                    kept = [i for i in ids if i != request_id]
                    await self.mailbox.update_agent(
                        self.agent, meta={USED_META: kept}, heartbeat=False
                    )
        except errors.OrchestratorError as exc:
            self.log.warning("approval_not_kept", request_id=request_id, error=str(exc))
            return False
        self._used.discard(request_id)
        self.log.info("approval_kept", request_id=request_id)
        return True

    async def _wait(
        self, request: Message, timeout_s: float, turn: Turn | None
    ) -> tuple[bool, str]:
        reply = await self.mailbox.find_reply(request.id)
        if reply is not None:
            if (why := _too_late(reply, request)) is not None:
                return False, why
            return answer_of(reply, request)
        # The request's own timeout, as `approvals` and `approve` read it: one resumed
        # after a reload changed approval_timeout (its agent restarted) ends when it does.
        fields = approval_of(request)
        timeout_s = (timeout_of(fields.get("timeout_s")) if fields else 0.0) or timeout_s
        left = request.created_at + timeout_s - time.time()
        deadline = HOOK_DEADLINE.get()
        cut = deadline is not None and deadline - time.monotonic() < left
        if deadline is not None and cut:
            left = deadline - time.monotonic()
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
        if cut:  # the hook must answer now: the request ends too, not left for a late yes
            why = (
                f"not approved in time: no answer from the approver before this call's "
                f"check had to answer ({timeout_s:g}s approval_timeout): denied"
            )
        if not await self.mailbox.fail_request(request.id, errors.RequestTimeout.code, why):
            late = await self.mailbox.find_reply(request.id)  # answered just now
            if late is not None:
                return answer_of(late, request)
        return False, why


def _too_late(reply: Message, request: Message) -> str | None:
    """Why a grant found already given (no session waited for it: the supervisor was
    stopped) is not used: it was given after the request's own approval_timeout ran out.
    `approve` refuses such a grant ("came too late"), but a `reply ID approve`, an
    approver agent's reply or a NATS team's answer is written whatever the time; the
    redelivered call is denied all the same, as the agent's wait would have. LATE_SLACK_S
    covers the write of a grant `approve` checked in time."""
    fields = approval_of(request)
    timeout_s = timeout_of(fields.get("timeout_s")) if fields is not None else 0.0
    if not timeout_s or reply.error or not answer_of(reply, request)[0]:
        return None
    ran_out = request.created_at + timeout_s
    if reply.created_at <= ran_out + LATE_SLACK_S:
        return None
    return (
        f"not approved in time: approval {request.id} was granted by {reply.sender} "
        f"{reply.created_at - ran_out:.0f}s after its {timeout_s:g}s approval_timeout ran "
        "out, too late to be used: denied (the same call again asks afresh)"
    )


def _used_ids(info: AgentInfo | None) -> list[str]:
    """The grants recorded as used in an agent's row (a foreign or hand-edited row: only
    its strings count)."""
    ids = info.meta.get(USED_META) if info is not None else None
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
