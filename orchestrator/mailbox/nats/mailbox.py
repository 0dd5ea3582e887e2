"""``NatsMailbox``: the queue on NATS JetStream, the same contract as ``AsyncMailbox``.

Waits (reply, inbox) and the looking-and-tending operations (get, list, trace, dead
letters, retry, purge, sweep) live here; sending and consuming in their modules.
Listing reads the whole bucket in one ordered-consumer pass: fine for a team's
queue (sweep prunes done messages daily), not meant for millions of rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType

import nats.errors
import nats.js.errors

from orchestrator import errors
from orchestrator.mailbox.model import STATUSES, STILL_CHECK_S, Message, SweepResult
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.connect import is_stream_missing
from orchestrator.mailbox.nats.consuming import NatsConsumeOps, claimable, settle

_FOREVER = float("inf")


class NatsMailbox(NatsConsumeOps):
    """``async with NatsMailbox(NatsConfig(("nats://host:4222",))) as mailbox: ...``"""

    async def open(self) -> NatsMailbox:
        await super().open()
        return self

    async def __aenter__(self) -> NatsMailbox:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def check_file(self) -> None:
        """The SQLite backend's check that its file was not replaced under it. A bucket
        has no file to swap: a deleted bucket shows as errors on the next call."""

    # --- waits ----------------------------------------------------------------

    async def _find_reply_of(self, request_id: str) -> Message | None:
        found = (
            await rec.get(self.kv, rec.reply_key(request_id)) if rec.safe_id(request_id) else None
        )
        if found is None:
            return None
        reply = rec.decode_message(found[0], rec.reply_key(request_id))
        if reply.error is not None:
            raise errors.request_error_from_code(reply.error, request_id, reply.error_detail or "")
        return reply

    async def _poll_reply(self, request_id: str) -> tuple[Message | None, float]:
        with self._gone_with_store(request_id, "a wait for its answer"):
            return await self._poll_reply_once(request_id)

    async def _poll_reply_once(self, request_id: str) -> tuple[Message | None, float]:
        if (reply := await self._find_reply_of(request_id)) is not None:
            return reply, 0.0
        request = await self._load(request_id)
        if request.kind != "request":
            raise errors.NotARequest(request_id, request.kind)
        if request.status == "dead":
            # An error reply is written before its request goes dead, maybe between our
            # two reads: look again before calling it expired.
            if (reply := await self._find_reply_of(request_id)) is not None:
                return reply, 0.0
            raise errors.RequestExpired(
                request_id, f"{request.error}: {request.error_detail or ''}".rstrip(": ")
            )
        now = self.now()
        if request.status == "pending" and request.expires_at is not None:
            if request.expires_at <= now:  # nobody swept yet: settle it now
                done = await self._settle_one(request_id, now)
                if done is not None and done.message.status == "dead":
                    raise errors.RequestExpired(request_id, "expired: not delivered before its TTL")
                return None, 0.0
            return None, request.expires_at - now
        return None, _FOREVER

    async def wait_for_reply(
        self, request_id: str, timeout_s: float, *, still: Callable[[], bool] | None = None
    ) -> Message:
        """Block until the request is answered; return the response. Raises the error
        a failed request carries, RequestExpired if it went dead, RequestTimeout after
        ``timeout_s``. The request's wait-for edge is cleared on the way out. ``still``:
        as the SQLite backend's (WaitStopped once it says no and no reply came)."""

        async def poll() -> tuple[Message | None, float]:
            reply, due_in = await self._poll_reply(request_id)
            if reply is None and still is not None:
                if not still():
                    reply, due_in = await self._poll_reply(request_id)
                    if reply is None:
                        raise errors.WaitStopped(request_id)
                due_in = min(due_in, STILL_CHECK_S)
            return reply, due_in

        try:
            reply = await self._wait_on(self._subject("replied", request_id), poll, timeout_s)
            if reply is None:
                raise errors.RequestTimeout(request_id, timeout_s)
            assert isinstance(reply, Message)
            return reply
        finally:
            if self._kv is not None and rec.safe_id(request_id):
                # Best effort: an edge left by an outage expires with the ask's deadline,
                # and it must not turn an answer already in hand into an error.
                with contextlib.suppress(nats.errors.Error):
                    await self._delete(rec.wait_key(request_id))

    async def _poll_inbox(self, recipient: str) -> tuple[bool | None, float]:
        now = self.now()
        due = _FOREVER
        for m in await self._open_for(recipient):
            if claimable(m, now) or (
                m.status == "leased" and m.lease_expires is not None and m.lease_expires <= now
            ):
                return True, 0.0
            if m.status == "pending" and m.kind != "response" and m.available_at > now:
                due = min(due, m.available_at - now)
            if m.status == "leased" and m.lease_expires is not None:
                due = min(due, m.lease_expires - now)
        return None, due

    async def wait_for_messages(self, recipient: str, timeout_s: float) -> bool:
        """Block until something is claimable for ``recipient`` (True) or ``timeout_s``
        passes (False). Claiming is separate: another consumer may win the race."""
        ready = await self._wait_on(
            self._subject("wake", recipient), lambda: self._poll_inbox(recipient), timeout_s
        )
        return ready is not None

    # --- looking --------------------------------------------------------------

    async def get(self, message_id: str) -> Message:
        return await self._load(message_id)

    async def find_reply(self, request_id: str) -> Message | None:
        """The request's reply, or None: none yet, or no such request (as on SQLite). A
        bucket gone is the request gone with it, so None too: each caller asks before an
        operation on the request (a wait, a reply, a turn), and that operation says the
        loss (MessageNotFound with ``store_lost``)."""
        if not rec.safe_id(request_id):
            return None
        try:
            found = await rec.get(self.kv, rec.reply_key(request_id))
        except nats.js.errors.NotFoundError as exc:
            if not is_stream_missing(exc):
                raise
            return None
        return None if found is None else rec.decode_message(found[0], rec.reply_key(request_id))

    async def waited_requests(self, recipient: str) -> list[str]:
        """The ids of the requests to ``recipient`` someone waits on now (live edges)."""
        now, found = self.now(), []
        for key, value in (await self._scan("w.")).items():
            try:
                edge = rec.decode_edge(value, key)
            except errors.RecordUnreadable as exc:
                self._unreadable(exc)
                continue
            if edge["target"] == recipient and edge["expires_at"] > now:
                found.append(key.split(".", 1)[1])
        return sorted(found)

    async def _reply_if_readable(self, request_id: str) -> Message | None:
        """The request's reply for tending (retry, purge, sweep): one garbled by another
        program is said once and left where it is (not ours to remove), never an error
        that stops the team's sweep."""
        try:
            return await self.find_reply(request_id)
        except errors.RecordUnreadable as exc:
            self._unreadable(exc)
            return None

    async def related(self, message_id: str) -> list[Message]:
        """The message, its reply, and everything caused by it, oldest first."""
        await self._load(message_id)
        messages = await self._all_messages()
        family = {message_id}
        grew = True
        while grew:
            grew = False
            for m in messages:
                if m.id not in family and (
                    m.cause_id in family or (m.kind == "response" and m.correlation_id in family)
                ):
                    family.add(m.id)
                    grew = True
        return [m for m in messages if m.id in family]

    async def dead(self) -> list[Message]:
        return [m for m in await self._all_messages() if m.status == "dead"]

    async def peek(self, recipient: str, *, limit: int = 10) -> list[Message]:
        now = self.now()
        ready = [m for m in await self._open_for(recipient) if claimable(m, now)]
        return sorted(ready, key=lambda m: (m.available_at, m.id))[:limit]

    async def pending_count(self, recipient: str) -> int:
        return sum(
            1
            for m in await self._open_for(recipient)
            if m.status == "pending" and m.kind != "response"
        )

    async def pending_counts(self) -> dict[str, int]:
        """Messages waiting per recipient (not responses), through the hints: as many
        reads as there are open messages, however many are done."""
        counts: dict[str, int] = {}
        for m in await self._open_under("q."):
            if m.status == "pending" and m.kind != "response":
                counts[m.recipient] = counts.get(m.recipient, 0) + 1
        return counts

    async def status_counts(
        self, statuses: Sequence[str] = ("pending", "leased", "dead")
    ) -> dict[str, int]:
        """Messages per status, responses left out. The first call reads every message;
        the next ones on this client only what was written since (tally.py)."""
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; use {', '.join(STATUSES)}")
        return await self._tally.counts(self, list(dict.fromkeys(statuses)))

    # --- tending --------------------------------------------------------------

    async def retry(self, message_id: str) -> Message:
        """A dead message back to pending with fresh attempts and no TTL; a failed
        request's error reply is removed so it can be answered again."""
        before = await self._load(message_id)
        hint = rec.hint_key(before.recipient, message_id)
        await rec.put(self.kv, hint, b"")  # before the change: no pending message without one
        now = self.now()

        def revive(m: Message) -> Message:
            if m.status != "dead":
                raise errors.QueueError(
                    f"message '{message_id}' is {m.status}, not dead: only dead "
                    "letters can be retried"
                )
            return replace(
                m,
                status="pending",
                attempts=0,
                error=None,
                error_detail=None,
                lease_owner=None,
                lease_expires=None,
                expires_at=None,
                done_at=None,
                claimed_at=None,
                available_at=now,
            )

        try:
            _, after = await self._change(message_id, revive)
        except errors.QueueError:
            # Refused: the message is not dead now, maybe because another retry revived
            # it a moment ago and needs this very hint. Only a message still closed on
            # a fresh read loses it (``before`` is stale by then).
            if not await self._open_now(message_id):
                await self._drop_hint(hint, message_id)
            raise
        assert after is not None
        await rec.put(self.kv, hint, b"")  # again: a tidy-up may have seen it dead meanwhile
        reply = await self._reply_if_readable(message_id)
        if reply is not None and reply.error is not None:
            await self._delete(rec.reply_key(message_id))
            await self._delete(rec.msg_key(reply.id))
        await self._wake(after.recipient)
        return after

    async def _drop(self, m: Message) -> None:
        """Delete one message and what points at it."""
        await self._delete(rec.msg_key(m.id))
        await self._delete(rec.hint_key(m.recipient, m.id))
        if m.kind == "response" and m.correlation_id is not None:
            current = await self._reply_if_readable(m.correlation_id)
            if current is not None and current.id == m.id:
                await self._delete(rec.reply_key(m.correlation_id))

    @staticmethod
    def _needed_replies(messages: list[Message]) -> set[str]:
        """Replies whose request is still pending or leased: they keep it from being
        answered twice after a redelivery, so no purge or sweep removes them."""
        open_ids = {m.id for m in messages if m.status in ("pending", "leased")}
        return {m.id for m in messages if m.kind == "response" and m.correlation_id in open_ids}

    async def purge(self, *, statuses: Sequence[str] = ("done", "dead")) -> int:
        """Delete every message in these statuses (needed replies stay); how many."""
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; use {', '.join(STATUSES)}")
        messages = await self._all_messages()
        needed = self._needed_replies(messages)
        count = 0
        for m in messages:
            if m.status in statuses and m.id not in needed:
                await self._drop(m)
                count += 1
        remaining = {m.id for m in messages} - {
            m.id for m in messages if m.status in statuses and m.id not in needed
        }
        for key in await self._keys("w."):
            if key.split(".", 1)[1] not in remaining:
                await self._delete(key)
        return count

    async def sweep(self, *, retention_s: float = 86400.0) -> SweepResult:
        """Housekeeping: expired leases back to pending (dead when attempts are used
        up), undelivered messages past their TTL dead ('expired'), done messages older
        than ``retention_s`` deleted, stale wait edges dropped. Any client, any time.
        Delete markers under message and edge keys (``nats kv del``, an older version's
        deletes) are purged: every listing read each of them again, for good."""
        now = self.now()
        requeued = expired = dead = pruned = 0
        markers: list[str] = []
        messages = await self._all_messages(gone=markers)
        needed = self._needed_replies(messages)
        for m in messages:
            if settle(m, now).changed:
                try:
                    done = await self._settle_one(m.id, now)
                except errors.MessageNotFound:
                    # Gone since the listing (acked and purged meanwhile, or lost with the
                    # store): nothing to settle. It ended the whole sweep (chore_failed).
                    continue
                if done is not None:
                    requeued += done.requeued
                    dead += done.dead
                    expired += done.expired
                    if done.requeued and not done.expired:
                        await self._wake(m.recipient)
            elif (
                m.status == "done"
                and m.done_at is not None
                and m.done_at <= now - retention_s
                and m.id not in needed
            ):
                await self._drop(m)
                pruned += 1
        for key, value in (await self._scan("w.", gone=markers)).items():
            try:
                over = rec.decode_edge(value, key)["expires_at"] <= now
            except errors.RecordUnreadable as exc:  # never runs out: swept, as on SQLite
                self._unreadable(exc)
                over = True
            if over:
                await self._delete(key)
        for key in markers:  # read absent: a marker, or removed since
            # Up to the marker only: a record written there since (an ask made again
            # under its id writes its edge over the marker) was purged with it.
            last, revision = await rec.last_entry(self.kv, key)
            if last is None and revision:
                await self._delete(key, upto=revision)
        return SweepResult(requeued=requeued, expired=expired, dead=dead, pruned=pruned)

    async def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        sender: str | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Messages matching every filter given, newest first. The pending or leased
        ones are read through their hints (`ps` and `top` list the leased ones each
        refresh): the done messages, most of the bucket, are not read."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if status in ("pending", "leased"):
            prefix = "q." if recipient is None else f"q.{rec.token(recipient)}."
            found = sorted(await self._open_under(prefix), key=lambda m: m.id)
        else:
            found = await self._all_messages()
        out = [
            m
            for m in reversed(found)
            if (status is None or m.status == status)
            and (recipient is None or m.recipient == recipient)
            and (sender is None or m.sender == sender)
        ]
        return out[:limit]
