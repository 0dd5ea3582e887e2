"""Which supervisor runs which agent, on a NATS queue shared by machines: a lease per agent.

On one machine a lock file keeps a second supervisor out; machines sharing a NATS
queue share no file, and several supervisors may run one team, each some of its
agents (``up alpha`` here, ``up beta`` there). Each agent's lease is one key
(``l.<agent>``): taken with create-if-absent (or compare-and-set over an expired
one) when the supervisor starts the agent, renewed every ``lease_s / 3`` by one task
for all the agents it holds, deleted when the agent stops. A second supervisor
starting the same agent is refused with the holder's host and pid; one that died
(SIGKILL, a lost machine) stops renewing, and its leases run out ``lease_s`` after
the last renewal: then another supervisor may start its agents. One whose process is
known gone (:func:`gone_here`: it ran among this machine's pids) holds nothing at once:
a supervisor killed and run again on its machine runs its agents again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import nats.errors
import nats.js.errors
import structlog

from orchestrator import errors, procid
from orchestrator.mailbox.backend import requeue_counted
from orchestrator.mailbox.model import SUPERVISOR_OWNER_PREFIX
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.connect import NatsConfig
from orchestrator.mailbox.nats.faults import retrying, type_public_methods
from orchestrator.mailbox.nats.mailbox import NatsMailbox

if TYPE_CHECKING:
    from orchestrator.mailbox.backend import AsyncMailboxBackend

log = structlog.get_logger("octy.queue.nats")

LEASE_S: Final = 15.0
STALE_PRESENCE_S: Final = 3600.0
"""A presence that ran out this long ago is removed by the next supervisor to start: a
supervisor killed without its clean stop left it (one key each), and an hour after it
ran out it answers nothing a command for that supervisor would ask (its CLI looks on
its own host, where the process is known gone)."""


def lease_key(agent: str) -> str:
    return f"l.{rec.token(agent)}"


def presence_key(host: str, pid: int) -> str:
    """Where the supervisor on ``host`` with ``pid`` says it lives (an operator command
    names its supervisor by host and pid)."""
    return f"s.{rec.token(host)}.{pid}"


_RECORD_KINDS: Final = {
    "holder": rec.TEXT,
    "host": rec.TEXT,
    "pid": rec.WHOLE,
    "expires_at": rec.TIME,
}


def parse_record(data: bytes | None) -> dict[str, Any] | None:
    """A lease or presence record (holder, host, pid, expires_at), or None when the bytes
    are not one: anyone with the team's NATS account can write the bucket (a script, a
    `nats kv put` by hand, another version), and a record read is checked like any
    input. A lease that is not a record holds nobody's agent; a presence that is not one
    shows nobody."""
    try:
        return rec.read_record(data or b"", "l/s", _RECORD_KINDS)
    except errors.RecordUnreadable:
        return None


PID_LIMIT: Final = 1 << 22
"""No pid is above it on Linux (``PID_MAX_LIMIT``): a record naming one names no process."""


@functools.cache
def pid_space() -> str | None:
    """Which processes a pid names here: this boot of this kernel, this PID namespace
    (a container's, or the host's). Two records with the same one name the same
    processes; the hostname alone does not say so (containers, `unshare`). None where
    ``/proc`` shows another namespace's pids (``unshare --pid --fork`` without
    ``--mount-proc``: ``/proc/self`` is not our pid): its ``/proc/PID`` is another
    process, or none, and a live supervisor there was read as gone."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return None
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except (OSError, UnicodeDecodeError):
        return None


