"""Taking messages out on JetStream: claim with a lease, ack, nack, extend, release,
and the clock-driven repairs (expired leases, TTLs) that claim and sweep share.

A lease is two fields of the message's record, changed by compare-and-set: any
process (a runner, the CLI's ``queue retry``, another supervisor) can read, extend
or end it by id, and each claim may ask its own lease length. (A JetStream
consumer's ack wait is one length for the whole consumer, and only the connection
that fetched a message can ack it: see the README's NATS section.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from orchestrator import errors
from orchestrator.mailbox.model import (
    DEFAULT_LEASE_S,
    ERR_EXPIRED,
    ERR_MAX_ATTEMPTS,
    Message,
)
from orchestrator.mailbox.nats.sending import NatsSendOps


@dataclass(frozen=True)
class Settled:
    """What the clock alone did to one message."""

    message: Message
    requeued: bool = False
    dead: bool = False
    expired: bool = False

    @property
    def changed(self) -> bool:
        return self.requeued or self.dead or self.expired


def settle(m: Message, now: float) -> Settled:
    """Apply what time has done: an expired lease goes back to pending (dead on the
    last attempt), a pending message past its TTL goes dead 'expired'. Pure."""
    requeued = dead = False
    if m.status == "leased" and m.lease_expires is not None and m.lease_expires <= now:
        if m.attempts >= m.max_attempts:
            m = replace(
                m,
                status="dead",
                error=ERR_MAX_ATTEMPTS,
                error_detail=m.error_detail or "lease expired on the last attempt",
                lease_expires=None,
                done_at=now,
            )
            dead = True
        else:
            m = replace(m, status="pending", lease_owner=None, lease_expires=None)
            requeued = True
    if m.status == "pending" and m.expires_at is not None and m.expires_at <= now:
        m = replace(
            m,
            status="dead",
            error=ERR_EXPIRED,
            error_detail="not delivered before its TTL",
            done_at=now,
        )
        return Settled(m, requeued, dead, expired=True)
    return Settled(m, requeued, dead)


def claimable(m: Message, now: float) -> bool:
    return (
        m.status == "pending"
        and m.kind != "response"
        and m.available_at <= now
        and (m.expires_at is None or m.expires_at > now)
    )


class NatsConsumeOps(NatsSendOps):
    """Each operation reads a message, then changes it by compare-and-set, which reads it
    again: on SQLite the two are one transaction, here a message can be gone in between.
    Purged by `queue purge`, or lost with the server's store: a server
    restarted without it answers a read of the missing bucket "key not found", and so
    does the bucket made again, empty. Such a message is a lease lost (ack, extend), one
    not to claim (claim), nothing to hand back (release): what the same operation says
    of a message already gone at its first read. Its MessageNotFound escaped the ack of
    a session that had just replied; the session crashed and its agent's claude was
    started again (3 of 15 loaded runs of the two-machine store-loss test)."""

    async def _settle_one(self, message_id: str, now: float) -> Settled | None:
        """Compare-and-set the clock's effect on one message; None if nothing changed."""
        outcome: list[Settled] = []

        def step(m: Message) -> Message | None:
            outcome[:] = [settle(m, now)]
            return outcome[0].message if outcome[0].changed else None

        _, after = await self._change(message_id, step)
        if after is None:
            return None
        if after.status == "dead":
            await self._closed(after)
        return outcome[0]

    async def claim(
        self, recipient: str, *, owner: str, lease_s: float = DEFAULT_LEASE_S, limit: int = 1
    ) -> list[Message]:
        """Lease up to ``limit`` messages for ``recipient``, oldest first (by when they
        became available). Each is one compare-and-set: of two consumers racing for a
        message, exactly one gets it. Expired leases and TTLs of this recipient are
        settled first, so a crashed consumer's messages come back without a sweep."""
        if limit < 1:
            return []
        now = self.now()
        candidates = []
        for m in await self._open_for(recipient):
            s = settle(m, now)
            try:
                if s.changed and await self._settle_one(m.id, now) is None:
                    continue  # someone else moved it first; skip it this round
            except errors.MessageNotFound:
                continue  # gone since the listing (see NatsConsumeOps)
            if claimable(s.message, now):
                candidates.append(s.message)
        candidates.sort(key=lambda m: (m.available_at, m.id))
        got: list[Message] = []
        for m in candidates:
            if len(got) == limit:
                break

            def take(current: Message) -> Message | None:
                if not claimable(current, now) or current.recipient != recipient:
                    return None
                return replace(
                    current,
                    status="leased",
                    lease_owner=owner,
                    lease_expires=now + lease_s,
                    attempts=current.attempts + 1,
                    claimed_at=now,
                )

            try:
                _, after = await self._change(m.id, take)
            except errors.MessageNotFound:
                continue  # gone since the listing (see NatsConsumeOps)
            if after is not None:
                got.append(after)
        return got

    async def _held(self, message_ids: Sequence[str], owner: str) -> list[str]:
        """The ids, deduplicated, after checking each is leased by ``owner``: LeaseLost
        names the first that is not (so a batch fails before anything changes)."""
        ids = list(dict.fromkeys(message_ids))
        for message_id in ids:
            try:
                m = await self._load(message_id)
            except errors.MessageNotFound:
                raise errors.LeaseLost(message_id, owner) from None
            if m.status != "leased" or m.lease_owner != owner:
                raise errors.LeaseLost(message_id, owner)
        return ids

    async def _each_held(self, ids: Sequence[str], owner: str, **changes: object) -> list[Message]:
        out = []
        for message_id in ids:

            def step(m: Message, message_id: str = message_id) -> Message:
                if m.status != "leased" or m.lease_owner != owner:
                    raise errors.LeaseLost(message_id, owner)  # lost since the check
                return replace(m, **changes)  # type: ignore[arg-type]

            try:
                _, after = await self._change(message_id, step)
            except errors.MessageNotFound:
                raise errors.LeaseLost(message_id, owner) from None  # gone since the check
            assert after is not None
            out.append(after)
        return out

    async def ack(self, message_ids: Sequence[str], *, owner: str) -> None:
        """Mark leased messages done; LeaseLost (and nothing acked) if any id is not
        leased by ``owner``."""
        ids = await self._held(message_ids, owner)
        for m in await self._each_held(
            ids, owner, status="done", done_at=self.now(), lease_expires=None
        ):
            await self._closed(m)

    async def extend(self, message_ids: Sequence[str], *, owner: str, lease_s: float) -> None:
        """Push the lease of messages still held by ``owner`` to now + ``lease_s``."""
        ids = await self._held(message_ids, owner)
        await self._each_held(ids, owner, lease_expires=self.now() + lease_s)

    async def nack(
        self,
        message_id: str,
        *,
        owner: str,
        error: str | None = None,
        delay_s: float = 0.0,
        dead_code: str | None = None,
    ) -> Message:
        """Give a message back: pending again after ``delay_s``, or dead with error
        ``max_attempts`` when its attempts are used up; with ``dead_code``, dead now
        with that code (a failure that would only repeat)."""
        now = self.now()

        def step(m: Message) -> Message:
            if m.status != "leased" or m.lease_owner != owner:
                raise errors.LeaseLost(message_id, owner)
            if dead_code is not None or m.attempts >= m.max_attempts:
                return replace(
                    m,
                    status="dead",
                    error=dead_code or ERR_MAX_ATTEMPTS,
                    error_detail=error,
                    lease_expires=None,
                    done_at=now,
                )
            return replace(
                m,
                status="pending",
                lease_owner=None,
                lease_expires=None,
                available_at=now + max(delay_s, 0.0),
                error_detail=error,
            )

        try:
            _, after = await self._change(message_id, step)
        except errors.MessageNotFound:
            raise errors.LeaseLost(message_id, owner) from None
        assert after is not None
        if after.status == "dead":
            await self._closed(after)
        else:
            await self._wake(after.recipient)
        return after

    async def release(self, owner: str, message_ids: Sequence[str] | None = None) -> int:
        """Messages leased by ``owner`` (all, or these ids) back to pending without
        counting the attempt (a graceful shutdown; a claim handed back). How many."""
        count = 0
        if message_ids is None:
            candidates = await self._all_messages()
        else:
            candidates = []
            for message_id in dict.fromkeys(message_ids):
                try:
                    candidates.append(await self._load(message_id))
                except errors.MessageNotFound:
                    continue
        for m in candidates:
            if m.status != "leased" or m.lease_owner != owner:
                continue

            def step(current: Message) -> Message | None:
                if current.status != "leased" or current.lease_owner != owner:
                    return None
                return replace(
                    current,
                    status="pending",
                    attempts=max(current.attempts - 1, 0),
                    lease_owner=None,
                    lease_expires=None,
                )

            try:
                _, after = await self._change(m.id, step)
            except errors.MessageNotFound:
                continue  # gone since it was read (see NatsConsumeOps): nothing to hand back
            if after is not None:
                count += 1
                await self._wake(after.recipient)
        return count
