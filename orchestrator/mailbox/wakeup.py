"""Wake waiters when the database changes, without busy-polling.

One :class:`ChangeFeed` per database file per process. With inotify (Linux)
a daemon thread sleeps in ``poll()`` on inotify watches of the database's files and
bumps a generation counter that waiters block on; a waiter then runs one
indexed query. The watch is on only while something in this process waits
(:meth:`ChangeFeed.watching`, switched off by the reader thread at the first
event that finds nobody waiting): a producer that never waits, or a consumer
busy with its own writes, is not woken by every commit (measured: a feed
woken by its own process's commits more than doubled the cost of a send).

Two signals, because SQLite writes the WAL frames a few microseconds
*before* it publishes the commit in the shared-memory index (so a waiter
woken by the WAL write can look too early and see nothing):

- the bell: after every commit that changed something, a Mailbox writes one
  byte to a bell file. That write comes after the commit is visible, so a
  waiter woken by it always finds the change. Waiters wake at once. There is
  one bell per recipient bucket, ``<db>-wake-<k>`` with k = crc32(recipient)
  mod :data:`BUCKETS`, rung by writes that concern that recipient's messages,
  and ``<db>-wake`` for writes that may concern anyone (sweep, admin). A
  waiter for one recipient's inbox (:meth:`ChangeFeed.watching` with a topic)
  wakes only for its bucket's bell and ``<db>-wake``, so four consumers are
  not all woken by every send (measured with 4 producer/consumer pairs:
  inbox checks that found nothing fell from ~620 to ~125 per consumer per
  1,500 messages; throughput within noise). A waiter without a topic wakes
  for every bell.
- the WAL file (``<db>-wal``, ``<db>``): any writer at all, including plain
  SQL from another language. Such a wake-up is deferred by
  :data:`SETTLE_S` ``[0]`` (and dropped if one of our bells explains it),
  repeated :data:`SETTLE_S` ``[1]`` later for a writer descheduled mid-commit,
  and the slow safety poll (:data:`SAFETY_POLL_S`) covers anything longer.

Waiters must not pay for other inboxes' traffic (issue 14: twenty idle
waiters burned 70 % of a core, and more under load, while one pair ran
200 msg/s elsewhere, because every commit anywhere woke every waiting
process). So the bells are watched file by file, only the ones this process
waits for (a bell rung for another bucket is never even queued here), and the
WAL file, which every commit writes, is read at most once per
:data:`WAL_COOLDOWN_S`: after a WAL event the reader leaves that inotify
instance unread for that long; the kernel merges the events that pile up
meanwhile into one, so nothing is lost and nothing is paid per commit. A
plain-SQL write is thus seen within :data:`SETTLE_S` ``[0]`` when the WAL was
quiet, and within :data:`WAL_COOLDOWN_S` while others are busy.

Without inotify (not Linux, or the kernel's instance limit reached) waiters
poll every :data:`FALLBACK_POLL_S`. ``OCTY_MAILBOX_WAKEUP=poll`` forces that
mode (for measurements and tests of the fallback).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from orchestrator import safefs
from orchestrator.errors import UnsafePath
from orchestrator.mailbox.inotify import OVERFLOW, FeedWatch, InotifyUnavailable

T = TypeVar("T")

SETTLE_S: Final = (0.002, 0.02)
"""Wake-ups after WAL activity no bell explained: one for a commit published just
after its WAL write, one for a writer descheduled in between (busy machine)."""
BELL_SUFFIX: Final = "-wake"
BUCKETS: Final = 32
"""Recipient buckets, one bell file each (a collision only costs a spurious wake-up)."""
WAL_COOLDOWN_S: Final = 1.0
"""After a WAL event, how long the reader leaves the WAL unread (events merge meanwhile):
the most a plain-SQL write waits while other writers keep the WAL busy. Each read costs
an idle waiter ~0.35 ms of CPU (a wake-up and an inbox check): at 0.5 s, twenty idle
waiters beside a busy pair spent 1.8-2.3 % of a core, on issue 14's 2 % line."""
SAFETY_POLL_S: Final = 2.0
"""Longest sleep between checks when inotify is active (missed-event insurance)."""
FALLBACK_POLL_S: Final = 0.1
"""Check interval when inotify is not available."""


def _warn(event: str, **fields: Any) -> None:
    """structlog, imported only when there is something to say: with rich installed it
    costs tens of ms, which a CLI verb writing one row should not pay (issue 14)."""
    import structlog  # noqa: PLC0415 - lazy on purpose

    structlog.get_logger(__name__).warning(event, **fields)


def bucket(topic: str) -> int:
    """The bell bucket of a recipient name."""
    return zlib.crc32(topic.encode()) % BUCKETS


