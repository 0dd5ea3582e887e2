"""The team's supervisor lease on a NATS queue: one supervisor per team across machines.

On one machine a lock file keeps a second supervisor out; machines sharing a NATS
queue share no file. The lease is one key (``t.supervisor``): taken with
create-if-absent (or compare-and-set over an expired one), renewed every
:data:`RENEW_EVERY_S` by a task of the holder, deleted at a clean stop. A second
supervisor is refused with the holder's host and pid; one that died (SIGKILL, a
lost machine) stops renewing, and its lease runs out after :data:`LEASE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import Any, Final

import nats.js.errors
import structlog

from orchestrator import errors
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.mailbox import NatsMailbox

log = structlog.get_logger("octy.queue.nats")

LEASE_KEY: Final = "t.supervisor"
LEASE_S: Final = 15.0
RENEW_EVERY_S: Final = 5.0


def _record(holder: str, expires_at: float) -> bytes:
    return json.dumps(
        {
            "holder": holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires_at": expires_at,
        }
    ).encode()


async def current_holder(mailbox: NatsMailbox) -> dict[str, Any] | None:
    """The live lease's record (holder, host, pid, expires_at), or None."""
    found = await rec.get(mailbox.kv, LEASE_KEY)
    if found is None:
        return None
    record: dict[str, Any] = json.loads(found[0])
    return record if record["expires_at"] > mailbox.now() else None


def refused(mailbox: NatsMailbox, record: dict[str, Any]) -> errors.TeamHeldElsewhere:
    return errors.TeamHeldElsewhere(
        record["holder"],
        record["host"],
        int(record["pid"]),
        max(0.0, float(record["expires_at"]) - mailbox.now()),
    )


class TeamLease:
    """``lease = await TeamLease(mailbox, holder).take()`` ... ``await lease.release()``."""

    def __init__(
        self,
        mailbox: NatsMailbox,
        holder: str,
        *,
        lease_s: float = LEASE_S,
        renew_every_s: float = RENEW_EVERY_S,
    ) -> None:
        self.mailbox = mailbox
        self.holder = holder
        self.lease_s = lease_s
        self.renew_every_s = renew_every_s
        self._task: asyncio.Task[None] | None = None

    async def take(self) -> TeamLease:
        """Hold the lease or raise TeamHeldElsewhere naming the live holder."""
        kv = self.mailbox.kv
        if not await rec.create(kv, LEASE_KEY, self._value()):

            def step(old: bytes) -> bytes:
                record = json.loads(old)
                if record["holder"] != self.holder and record["expires_at"] > self.mailbox.now():
                    raise refused(self.mailbox, record)
                return self._value()

            old, new = await rec.update(kv, LEASE_KEY, step)
            if new is None:  # released in between: take it afresh
                return await self.take()
            if old is not None:
                log.info("team_lease_taken_over", previous=json.loads(old).get("host"))
        self._task = asyncio.create_task(self._renew())
        return self

    def _value(self) -> bytes:
        return _record(self.holder, self.mailbox.now() + self.lease_s)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self._renew_once()
            except errors.TeamHeldElsewhere as exc:
                log.error("team_lease_lost", holder=exc.holder, host=exc.host, pid=exc.pid)
                return
            except Exception as exc:  # a reconnect in progress: try again next round
                log.warning("team_lease_renew_failed", error=str(exc))

    async def _renew_once(self) -> None:
        def step(old: bytes) -> bytes:
            record = json.loads(old)
            if record["holder"] != self.holder:
                raise refused(self.mailbox, record)
            return self._value()

        _, new = await rec.update(self.mailbox.kv, LEASE_KEY, step)
        if new is None:  # deleted under us (someone purged the bucket): take it again
            await rec.create(self.mailbox.kv, LEASE_KEY, self._value())

    async def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        found = await rec.get(self.mailbox.kv, LEASE_KEY)
        if found is not None and json.loads(found[0])["holder"] == self.holder:
            try:
                await self.mailbox.kv.delete(LEASE_KEY, last=found[1])
            except nats.js.errors.KeyWrongLastSequenceError as exc:  # changed: not ours
                log.warning("team_lease_release_failed", error=str(exc))