def _exists(pid: int) -> bool:
    """A process (or a zombie) has ``pid`` in our PID namespace, whoever's it is: asked
    of the kernel (signal 0), not of ``/proc``, where ``hidepid`` hides other users'."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: there, another user's
        return True
    return True


def gone_here(record: dict[str, Any]) -> bool:
    """The supervisor of a lease ``record`` is provably dead: it ran among this process's
    pids (:func:`pid_space`, under this host name) and its pid names no process now, or
    a zombie, or another one (its start time differs). A supervisor SIGKILLed and run
    again on its machine took ``agent_lease`` (15 s) to be let run its agents: each was
    refused as held elsewhere and left stopped, `ps` showing the dead one's `ready`.
    Records without the fields (an older version), or with fields no supervisor writes,
    prove nothing: their lease runs out as before. A process ``/proc`` does not show
    (another user's under ``hidepid``) is alive: only its absence from the kernel's pids
    proves a death."""
    space, pid, ticks = record.get("pid_space"), record["pid"], record.get("start_ticks")
    here = pid_space()
    if here is None or not isinstance(space, str) or space != here:
        return False
    if record.get("host") != socket.gethostname():
        # The same boot and namespace yet another name: a machine cloned from a running
        # one's snapshot (its boot id and namespaces copied), whose pids went their own
        # way since: a pid absent here may run its supervisor there.
        return False
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < PID_LIMIT:
        return False
    if not _exists(pid):
        return True
    seen = procid.start_ticks(pid)
    if seen is None:  # hidden (hidepid), or gone this instant: proves nothing
        return False
    if not procid.running(pid):  # a zombie: dead, its parent yet to reap it
        return True
    return isinstance(ticks, int) and not isinstance(ticks, bool) and seen != ticks


def live(mailbox: NatsMailbox, record: dict[str, Any]) -> bool:
    """A lease ``record`` that holds its agent: not run out, its supervisor not known dead."""
    return record["expires_at"] > mailbox.now() and not gone_here(record)


async def holder_of(mailbox: NatsMailbox, agent: str) -> dict[str, Any] | None:
    """The live lease's record on ``agent`` (holder, host, pid, expires_at), or None."""
    found = await rec.get(mailbox.kv, lease_key(agent))
    record = parse_record(found[0]) if found is not None else None
    if found is not None and record is None:
        log.warning("agent_lease_unreadable", agent=agent, key=lease_key(agent))
    return record if record is not None and live(mailbox, record) else None


def refused(mailbox: NatsMailbox, agent: str, record: dict[str, Any]) -> errors.AgentHeldElsewhere:
    return errors.AgentHeldElsewhere(
        agent,
        str(record["holder"]),
        str(record["host"]),
        int(record["pid"]),
        max(0.0, float(record["expires_at"]) - mailbox.now()),
    )


LostCallback = Callable[[str, errors.AgentHeldElsewhere], Awaitable[None]]


class _Stale(Exception):  # not an error: a write that lost, on purpose
    """A row's write asked for a state the agent has left since (write_row's ``still``)."""


class AgentLeases:
    """The agent leases of one supervisor (``holder``: its instance name)."""

    exclusive = False  # other supervisors may run other agents of the team

    def __init__(
        self,
        mailbox: NatsMailbox,
        holder: str,
        *,
        lease_s: float = LEASE_S,
        renew_every_s: float | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.holder = holder
        self.lease_s = lease_s
        self.renew_every_s = lease_s / 3 if renew_every_s is None else renew_every_s
        self.held: set[str] = set()
        self._ours_until: dict[str, float] = {}  # the end of our last lease write answered
        self._swept = False  # stale presences looked for (at the first announce)

    @property
    def config(self) -> NatsConfig:
        return self.mailbox.config

    def _value(self, agent: str, expires_at: float) -> bytes:
        return json.dumps(
            {
                "agent": agent,
                "holder": self.holder,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "start_ticks": procid.start_ticks(os.getpid()),
                "pid_space": pid_space(),
                "expires_at": expires_at,
            }
        ).encode()

    def _surely_ours(self, agent: str) -> bool:
        """We hold ``agent`` and our last lease write the server answered runs for at
        least another ``lease_s / 3``: its lease is ours without asking the server.

        Safe because a lease is taken from its holder only once it ran out (or its
        process is gone, :func:`gone_here`: not ours, we run): :meth:`take` refuses a
        live one (``expires_at`` after the taker's now), and our renewal wrote that
        ``expires_at`` itself. So no take happened before this answer, and none
        before the read of the row that came before it (:func:`records.update` asks the
        guard after each read): the row read is still ours, and the write, conditional
        on that read's revision, fails if a take rewrites the row before it lands (a
        late write is refused as with a lease read). The margin (a third of the lease,
        5 s by default) is for wall clocks a little apart: leases compare them (NTP, as
        :meth:`NatsCore.now` says). Past it the lease is read as before. A renewal lost
        (the server away) leaves the memory at the last one answered: the safe side.
        Outside the protocol (a lease deleted by hand, `nats kv del`) the next renewal
        finds the agent taken, as it always did."""
        until = self._ours_until.get(agent)
        return (
            agent in self.held
            and until is not None
            and self.mailbox.now() < until - self.lease_s / 3
        )

    async def announce(self) -> None:
        """Write (or renew) this supervisor's presence: it expires ``lease_s`` after, as
        its agents' leases do, so a supervisor that died is known gone by then."""
        host, pid = socket.gethostname(), os.getpid()
        value = {
            "holder": self.holder,
            "host": host,
            "pid": pid,
            "start_ticks": procid.start_ticks(pid),
            "expires_at": self.mailbox.now() + self.lease_s,
        }
        await rec.put(self.mailbox.kv, presence_key(host, pid), json.dumps(value).encode())
        if not self._swept:
            self._swept = True
            await self._forget_stale_presences()

    async def _forget_stale_presences(self) -> None:
        """Remove presences that ran out STALE_PRESENCE_S ago (best effort, once per
        start). Listed from the stream's subjects, as every listing of the bucket is
        (core._keys: a KV watcher may end its first pass early), and purged, as every
        key the team removes (a KV delete leaves a marker behind)."""
        stale: list[str] = []
        try:
            for key in await self.mailbox._keys("s."):
                found = await rec.get(self.mailbox.kv, key)
                record = parse_record(found[0]) if found is not None else None
                if (
                    record is not None
                    and record["expires_at"] < self.mailbox.now() - STALE_PRESENCE_S
                ):
                    stale.append(key)
            for key in stale:
                await self.mailbox._delete(key)
        except (errors.QueueError, nats.errors.Error) as exc:
            log.warning("stale_presences_left", error=str(exc))
            return
        if stale:
            log.info("stale_presences_removed", keys=stale)

    async def leave(self) -> None:
        with contextlib.suppress(errors.QueueError, nats.errors.Error):
            await self.mailbox._delete(presence_key(socket.gethostname(), os.getpid()))

    def holds(self, agent: str) -> bool:
        return agent in self.held

    async def supervisor_gone(self, host: str, pid: int, sent_at: float) -> str | None:
        """Known gone: its presence ran out (it stopped renewing it ``lease_s`` ago, the
        time after which its agents are free too), or, on this host, its process is not
        running (or another process has its pid). A pid alone says nothing about another
        host. No presence at all (a supervisor stopped cleanly, or one still starting):
        gone only once the command is older than ``lease_s``."""
        found = await rec.get(self.mailbox.kv, presence_key(host, pid))
        record = parse_record(found[0]) if found else None
        now = self.mailbox.now()
        if host == socket.gethostname():
            if not procid.running(pid):
                return f"no process {pid} runs on {host}"
            recorded = record.get("start_ticks") if record else None
            if isinstance(recorded, int) and procid.start_ticks(pid) != recorded:
                return f"process {pid} on {host} is another program now"
        if record is None:
            if now - sent_at > self.lease_s:
                return f"it has not shown itself in the team for {self.lease_s:g}s"
            return None
        expires_at = float(record.get("expires_at", 0.0))
        if expires_at <= now:
            return f"it last showed itself {now - expires_at + self.lease_s:.0f}s ago"
        return None

    def gone_hint(self) -> str:
        return (
            f"its agents are free {self.lease_s:g}s (agent_lease) after its last renewal: "
            "run `up` on that machine again, or `start AGENT` on another machine of the team"
        )

    async def held_elsewhere(self, agent: str) -> errors.AgentHeldElsewhere | None:
        """Why this supervisor may not touch ``agent`` now (a live lease of another).
        Not asked of the server while our own lease on it surely runs (:meth:`_surely_ours`):
        a record or heartbeat of an agent running here costs its row's read and write."""
        if self._surely_ours(agent):
            return None
        record = await holder_of(self.mailbox, agent)
        if record is None or record["holder"] == self.holder:
            return None
        return refused(self.mailbox, agent, record)

    async def _refuse_held(self, agent: str) -> None:
        """The guard of :meth:`write_row` and :meth:`register_row`: raise the holder if
        another supervisor holds ``agent``."""
        holder = await self.held_elsewhere(agent)
        if holder is not None:
            raise holder

    async def take(self, agent: str) -> None:
        """Hold ``agent``'s lease or raise AgentHeldElsewhere naming the live holder.
        Messages to it still leased by a dead supervisor's session are requeued: the
        lease says that no other supervisor runs this agent any more."""
        key = lease_key(agent)
        until = self.mailbox.now() + self.lease_s
        if not await rec.create(self.mailbox.kv, key, self._value(agent, until)):

            def step(old: bytes) -> bytes:
                record = parse_record(old)
                if record is None:  # not a lease: nobody holds the agent
                    log.warning("agent_lease_unreadable", agent=agent, key=key)
                elif record["holder"] != self.holder and live(self.mailbox, record):
                    raise refused(self.mailbox, agent, record)
                return self._value(agent, until)

            old, new = await rec.update(self.mailbox.kv, key, step)
            if new is None:  # released in between: take it afresh
                await self.take(agent)
                return
            previous = parse_record(old)
            if previous is not None and previous["holder"] != self.holder:
                log.info(
                    "agent_taken_over",
                    agent=agent,
                    host=previous["host"],
                    pid=previous["pid"],
                    reason="its process is gone" if gone_here(previous) else "its lease ran out",
                )
        self.held.add(agent)
        self._ours_until[agent] = until
        await self._claim_row(agent)
        await self._recover(agent)

    async def _claim_row(self, agent: str) -> None:
        """Write the agent's row again as it is (a new revision, same bytes): a write of
        it by the supervisor that held it before, checked against the lease it had
        (:meth:`write_row`) but not written yet, is conditional on the revision it read,
        so it now fails, asks the lease again and is refused. One that landed before
        this is the last of the old holder's: this supervisor's own writes follow. A row
        absent (deleted) gets a delete marker instead: it stays absent, and the old
        holder's create of it again (:meth:`register_row`), conditional on the revision
        it found absent, fails the same way.

        Done when the revision moved, whoever moved it; not with ``rec.update``, which
        takes a row read back the same bytes after a failed write for its own write
        landed (the answer lost): here that is also a write refused unstored (a stream
        without a leader says no responders at once), and the revision stays."""
        key = rec.agent_key(agent)
        first: int | None = None

        async def once() -> None:
            nonlocal first
            value, revision = await rec.last_entry(self.mailbox.kv, key)
            if first is None:
                first = revision
            elif revision != first:
                return  # a new revision: ours landed (the answer lost), or another's
            try:
                if value is None:
                    await rec.mark_deleted(self.mailbox.kv, key, revision)
                else:
                    await self.mailbox.kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return  # written since it was read: the revision moved all the same

        await retrying(once)  # a transient failure: read again, and write unless it moved

    async def write_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        *,
        still: Callable[[], bool] | None = None,
        **fields: Any,
    ) -> errors.AgentHeldElsewhere | None:
        """Write ``fields`` of ``agent``'s row (``update_agent``) unless another
        supervisor holds its lease: then nothing is written and the holder is returned.
        The lease is asked after each read of the row and the write is conditional on
        that read's revision, so a lease taken in between (:meth:`take` writes the row
        too) refuses the write instead of letting it land on the new holder's row.
        RecipientUnknown if the row is absent and nobody else holds the agent.

        ``still``: asked after each read too; False: the write is stale (the agent
        moved on since it was asked, and the move's own write follows or went first),
        nothing is written and None returned. A write tried again after a newer one
        landed (its first try met that one's revision, or no leader) would put an old
        state back until the next move."""

        async def guard() -> None:
            if still is not None and not still():
                raise _Stale
            await self._refuse_held(agent)

        assert isinstance(mailbox, NatsMailbox)  # the queue these leases are kept on
        try:
            await mailbox.update_agent(agent, guard=guard, **fields)
        except errors.AgentHeldElsewhere as exc:
            return exc
        except _Stale:
            log.debug("row_write_stale", agent=agent)
        return None

    async def register_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
    ) -> errors.AgentHeldElsewhere | None:
        """Register ``agent``'s row again (its row was deleted under us) unless another
        supervisor holds its lease: then nothing is written and the holder is returned.
        As :meth:`write_row`: the lease asked after each read of the row, the create
        conditional on the revision that read found (a take in between marks the absent
        row, so the create fails and asks again)."""

        assert isinstance(mailbox, NatsMailbox)
        try:
            await mailbox.register_guarded(
                agent,
                description,
                pid=pid,
                state=state,
                meta=meta,
                guard=partial(self._refuse_held, agent),
            )
        except errors.AgentHeldElsewhere as exc:
            return exc
        return None

    async def _recover(self, agent: str) -> None:
        mine = f"{self.holder}:"
        for m in await self.mailbox.list(status="leased", recipient=agent, limit=100_000):
            owner = m.lease_owner or ""
            if owner.startswith(SUPERVISOR_OWNER_PREFIX) and not owner.startswith(mine):
                n = await requeue_counted(self.mailbox, owner, [m])
                log.info("recovered_leases", agent=agent, owner=owner, messages=n)

    async def release(self, agent: str) -> None:
        """Give ``agent`` up (it stopped): delete its lease if it is still ours."""
        self.held.discard(agent)
        self._ours_until.pop(agent, None)
        found = await rec.get(self.mailbox.kv, lease_key(agent))
        record = parse_record(found[0]) if found is not None else None
        if found is None or record is None or record["holder"] != self.holder:
            return
        try:
            await retrying(lambda: self.mailbox.kv.delete(lease_key(agent), last=found[1]))
        except nats.js.errors.KeyWrongLastSequenceError as exc:  # changed: not ours any more
            log.warning("agent_lease_release_failed", agent=agent, error=str(exc))

    async def release_all(self) -> None:
        for agent in sorted(self.held):
            with contextlib.suppress(errors.QueueError):
                await self.release(agent)

    async def keep(self, lost: LostCallback) -> None:
        """Renew every held lease each ``renew_every_s``, for as long as the supervisor
        runs. A lease found taken by another supervisor (ours ran out while this one
        could not reach the server) is given up and ``lost`` is told, to stop the agent."""
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.announce()
            except (errors.QueueError, nats.errors.Error) as exc:  # away: next round
                log.warning("presence_renew_failed", error=str(exc))
            for agent in sorted(self.held):
                try:
                    await self._renew(agent)
                except errors.AgentHeldElsewhere as exc:
                    self.held.discard(agent)
                    self._ours_until.pop(agent, None)
                    log.error("agent_lease_lost", agent=agent, host=exc.host, pid=exc.pid)
                    await lost(agent, exc)
                except (errors.QueueError, nats.errors.Error) as exc:  # away: next round
                    log.warning("agent_lease_renew_failed", agent=agent, error=str(exc))

    async def _renew(self, agent: str) -> None:
        until = self.mailbox.now() + self.lease_s

        def step(old: bytes) -> bytes:
            record = parse_record(old)
            if record is None:  # garbled under us: still ours, written again
                log.warning("agent_lease_unreadable", agent=agent, key=lease_key(agent))
            elif record["holder"] != self.holder:
                raise refused(self.mailbox, agent, record)
            return self._value(agent, until)

        _, new = await rec.update(self.mailbox.kv, lease_key(agent), step)
        if (
            new is None  # deleted under us (a purge): take it again
            and agent in self.held
            and not await rec.create(self.mailbox.kv, lease_key(agent), self._value(agent, until))
        ):
            return  # taken meanwhile: the next renewal finds whose it is
        if agent in self.held:
            self._ours_until[agent] = until


type_public_methods(AgentLeases)  # nats-py's errors never escape: QueueUnavailable