class Waiter:
    """One wait in progress (from :meth:`ChangeFeed.watching`)."""

    def __init__(self, feed: ChangeFeed, slot: int | None = None) -> None:
        self._feed = feed
        self._slot = slot

    @property
    def generation(self) -> int:
        """Read this *before* checking the database, then pass it to :meth:`wait`."""
        return self._feed.generation_of(self._slot)

    def _cap(self, max_wait_s: float) -> float:
        return max(0.0, min(max_wait_s, self._feed.poll_interval))

    def wait(self, seen: int, max_wait_s: float) -> None:
        """Sleep until the generation moves past ``seen`` (or the time is up)."""
        self._feed.wait(seen, self._cap(max_wait_s), self._slot)

    async def wait_async(self, seen: int, max_wait_s: float) -> None:
        """:meth:`wait` for an event loop: no thread held, cancellable at once."""
        await self._feed.wait_async(seen, self._cap(max_wait_s), self._slot)

    # The wait loop, once per mode. ``poll`` is one cheap check: (the answer or None,
    # seconds until the clock alone could change it); the generation is read before the
    # check, so a commit landing between the check and the sleep cuts the sleep short.

    def until(self, poll: Callable[[], tuple[T | None, float]], deadline: float) -> T | None:
        """Block until ``poll`` has an answer (returned) or ``time.monotonic()`` passes
        ``deadline`` (None)."""
        while True:
            seen = self.generation
            answer, due_in = poll()
            if answer is not None:
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.wait(seen, min(remaining, due_in))

    async def until_async(
        self, poll: Callable[[], Awaitable[tuple[T | None, float]]], deadline: float
    ) -> T | None:
        """:meth:`until` for an event loop; ``poll`` is awaited."""
        while True:
            seen = self.generation
            answer, due_in = await poll()
            if answer is not None:
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await self.wait_async(seen, min(remaining, due_in))


