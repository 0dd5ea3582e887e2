"""What every part of the NATS mailbox shares: the connection, the bucket, the clock,
the wake-up subjects, message reads and writes, and the agent registry.

Wake-ups are plain NATS publishes (``<ns>.wake.<to>`` after a write that may make
something claimable, ``<ns>.replied.<id>`` after a reply): cheap, and at most once.
A waiter never depends on one. Those published while its connection was down are
lost: every waiter of the client re-reads the bucket as soon as it is reconnected.
The few a connection can miss while up (a subscription not yet known to the other
nodes of a cluster, a slow consumer's drops) are covered by a re-read at least
every :data:`RECHECK_S` seconds. A lost wake-up costs latency, never a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from orchestrator import errors
from orchestrator.held_wait import supervisor_silence
from orchestrator.mailbox.model import (
    KEEP,
    SUPERVISOR,
    USER,
    AgentInfo,
    Keep,
    Message,
    encode_meta,
)
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.connect import (
    NatsConfig,
    bucket_mark,
    connect,
    is_stream_missing,
    open_bucket,
)
from orchestrator.mailbox.nats.faults import retrying, type_public_methods
from orchestrator.mailbox.nats.tally import StatusTally
from orchestrator.names import RESERVED_NAMES, name_problem

log = structlog.get_logger("octy.queue.nats")

RECHECK_S: Final = 2.0
"""Longest a waiter sleeps without re-reading the bucket. A reconnect re-reads at once
(the wake-ups it lost), so this only bounds the latency of a wake-up lost while
connected; each re-read is a JetStream API call per waiter (20 idle waiters, 30 s
waits as an agent's: 2.9-3.5 % of a core at 0.5 s, 0.8-1.3 % at 2 s; docs/benchmarks.md)."""
OUTAGE_RECHECK_S: Final = 0.5  # between the reads of a wait whose queue is out of reach
_PAST_THE_END: Final = 2**62  # a subject-list offset no stream reaches


LOST_RECHECK_S: Final = 1.0
"""check_store's pause before it believes a bucket's sequence went back."""


class NatsCore:
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        type_public_methods(cls)  # nats-py's errors never escape: QueueUnavailable

    def __init__(self, config: NatsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._nc: Client | None = None
        self._kv: KeyValue | None = None
        # The bucket's stream, for what the KV API does slowly: listing keys and
        # deleting without leaving a marker behind.
        self._stream = f"KV_{config.namespace}"
        self._subject_prefix = f"$KV.{config.namespace}."
        self._said_unreadable: set[str] = set()  # garbled records already warned of
        self._local: set[asyncio.Event] = set()
        self._tally = StatusTally()  # status_counts(), brought up to date at each call
        self._made: object = None  # when the bucket's stream was made (check_store)
        self._last_seq = 0  # its last sequence when last seen (check_store)
        # The bucket's copies and the roster's `replicas:` when they differ (open()).
        self.replicas_differ: dict[str, Any] | None = None
        # open() found no bucket and made it, empty: said by the CLI verb that opened it
        # (opening.open_sync), as the supervisor says a bucket lost under it.
        self.made_bucket = False

    # --- lifecycle ------------------------------------------------------------

    async def open(self) -> NatsCore:
        """Connect and open (or create) the team's bucket; QueueUnavailable if not."""
        self._nc = await connect(self.config, reconnected=self._reconnected)
        try:
            bucket = await open_bucket(self._nc, self.config)
        except BaseException:
            await self._nc.close()
            raise
        self._kv, copies, self._made = bucket.kv, bucket.copies, bucket.made
        self.made_bucket = copies is None
        self._last_seq = bucket.last_seq
        if copies is not None and copies != self.config.replicas:
            # Made before with other `replicas:` (an edit since, or another machine's
            # roster): the servers keep what it was made with, whatever the roster says.
            # Kept, not logged: said by the supervisor as it starts and shown by `ps`,
            # not on every verb's stderr (a script's `send` printed it each time).
            self.replicas_differ = {
                "bucket": self.config.namespace,
                "replicas": copies,
                "roster_replicas": self.config.replicas,
                "fix": f"nats stream edit KV_{self.config.namespace} --replicas "
                f"{self.config.replicas}, or set replicas: {copies} in agents.yaml",
            }
        return self

    async def check_store(self) -> str | None:
        """Whether the server still has the bucket this client opened. A server restarted
        without its store (its JetStream folder wiped, a fresh server on the same
        address) answers every read "stream not found" and every write no responders,
        for ever: the bucket is made again here, empty, as ``up`` makes it, and what was
        only on the lost server is gone. Also found: a bucket made again by another
        client since (any CLI verb opening the queue makes a missing bucket), told by
        its stream's creation time; and a stream emptied under the same creation time (a
        cluster node that hosted an R1 bucket restarted without its store), told by its
        last sequence going back. Returns what happened, to be said once (None: the
        same bucket); QueueUnavailable while the server is out of reach."""
        try:
            made, last = await retrying(lambda: bucket_mark(self.nc, self.config))
        except nats.js.errors.NotFoundError as exc:
            if not is_stream_missing(exc):
                raise
            bucket = await open_bucket(self.nc, self.config)  # there again if another made it
            self._kv, self._made, self._last_seq = bucket.kv, bucket.made, bucket.last_seq
            return "the server has no bucket any more (restarted without its store?): made again"
        seen, self._last_seq = self._last_seq, last
        if made != self._made:
            self._made = made
            return (
                "the bucket was lost and made again by another client since it was opened "
                "(a server restarted without its store?)"
            )
        if last < seen:
            # Same stream, same creation time, but its sequence went back: a cluster
            # node that hosted it (replicas: 1) restarted without its store, and the
            # cluster made the stream again there, empty (measured on nats-server
            # 2.15.1). A live stream's last sequence never goes down (a purge keeps it).
            # Read again after a pause first: a leader just elected that has not yet
            # applied all it holds is not a loss.
            await asyncio.sleep(LOST_RECHECK_S)
            again, last = await retrying(lambda: bucket_mark(self.nc, self.config))
            if again != made or last >= seen:
                self._last_seq = max(last, seen)  # made again meanwhile: the next round says
                return None
            self._last_seq = last
            return (
                f"the server kept the bucket but lost what was in it (its last sequence "
                f"went from {seen} back to {last}: a cluster node restarted without its "
                "store?)"
            )
        return None

    async def aclose(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except nats.errors.Error:  # the server is away: nothing left to flush to it
                with contextlib.suppress(OSError):  # nats-py's close met the dead socket
                    await self._nc.close()
        self._kv = None

    def now(self) -> float:
        """The clock used for every timestamp (injectable for tests). Across machines
        leases and TTLs compare wall clocks: keep them in sync (NTP)."""
        return self._clock()

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise errors.QueueError("the NATS mailbox is not open (use `async with`)")
        return self._kv

    @property
    def nc(self) -> Client:
        assert self._nc is not None
        return self._nc

    async def _keys(self, prefix: str) -> list[str]:
        """The live keys under ``prefix``, sorted: the stream's subjects, no consumer
        created. Right because :meth:`_delete` leaves no marker (the one exception, a
        take's marker on an absent registry row, records.mark_deleted, is listed until
        the row is written again: ``a.`` keys are read each, and it reads absent). The
        server answers at most 100,000 subjects a request (measured on nats-server
        v2.15.1: 100,000 of 100,500 keys) and says how many match in ``total``: the rest
        is asked for by ``offset``, which nats-py's ``stream_info`` does not pass."""
        js = self.nc.jetstream(timeout=self.config.request_timeout_s)
        subject = f"{js._prefix}.STREAM.INFO.{self._stream}"
        subjects_filter = f"{self._subject_prefix}{prefix}>"
        cut = len(self._subject_prefix)
        keys: set[str] = set()
        offset = 0
        while True:
            ask = json.dumps({"subjects_filter": subjects_filter, "offset": offset}).encode()

            async def page_at(ask: bytes = ask) -> dict[str, Any]:
                return await js._api_request(subject, ask, timeout=js._timeout)

            info = await retrying(page_at)
            page = (info.get("state") or {}).get("subjects") or {}
            keys.update(s[cut:] for s in page)
            offset += len(page)
            if not page or offset >= int(info.get("total") or 0):
                return sorted(keys)

    async def _count_keys(self, prefix: str) -> tuple[int, int, str]:
        """How many live keys are under ``prefix``, the stream's last sequence then, and
        when the stream was made: one request whose answer holds no key (an offset past
        the end of the subject list: the server counts them, it does not send them)."""
        js = self.nc.jetstream(timeout=self.config.request_timeout_s)
        subject = f"{js._prefix}.STREAM.INFO.{self._stream}"
        ask = json.dumps(
            {"subjects_filter": f"{self._subject_prefix}{prefix}>", "offset": _PAST_THE_END}
        ).encode()

        async def count() -> dict[str, Any]:
            return await js._api_request(subject, ask, timeout=js._timeout)

        info = await retrying(count)
        state = info.get("state") or {}
        total, last = int(info.get("total") or 0), int(state.get("last_seq") or 0)
        return total, last, str(info.get("created") or "")

    async def _scan(self, prefix: str, *, gone: list[str] | None = None) -> dict[str, bytes]:
        """Every live key under ``prefix`` with its value. The key list comes from the
        stream's subjects (one request), the values one get each: nats-py's watcher could
        end its initial pass before the values just written arrived (seen: agents() empty
        right after three register() calls in the contract suite). A key listed that reads
        absent (a delete marker, or removed since) is passed over, and added to ``gone``."""
        found: dict[str, bytes] = {}
        for key in await self._keys(prefix):
            entry = await rec.get(self.kv, key)
            if entry is not None:
                found[key] = entry[0]
            elif gone is not None:
                gone.append(key)
        return found

    async def _delete(self, key: str, *, upto: int | None = None) -> None:
        """Remove a key for good: purge its subject from the stream (a KV delete or
        purge would leave a marker, which :meth:`_keys` would still list). ``upto``: only
        its entries to that revision, included (a marker read: a record written there
        since stays)."""
        js = self.nc.jetstream(timeout=self.config.request_timeout_s)
        seq = None if upto is None else upto + 1
        subject = self._subject_prefix + key
        await retrying(lambda: js.purge_stream(self._stream, seq=seq, subject=subject))

    # --- wake-ups -------------------------------------------------------------

    def _subject(self, kind: str, name: str) -> str:
        return f"{self.config.namespace}.{kind}.{rec.token(name)}"

    async def _wake(self, *recipients: str) -> None:
        for name in set(recipients):
            await self.nc.publish(self._subject("wake", name), b"")

    async def _replied(self, request_id: str) -> None:
        await self.nc.publish(self._subject("replied", request_id), b"")

    async def _wait_on(self, subject: str, poll: Callable[[], Any], timeout_s: float) -> Any:
        """Call ``poll`` (async; returns (result or None, seconds until the clock alone
        could change it)) until it returns a result or ``timeout_s`` passes (None).
        One wait loop for both waits: replies and inboxes."""
        bell = asyncio.Event()

        async def ring(_msg: Msg) -> None:
            bell.set()

        sub = await self.nc.subscribe(subject, cb=ring)
        self._local.add(bell)
        deadline = time.monotonic() + timeout_s
        said = False  # wait_retrying: once per wait, not at every read (2 a second)
        try:
            while True:
                bell.clear()
                try:
                    result, due_in = await poll()
                except nats.errors.Error as exc:
                    # Out of reach past a read's own retries (a node dying mid-ask, a long
                    # election): what is waited for is stored and will come, so the wait
                    # goes on until its deadline; only then is the outage the answer.
                    if time.monotonic() + OUTAGE_RECHECK_S >= deadline:
                        raise
                    if not said:
                        said = True
                        log.warning("wait_retrying", subject=subject, error=str(exc) or repr(exc))
                    await asyncio.sleep(OUTAGE_RECHECK_S)
                    continue
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), min(remaining, due_in, RECHECK_S))
        finally:
            self._local.discard(bell)
            if not self.nc.is_closed:
                await sub.unsubscribe()

    async def _reconnected(self) -> None:
        """Back on a server: wake-ups published meanwhile are lost, so every waiter
        re-reads now rather than at its next RECHECK_S."""
        log.info("queue_reconnected", waiters=len(self._local))
        await self.wake_all()

    async def wake_all(self) -> None:
        """Nudge every waiter of this client (others wake on the writes themselves)."""
        for bell in self._local:
            bell.set()

    # --- messages -------------------------------------------------------------

    def _store_lost(self, doing: str) -> errors.StoreLost:
        return errors.StoreLost(self.config.display, self.config.namespace, doing)

    @contextlib.contextmanager
    def _gone_with_store(self, message_id: str, doing: str) -> Iterator[None]:
        """A read of one named message (``get``, an ack's, a reply's, a wait's...) that
        finds the bucket gone finds that message gone with it: MessageNotFound, which
        every operation already takes for "gone since it was read" (a lost lease, one not
        to claim, a request_gone), carrying the loss (``store_lost``, said in its text:
        `queue show ID` says what happened and what to do). Whatever reads more than one
        named message (listings, the registry, leases) says StoreLost (faults.typed)."""
        try:
            yield
        except nats.js.errors.NotFoundError as exc:
            if not is_stream_missing(exc):
                raise
            lost = self._store_lost(doing)
            raise errors.MessageNotFound(message_id, store_lost=lost) from exc

    async def _load(self, message_id: str) -> Message:
        if not rec.safe_id(message_id):
            raise errors.MessageNotFound(message_id)
        with self._gone_with_store(message_id, "a read of the message"):
            found = await rec.get(self.kv, rec.msg_key(message_id))
        if found is None:
            raise errors.MessageNotFound(message_id)
        return rec.decode_message(found[0], rec.msg_key(message_id))

    async def _change(
        self, message_id: str, change: Callable[[Message], Message | None]
    ) -> tuple[Message, Message | None]:
        """Compare-and-set one message: (before, after); after is None if unchanged."""
        if not rec.safe_id(message_id):
            raise errors.MessageNotFound(message_id)

        key = rec.msg_key(message_id)

        def step(old: bytes) -> bytes | None:
            new = change(rec.decode_message(old, key))
            return None if new is None else rec.encode_message(new)

        with self._gone_with_store(message_id, "a change of the message"):
            old, new = await rec.update(self.kv, key, step)
        if old is None:
            raise errors.MessageNotFound(message_id)
        return rec.decode_message(old, key), None if new is None else rec.decode_message(new, key)

    async def _closed(self, message: Message) -> None:
        """After a message left pending/leased: drop its hint and its wait edge."""
        await self._drop_hint(rec.hint_key(message.recipient, message.id), message.id)
        if message.kind == "request":
            await self._delete(rec.wait_key(message.id))
            await self._replied(message.id)

    async def _drop_hint(self, key: str, message_id: str) -> None:
        """Remove the hint ``key`` of a message seen closed, unless it is open again by
        now. A ``queue retry`` may revive the message at any moment: it writes the hint
        before and after its change, and this reads the message after the delete, so
        whichever order the two run in, an open message keeps its hint."""
        await self._delete(key)
        if await self._open_now(message_id):
            await rec.put(self.kv, key, b"")

    async def _open_now(self, message_id: str) -> bool:
        """Whether the stored message is pending or leased (a fresh read)."""
        found = await rec.get(self.kv, rec.msg_key(message_id))
        if found is None:
            return False
        message = self._readable(rec.msg_key(message_id), found[0])
        return message is not None and message.status in ("pending", "leased")

    async def _all_messages(self, *, gone: list[str] | None = None) -> list[Message]:
        """Every message, in creation order (ids sort by time); ``gone``: see :meth:`_scan`."""
        values = await self._scan("m.", gone=gone)
        return [m for k, v in sorted(values.items()) if (m := self._readable(k, v)) is not None]

    def _readable(self, key: str, data: bytes) -> Message | None:
        """The message at ``key``, or None (said once per key) when the record is not one:
        a listing, a claim or a sweep goes on past it, so one record garbled in the
        bucket does not stop the team's queue."""
        try:
            return rec.decode_message(data, key)
        except errors.RecordUnreadable as exc:
            self._unreadable(exc)
            return None

    def _unreadable(self, exc: errors.RecordUnreadable) -> None:
        if exc.key not in self._said_unreadable:
            self._said_unreadable.add(exc.key)
            log.warning("queue_record_unreadable", key=exc.key, reason=exc.reason)

    async def _open_for(self, recipient: str) -> list[Message]:
        """The recipient's pending and leased messages (through the hints), oldest first."""
        return await self._open_under(f"q.{rec.token(recipient)}.")

    async def _open_under(self, prefix: str) -> list[Message]:
        """The pending and leased messages whose hints are under ``prefix`` ("q." for
        every recipient's), in the hints' order (one recipient's: oldest first)."""
        out = []
        for key in await self._keys(prefix):
            message_id = key.rsplit(".", 1)[1]
            found = await rec.get(self.kv, rec.msg_key(message_id))
            if found is None:
                continue  # a send in flight (hint first, message next), or a leftover
            message = self._readable(rec.msg_key(message_id), found[0])
            if message is None:
                continue
            if rec.hint_key(message.recipient, message.id) != key:
                # A hint written by another program, pointing at someone else's message:
                # it gives no right to claim it (said once, left for its writer).
                self._unreadable(errors.RecordUnreadable(key, "the hint of another's message"))
                continue
            if message.status in ("pending", "leased"):
                out.append(message)
            else:  # closed, but its hint outlived a crash: tidy up
                await self._drop_hint(key, message_id)
        return out

    # --- registry -------------------------------------------------------------

    async def register(
        self,
        name: str,
        description: str = "",
        *,
        pid: int | None = None,
        state: str = "registered",
        meta: dict[str, Any] | None = None,
    ) -> AgentInfo:
        """Add or replace an agent (upsert); keeps the first ``registered_at``, and the
        old ``meta`` when ``meta`` is None. A reserved or malformed name raises
        :class:`~orchestrator.errors.InvalidName`, as on SQLite."""
        problem = name_problem(name) if isinstance(name, str) else "a name is a string"
        if problem is not None:
            raise errors.InvalidName(str(name), problem)
        return await self._upsert(name, description, pid=pid, state=state, meta=meta)

    async def register_guarded(
        self,
        name: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
        guard: Callable[[], Awaitable[None]],
    ) -> AgentInfo:
        """:meth:`register`, ``guard`` (the lease's check, lease.AgentLeases.register_row)
        asked after each read of the row, the create or update conditional on that read:
        a row written again after it was deleted lands only if the lease still allows it
        (a take marks an absent row, :meth:`lease.AgentLeases._claim_row`)."""
        problem = name_problem(name) if isinstance(name, str) else "a name is a string"
        if problem is not None:
            raise errors.InvalidName(str(name), problem)
        return await self._upsert(name, description, pid=pid, state=state, meta=meta, guard=guard)

    async def register_supervisor(self, pid: int, meta: dict[str, Any]) -> AgentInfo:
        """The supervisor's own row (state ``running``): for the supervisor only."""
        return await self._upsert(
            SUPERVISOR, "the team's supervisor", pid=pid, state="running", meta=meta
        )

    async def _upsert(
        self,
        name: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
        guard: Callable[[], Awaitable[None]] | None = None,
    ) -> AgentInfo:
        if meta is not None:
            encode_meta(meta)
        now = self.now()
        fresh = AgentInfo(name, description, pid, state, now, now, meta or {})
        key, encoded = rec.agent_key(name), rec.encode_agent(fresh)
        if guard is None:
            if await rec.create(self.kv, key, encoded):
                return fresh
        elif await rec.create_guarded(self.kv, key, encoded, guard):
            return fresh

        def step(old: bytes) -> bytes:
            before = self._agent_or_fresh(old, fresh)
            return rec.encode_agent(
                AgentInfo(
                    name,
                    description,
                    pid,
                    state,
                    now,
                    before.registered_at,
                    before.meta if meta is None else meta,
                )
            )

        _, new = await rec.update(self.kv, key, step, guard=guard)
        if new is None:  # unregistered in between: register afresh
            return await self._upsert(
                name, description, pid=pid, state=state, meta=meta, guard=guard
            )
        return rec.decode_agent(new, key)

    async def update_agent(
        self,
        name: str,
        *,
        state: str | None = None,
        pid: int | Keep | None = KEEP,
        meta: dict[str, Any] | None = None,
        heartbeat: bool = True,
        guard: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Change some fields (see ``Mailbox.update_agent``); RecipientUnknown if absent.
        ``guard`` (the lease's check, lease.AgentLeases.write_row) is asked after each read
        of the row and may raise to refuse: see :func:`records.update`."""
        now = self.now()

        def step(old: bytes) -> bytes:
            a = self._agent_or_fresh(old, AgentInfo(name, "", None, "registered", now, now, {}))
            merged = {**a.meta, **(meta or {})}
            encode_meta(merged)
            return rec.encode_agent(
                AgentInfo(
                    a.name,
                    a.description,
                    a.pid if isinstance(pid, Keep) else pid,
                    state if state is not None else a.state,
                    now if heartbeat else a.heartbeat_at,
                    a.registered_at,
                    merged,
                )
            )

        old, _ = await rec.update(self.kv, rec.agent_key(name), step, guard=guard)
        if old is None:
            if guard is not None:  # a row held elsewhere is not ours to write again either
                await guard()
            raise errors.RecipientUnknown(name, await self._known_names())

    async def unregister(self, name: str, *, force: bool = False) -> bool:
        """Remove a participant; True if it was registered. The reserved rows are refused;
        an agent of a running supervisor's roster too, unless ``force`` (the supervisor).
        "Running" here is the supervisor's row saying so, with a recent heartbeat: there is
        no lock file to ask."""
        if name in RESERVED_NAMES:
            raise errors.InvalidName(name, name_problem(name) or "reserved", "unregister")
        info = await self.agent(name)
        if info is None:
            return False
        if not force and info.meta.get("supervised"):
            sup = await self.agent(SUPERVISOR)
            # Its heartbeat recent, as `ask` reads it: one killed -9 leaves `running`.
            if (
                sup is not None
                and sup.state == "running"
                and sup.pid
                and supervisor_silence(sup.heartbeat_at, self.now()) is None
            ):
                raise errors.ParticipantSupervised(name, sup.pid)
        await self._delete(rec.agent_key(name))
        return True

    async def agents(self) -> list[AgentInfo]:
        found = await self._scan("a.")
        agents = []
        for key, value in found.items():
            try:
                agents.append(rec.decode_agent(value, key))
            except errors.RecordUnreadable as exc:
                self._unreadable(exc)
        return sorted(agents, key=lambda a: a.name)

    async def agent(self, name: str) -> AgentInfo | None:
        found = await rec.get(self.kv, rec.agent_key(name))
        return None if found is None else rec.decode_agent(found[0], rec.agent_key(name))

    def _agent_or_fresh(self, old: bytes, fresh: AgentInfo) -> AgentInfo:
        """The registry row in ``old``, or ``fresh`` when it is not one (garbled in the
        bucket): the write that changes it writes a whole row again, mending it."""
        try:
            return rec.decode_agent(old, rec.agent_key(fresh.name))
        except errors.RecordUnreadable as exc:
            self._unreadable(exc)
            return fresh

    async def _known_names(self) -> list[str]:
        return [USER, *(a.name for a in await self.agents() if a.name != USER)]

    async def _check_recipients(self, names: Iterable[str]) -> None:
        for name in dict.fromkeys(names):
            if name != USER and await rec.get(self.kv, rec.agent_key(name)) is None:
                raise errors.RecipientUnknown(name, await self._known_names())

    async def _broadcast_names(self, sender: str) -> list[str]:
        return [a.name for a in await self.agents() if a.name not in (sender, USER, SUPERVISOR)]


type_public_methods(NatsCore)
