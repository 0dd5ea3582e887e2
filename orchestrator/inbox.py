"""One agent's side of the queue while its session runs: claiming the next batch (or
waiting idle), skipping requests already answered, keeping the leases of the messages
in hand, replying with the turn's answer and acking.

Delivery guarantees kept here: a message is acked only after its reply is committed; a
redelivered request that already has a reply is not answered twice. What becomes of a
failed turn's messages is :mod:`orchestrator.give_back`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

from orchestrator import errors, outage
from orchestrator.approvals import approval_of
from orchestrator.batching import BATCH_LIMIT, batch_of
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.outage import Outage

LEASE_S = 60.0  # extended while the turn runs
IDLE_WAIT_S = 30.0  # an idle wait for new messages, before the next claim


class Inbox:
    """One runner's claims: its agent's name, its lease owner, its log, and the messages
    in hand (``inflight``: given back if the session ends with them)."""

    def __init__(
        self,
        mailbox: AsyncMailboxBackend,
        name: str,
        owner: str,
        log: Any,
        outage: Outage,
        *,
        stop: anyio.Event,
        hold: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self.mailbox = mailbox
        self.name = name
        self.owner = owner
        self.log = log
        self.outage = outage  # the runner's: one warning per outage, whichever step met it
        self.stop = stop  # the runner's: set, nothing more is claimed
        self.hold = hold  # awaited before each claim: a paused agent (budget) claims nothing
        self.inflight: list[Message] = []
        self._idle_scope: anyio.CancelScope | None = None
        # A wake that found no wait to cut short (it came mid-claim): the next wait is
        # none. The CLI's death told while the claim was in the queue was lost, and the
        # idle wait after it ran its IDLE_WAIT_S before the session saw the death: the
        # restart came up to 30 s late (a stop has its own flag, checked after the claim).
        self._woken = False
        self._lost: set[str] = set()  # messages in hand whose lease was lost (said once)

    def wake(self) -> None:
        """Cut an idle wait short (a stop, the CLI's death), or the next one if none runs."""
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        else:
            self._woken = True

    async def next_batch(self) -> list[Message]:
        if self.hold is not None:
            # Called even after a wake (then cut short at its first wait): it is the
            # budget's look at the agent, not a wait of the inbox's own.
            cut = await self._cut_short(partial(self.hold, self.name), woken_skips=False)
            if self.stop.is_set() or cut:
                self._woken = False
                return []
        try:
            claimed = await self.mailbox.claim(
                self.name, owner=self.owner, lease_s=LEASE_S, limit=BATCH_LIMIT
            )
        except errors.QueueStalled as exc:  # idle: try again soon, as the same session
            self.outage.down("claim", exc)
            await self._idle(partial(anyio.sleep, outage.RETRY_S))
            return []
        self.outage.up()
        batch = batch_of(claimed)
        if len(batch) < len(claimed):  # handed back uncounted, claimed again next turn
            await self._release([m.id for m in claimed if m not in batch])
        if batch or self.stop.is_set():
            return batch
        try:
            await self._idle(partial(self.mailbox.wait_for_messages, self.name, IDLE_WAIT_S))
        except errors.QueueStalled as exc:  # still out of reach after its own retries
            self.outage.down("wait", exc)
        return []

    async def _idle(self, waiting: Callable[[], Awaitable[Any]]) -> None:
        """Wait while idle; a stop or the CLI's death cuts it short, or skips it when it
        came before the wait began (during the claim)."""
        await self._cut_short(waiting, woken_skips=True)

    async def _cut_short(self, waiting: Callable[[], Awaitable[Any]], *, woken_skips: bool) -> bool:
        """Run ``waiting`` where a wake (a stop, the CLI's death) cancels it; True if one
        did. A wake that came before (it found no wait to cancel) skips it if
        ``woken_skips`` (an idle wait: not even called), else it runs in a scope cancelled
        already (the budget hold: called, cut short at its first wait)."""
        if self._woken and woken_skips:
            self._woken = False
            return True
        with anyio.CancelScope() as scope:
            self._idle_scope = scope
            try:
                if self._woken:
                    scope.cancel()
                await waiting()
            finally:
                # Also when it raised: left set, the next wake (the CLI's death)
                # cancelled this dead scope and was lost.
                self._idle_scope = None
        return scope.cancelled_caught

    async def unanswered(self, batch: list[Message]) -> list[Message]:
        """The messages of ``batch`` to deliver (now in hand): a request already answered
        (a redelivery after a crash) is acked instead, one whose reply cannot be read is
        given up on."""
        self.inflight = batch
        fresh = []
        for m in batch:
            try:
                answered = m.kind == "request" and await self._answered(m.id)
            except errors.RecordUnreadable as exc:
                await self._unanswerable(m, exc)
                continue
            if answered:
                self.log.info("already_answered", request_id=m.id)  # redelivery after a crash
                await self.ack([m.id])
            else:
                fresh.append(m)
        self.inflight = fresh
        return fresh

    async def answer(self, batch: list[Message], replied: set[str], final: str) -> None:
        """Reply ``final`` to the batch's requests the turn did not answer itself
        (``replied``), then ack the whole batch: it is out of hand."""
        answered = False
        for m in batch:
            if m.kind != "request" or m.id in replied:
                continue
            body: Any = final
            if len(batch) > 1 and approval_of(m) is not None:  # batch_of sends them alone
                body = {"approval": "denied", "reason": "the final text was for other messages"}
            try:  # the answer is in hand: kept until the queue takes it (the asker waits)
                await self.outage.retry("reply", partial(self.mailbox.reply, m.id, self.name, body))
                answered = True
                self.log.info("replied", request_id=m.id, to=m.sender, body=final)
            except errors.AlreadyReplied:
                self.log.info("already_answered", request_id=m.id)
            except errors.MessageNotFound:
                # Gone from the queue while the turn ran: lost with a NATS server's store
                # (chores.check_store), or removed by hand. Nobody can read an answer to
                # it; ending the session for it cost a restart of the agent.
                self.log.warning(
                    "request_gone",
                    request_id=m.id,
                    reason="no longer in the queue (lost with the server's store, or "
                    "removed): its answer is dropped",
                )
        if answered:
            # An asker in this process was woken by the reply and has run its check; the
            # SDK's write of its tool result takes a lock (one more turn of the loop). Let it
            # go before our ack and bookkeeping, which are off the asker's path (issue 14.4).
            await anyio.lowlevel.cancel_shielded_checkpoint()  # not a new cancellation point
        await self.ack([m.id for m in batch])
        self.inflight = []

    async def release(self, batch: list[Message]) -> None:
        """Hand ``batch`` back uncounted (a turn stopped for the budget): out of hand."""
        await self._release([m.id for m in batch])
        self.inflight = []

    async def _release(self, ids: list[str]) -> None:
        try:
            await self.mailbox.release(self.owner, ids)
        except errors.QueueStalled as exc:  # they come back when their lease runs out
            self.outage.down("release", exc)

    async def ack(self, ids: list[str]) -> None:
        """Mark handled messages done. A lease lost meanwhile, or a queue out of reach (a
        NATS node dying), is logged, not the session's end: the replies are committed, and
        a message that comes back is skipped as answered (ending the session for it cost
        a restart, mid-ask for the next turn)."""
        held = [i for i in ids if i not in self._lost]  # said already: not acked again
        self._lost.difference_update(ids)
        try:
            await self._each_held(held, lambda left: self.mailbox.ack(left, owner=self.owner))
        except errors.QueueStalled as exc:
            self.log.warning("ack_failed", messages=ids, error=str(exc))

    async def _each_held(
        self, ids: list[str], step: Callable[[list[str]], Awaitable[None]]
    ) -> list[str]:
        """``step(ids)`` (an ack, an extension: all or nothing on either backend) on the
        ids still held: each one whose lease is lost (gone from the queue, purged or lost
        with a NATS store, or taken by another) is said once and left out, and the rest
        tried again. One such message in a batch left the others unacked (then
        redelivered, a notice handled twice) and their leases unextended. The ids lost."""
        left, lost = list(dict.fromkeys(ids)), []
        while left:
            try:
                await step(left)
                break
            except errors.LeaseLost as exc:
                self.log.warning("lease_lost", message_id=exc.message_id)
                if exc.message_id not in left:
                    break  # not one of ours: nothing to leave out
                left.remove(exc.message_id)
                lost.append(exc.message_id)
        return lost

    async def _unanswerable(self, request: Message, exc: errors.RecordUnreadable) -> None:
        """A request whose reply slot holds a record we cannot read (garbled in a NATS
        bucket by another program): no answer could ever be stored, and raising here
        ended the session with the batch given back uncounted, a crash loop. It goes to
        the dead letters with the reason, for an operator to mend and `queue retry`."""
        self.log.warning("reply_unreadable", request_id=request.id, key=exc.key, reason=exc.reason)
        try:
            await self.mailbox.nack(
                request.id, owner=self.owner, error=str(exc), dead_code=exc.code
            )
        except errors.LeaseLost as lost:
            self.log.warning("lease_lost", message_id=lost.message_id)
        except errors.QueueStalled as stalled:
            self.log.warning("nack_failed", messages=[request.id], error=str(stalled))

    async def _answered(self, request_id: str) -> bool:
        """Whether the request has its reply (looked up until the queue answers: a turn
        on an answered request would do its work twice)."""
        found = await self.outage.retry("find_reply", lambda: self.mailbox.find_reply(request_id))
        return found is not None

    async def extend_leases(self) -> None:
        """Push the leases of the messages in hand on; one whose lease is lost is said
        once and not extended or acked again, the others extended all the same."""
        in_hand = [m.id for m in self.inflight]
        self._lost.intersection_update(in_hand)
        lost = await self._each_held(
            [i for i in in_hand if i not in self._lost],
            lambda held: self.mailbox.extend(held, owner=self.owner, lease_s=LEASE_S),
        )
        self._lost.update(lost)

    async def keep_leases(self) -> None:
        while True:
            await anyio.sleep(LEASE_S / 3)
            if self.inflight:
                try:
                    await self.extend_leases()
                except errors.QueueStalled as exc:  # tried again at the next round; the
                    # lease has two more rounds to run. Ending the session would kill the
                    # turn in flight (an ask's answer with it) for a queue's hiccup.
                    self.log.warning("extend_failed", error=str(exc))