class ChangeFeed:
    """A generation counter bumped whenever the database may have changed."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._cond = threading.Condition()
        self._generation = 0  # every wake-up
        self._all_generation = 0  # wake-ups for everyone (not one bucket's)
        self._bucket_generation = [0] * BUCKETS
        self._async_waiters: set[tuple[int | None, Callable[[], object]]] = set()
        self._refs = 0
        self._waiters = 0
        self._interest = [0] * BUCKETS  # waiters per bucket
        self._untopical = 0  # waiters for any change
        self._watch: FeedWatch | None = None
        # Reader thread wake-ups: for a bell, for the WAL, for a file created (tests count them).
        self.wakeups = {"bell": 0, "wal": 0, "folder": 0}
        self._thread: threading.Thread | None = None
        self._stop_r = self._stop_w = -1
        self._tried = os.environ.get("OCTY_MAILBOX_WAKEUP", "inotify") == "poll"
        self.bell_path = db_path.with_name(db_path.name + BELL_SUFFIX)
        self._bell_fds: dict[int | None, int] = {}
        self._bell_broken = False
        self._bell_names: dict[str, int | None] = {
            f"{self.bell_path.name}-{k}": k for k in range(BUCKETS)
        }
        self._bell_names[self.bell_path.name] = None
        self._slot_names = {slot: name for name, slot in self._bell_names.items()}
        self._slots: dict[str, int] = {}  # recipient -> bucket (crc32 per ring cost ~0.5 us)

    @property
    def pushed(self) -> bool:
        """True when changes are pushed (inotify); False when waiters poll."""
        return self._watch is not None

    @property
    def watching_now(self) -> bool:
        """The watch is on (a wait would start right away, with nothing to set up)."""
        return self._watch is not None and self._watch.on

    @property
    def poll_interval(self) -> float:
        """The longest a waiter sleeps before checking again without a wake-up."""
        return SAFETY_POLL_S if self.pushed else FALLBACK_POLL_S

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def _generation_locked(self, slot: int | None) -> int:
        if slot is None:
            return self._generation
        return self._all_generation + self._bucket_generation[slot]

    def generation_of(self, slot: int | None) -> int:
        """The counter a waiter on ``slot`` (a bucket, or None for any change) watches."""
        with self._cond:
            return self._generation_locked(slot)

    @contextlib.contextmanager
    def watching(self, topic: str | None = None) -> Iterator[Waiter]:
        """Have the inotify watch on while the caller waits inside this block.

        With ``topic`` (a recipient name) the waiter wakes only for writes rung
        for that recipient's bucket or for everyone; without, for every write.

        The watch is not removed when the last waiter leaves (a consumer looping
        on waits would add and remove it every time); the reader thread removes
        it when an event arrives and nobody is waiting."""
        slot = None if topic is None else bucket(topic)
        with self._cond:
            self._start_locked()
            if self._watch is not None:
                try:
                    self._watch.start()  # no-op when already on
                    self._want_locked(self._watch, slot)
                except InotifyUnavailable as exc:  # e.g. the folder was removed: poll slowly
                    _warn("mailbox.watch_failed", db=str(self.db_path), reason=str(exc))
            self._waiters += 1
            if slot is None:
                self._untopical += 1
            else:
                self._interest[slot] += 1
        try:
            yield Waiter(self, slot)
        finally:
            with self._cond:
                self._waiters -= 1
                if slot is None:
                    self._untopical -= 1
                else:
                    self._interest[slot] -= 1

    def _want_locked(self, watch: FeedWatch, slot: int | None) -> None:
        """Watch the bells a waiter on ``slot`` wakes for: its bucket's and the shared
        one; every bell for a waiter without a topic."""
        slots: Iterable[int | None] = [None, slot] if slot is not None else [None, *range(BUCKETS)]
        for each in slots:  # a bell not rung yet is watched once it is created
            watch.want(self._slot_names[each])

    def _bell_fd_locked(self, slot: int | None) -> int:
        fd = self._bell_fds.get(slot, -1)
        if fd >= 0 or self._bell_broken:
            return fd
        path = self.bell_path.with_name(self._slot_names[slot])
        try:  # never through a link: the bell writes a byte at offset 0
            fd = safefs.open_private(path, os.O_WRONLY | os.O_CREAT, "bell file")
        except (OSError, UnsafePath) as exc:
            # a read-only folder, a planted link: WAL events still wake waiters
            self._bell_broken = True
            _warn("mailbox.bell_unavailable", path=str(path), reason=str(exc))
            return -1
        self._bell_fds[slot] = fd
        return fd

    def ring(self, topics: Iterable[str] | None = None) -> None:
        """Tell every process's waiters that a commit is now visible (after COMMIT):
        the bells of ``topics``' buckets (recipient names), or the bell for everyone."""
        if topics is None:
            self._ring_slot(None)
            return
        slots = self._slots
        if len(slots) > 4096:  # names come from callers: keep the memo bounded
            slots.clear()
        for slot in {slots[t] if t in slots else slots.setdefault(t, bucket(t)) for t in topics}:
            self._ring_slot(slot)

    def _ring_slot(self, slot: int | None) -> None:
        fd = self._bell_fds.get(slot, -1)
        if fd < 0:
            if self._bell_broken:
                return
            with self._cond:
                fd = self._bell_fd_locked(slot)
            if fd < 0:
                return
        try:  # noqa: SIM105 - once per commit; contextlib.suppress would double the cost
            os.pwrite(fd, b"\0", 0)
        except OSError:
            pass

    def notify(self, slots: Iterable[int] | None = None) -> int:
        """Wake this process's waiters now: every one, or those of ``slots``
        (buckets) plus the waiters for any change. Returns how many event-loop
        waiters it woke."""
        with self._cond:
            self._generation += 1
            if slots is None:
                self._all_generation += 1
                wanted: set[int | None] | None = None
            else:
                wanted = {None}
                for slot in slots:
                    self._bucket_generation[slot] += 1
                    wanted.add(slot)
            self._cond.notify_all()
            callbacks = [cb for slot, cb in self._async_waiters if wanted is None or slot in wanted]
        for callback in callbacks:
            with contextlib.suppress(RuntimeError):  # the waiter's loop already closed
                callback()
        return len(callbacks)

    def wait(self, seen: int, timeout: float, slot: int | None = None) -> None:
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._generation_locked(slot) == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    async def wait_async(self, seen: int, seconds: float, slot: int | None = None) -> None:
        # Only event loops need these; a synchronous client should not import them.
        import asyncio  # noqa: PLC0415

        import anyio  # noqa: PLC0415
        import sniffio  # noqa: PLC0415

        if sniffio.current_async_library() != "asyncio":
            # Other backends: a worker thread we may abandon on cancellation;
            # it returns by itself within `seconds` (at most poll_interval).
            await anyio.to_thread.run_sync(self.wait, seen, seconds, slot, abandon_on_cancel=True)
            return
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        loop_thread = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == loop_thread:  # a write on this loop (AsyncMailbox)
                event.set()  # the waiter runs at the loop's next turn, no self-pipe round trip
            else:  # the feed's reader thread
                loop.call_soon_threadsafe(event.set)

        entry = (slot, wake)
        with self._cond:
            if self._generation_locked(slot) != seen:
                return
            self._async_waiters.add(entry)
        try:
            with anyio.move_on_after(seconds):
                await event.wait()
        finally:
            with self._cond:
                self._async_waiters.discard(entry)

    def _start_locked(self) -> None:
        """First wait in this process: set up inotify and the reader thread."""
        if self._tried:
            return
        self._tried = True
        names = frozenset(
            {self.db_path.name, f"{self.db_path.name}-wal", f"{self.db_path.name}-journal"}
        )
        try:
            self._watch = FeedWatch(self.db_path.parent, names)
        except InotifyUnavailable as exc:
            _warn("mailbox.wakeup_polling", db=str(self.db_path), reason=str(exc))
            return
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._watch,),
            name=f"mailbox-feed:{self.db_path.name}",
            daemon=True,
        )
        import signal  # noqa: PLC0415 - only a process that waits starts the thread

        # The thread starts with every signal blocked, so Ctrl-C and SIGTERM go to the main
        # thread. A waiter sleeps there in Condition.wait, which only a signal delivered to
        # it interrupts: one the kernel gave this thread instead was handled only when the
        # wait's next wake-up came (measured: 1.5 s late).
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)

    def _run(self, watch: FeedWatch) -> None:
        poller = select.poll()
        poller.register(watch.bells.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        buckets = self._bell_names
        due: list[float | None] = [None] * len(SETTLE_S)  # pending settle wake-ups
        wal_read_at = 0.0  # the WAL instance is left unread until then
        wal_polled = False
        while True:
            now = time.monotonic()
            if not wal_polled and now >= wal_read_at:
                poller.register(watch.wal.fd, select.POLLIN)
                wal_polled = True
            pending = [d for d in due if d is not None]
            if not wal_polled:
                pending.append(wal_read_at)
            timeout = None if not pending else max(0.0, min(pending) - now) * 1000
            ready = {fd for fd, _ in poller.poll(timeout)}
            if self._stop_r in ready:
                return
            if ready:
                with self._cond:
                    if self._waiters == 0:  # nobody to wake: stop watching until someone waits
                        watch.stop()
                        watch.bells.drain()
                        watch.wal.drain()
                        due = [None] * len(SETTLE_S)
                        continue
                    interest = self._untopical > 0, list(self._interest)
            now = time.monotonic()
            # Only a write counts: removing a watch (stop, and FeedWatch's own start/stop
            # test) queues an IN_IGNORED that drain() reports as nothing.
            if watch.wal.fd in ready and watch.wal.drain():  # a commit: look once it settles
                self.wakeups["wal"] += 1
                # A second look for a writer descheduled mid-commit, unless the WAL is
                # busy: then the next read, one cool-down away, is that second look.
                busy = now - wal_read_at < WAL_COOLDOWN_S
                due = [now + d for d in SETTLE_S[: 1 if busy else None]]
                due += [None] * (len(SETTLE_S) - len(due))
                poller.unregister(watch.wal.fd)  # events merge in the kernel meanwhile
                wal_polled = False
                wal_read_at = now + WAL_COOLDOWN_S
            if watch.bells.fd in ready:
                rung: set[int] = set()
                everyone = False
                events = watch.bells.drain()
                self.wakeups["bell" if any(not c for _, c in events) else "folder"] += 1
                for name, created in events:
                    if created:  # a new WAL is a change; a new bell may have rung already
                        with self._cond:
                            if watch.created(name):
                                due = [now + d for d in SETTLE_S]
                        if name not in buckets:
                            continue
                    if name == OVERFLOW or buckets.get(name, -1) is None:
                        everyone = True
                    elif name in buckets:
                        slot = buckets[name]
                        assert slot is not None
                        rung.add(slot)
                if everyone:
                    self.notify()
                    due[0] = None  # the bell explains the WAL writes before it
                elif rung:
                    due[0] = None
                    wanted = {k for k in rung if interest[0] or interest[1][k]}
                    if wanted:
                        self.notify(wanted)
                    with self._cond:  # nobody waits for those any more: stop hearing them
                        for k in rung - wanted:
                            if not self._untopical and not self._interest[k]:
                                watch.unwant(self._slot_names[k])
            now = time.monotonic()
            fire = False
            for i, d in enumerate(due):
                if d is not None and d <= now:
                    due[i] = None
                    fire = True
            if fire:
                self.notify()

    def _close(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join()
            os.close(self._stop_r)
            os.close(self._stop_w)
            self._thread = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for fd in self._bell_fds.values():
            os.close(fd)
        self._bell_fds.clear()
        self.notify()  # nobody may sleep on a feed that no longer watches


_feeds: dict[tuple[str, int], ChangeFeed] = {}
_feeds_lock = threading.Lock()


def acquire_feed(db_path: Path) -> ChangeFeed:
    """The process's feed for this database (shared by every Mailbox on it)."""
    key = (str(db_path), os.getpid())  # a forked child needs its own thread and watch
    with _feeds_lock:
        feed = _feeds.get(key)
        if feed is None:
            feed = _feeds[key] = ChangeFeed(db_path)
        feed._refs += 1
        return feed


def release_feed(feed: ChangeFeed) -> None:
    with _feeds_lock:
        feed._refs -= 1
        if feed._refs > 0:
            return
        _feeds.pop((str(feed.db_path), os.getpid()), None)
    feed._close()
