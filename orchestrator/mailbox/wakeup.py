"""Wake waiters when the database changes, without busy-polling.

One :class:`ChangeFeed` per database file per process. With inotify (Linux)
a daemon thread sleeps in ``poll()`` on a watch of the database's folder and
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
  byte to ``<db>-wake``. That write comes after the commit is visible, so a
  waiter woken by it always finds the change. Waiters wake at once.
- the WAL file (``<db>-wal``, ``<db>``): any writer at all, including plain
  SQL from another language. Such a wake-up is deferred by
  :data:`SETTLE_S` ``[0]`` (and dropped if a bell explains it), repeated
  :data:`SETTLE_S` ``[1]`` later for a writer descheduled mid-commit, and the
  slow safety poll (:data:`SAFETY_POLL_S`) covers anything longer.

Without inotify (not Linux, or the kernel's instance limit reached) waiters
poll every :data:`FALLBACK_POLL_S`. ``OCTY_MAILBOX_WAKEUP=poll`` forces that
mode (for measurements and tests of the fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import anyio
import sniffio
import structlog

from orchestrator.mailbox.inotify import DirectoryWatch, InotifyUnavailable

SETTLE_S: Final = (0.002, 0.02)
"""Wake-ups after WAL activity no bell explained: one for a commit published just
after its WAL write, one for a writer descheduled in between (busy machine)."""
BELL_SUFFIX: Final = "-wake"
SAFETY_POLL_S: Final = 2.0
"""Longest sleep between checks when inotify is active (missed-event insurance)."""
FALLBACK_POLL_S: Final = 0.1
"""Check interval when inotify is not available."""

log = structlog.get_logger(__name__)


class Waiter:
    """One wait in progress (from :meth:`ChangeFeed.watching`)."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed

    @property
    def generation(self) -> int:
        """Read this *before* checking the database, then pass it to :meth:`wait`."""
        return self._feed.generation

    def _cap(self, max_wait_s: float) -> float:
        return max(0.0, min(max_wait_s, self._feed.poll_interval))

    def wait(self, seen: int, max_wait_s: float) -> None:
        """Sleep until the generation moves past ``seen`` (or the time is up)."""
        self._feed.wait(seen, self._cap(max_wait_s))

    async def wait_async(self, seen: int, max_wait_s: float) -> None:
        """:meth:`wait` for an event loop: no thread held, cancellable at once."""
        await self._feed.wait_async(seen, self._cap(max_wait_s))


class ChangeFeed:
    """A generation counter bumped whenever the database may have changed."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._cond = threading.Condition()
        self._generation = 0
        self._async_waiters: set[Callable[[], object]] = set()
        self._refs = 0
        self._waiters = 0
        self._watch: DirectoryWatch | None = None
        self._thread: threading.Thread | None = None
        self._stop_r = self._stop_w = -1
        self._tried = os.environ.get("OCTY_MAILBOX_WAKEUP", "inotify") == "poll"
        self.bell_path = db_path.with_name(db_path.name + BELL_SUFFIX)
        self._bell_fd = -1
        self._bell_broken = False

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

    @contextlib.contextmanager
    def watching(self) -> Iterator[Waiter]:
        """Have the inotify watch on while the caller waits inside this block.

        The watch is not removed when the last waiter leaves (a consumer looping
        on waits would add and remove it every time); the reader thread removes
        it when an event arrives and nobody is waiting."""
        with self._cond:
            self._start_locked()
            if self._watch is not None:
                try:
                    self._watch.start()  # no-op when already on
                except InotifyUnavailable as exc:  # e.g. the folder was removed: poll slowly
                    log.warning("mailbox.watch_failed", db=str(self.db_path), reason=str(exc))
            self._waiters += 1
        try:
            yield Waiter(self)
        finally:
            with self._cond:
                self._waiters -= 1

    def ring(self) -> None:
        """Tell every process's waiters that a commit is now visible (after COMMIT)."""
        if self._bell_fd < 0:
            if self._bell_broken:
                return
            with self._cond:
                if self._bell_fd < 0:
                    try:
                        self._bell_fd = os.open(
                            self.bell_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
                        )
                    except OSError as exc:  # read-only folder: WAL events still wake waiters
                        self._bell_broken = True
                        log.warning("mailbox.bell_unavailable", path=str(self.bell_path),
                                    reason=str(exc))
                        return
        with contextlib.suppress(OSError):
            os.pwrite(self._bell_fd, b"\0", 0)

    def notify(self) -> None:
        """Wake every waiter in this process now."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            callbacks = list(self._async_waiters)
        for callback in callbacks:
            with contextlib.suppress(RuntimeError):  # the waiter's loop already closed
                callback()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self._generation == seen and timeout > 0:
                self._cond.wait(timeout)

    async def wait_async(self, seen: int, seconds: float) -> None:
        if sniffio.current_async_library() != "asyncio":
            # Other backends: a worker thread we may abandon on cancellation;
            # it returns by itself within `seconds` (at most poll_interval).
            await anyio.to_thread.run_sync(self.wait, seen, seconds, abandon_on_cancel=True)
            return
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        with self._cond:
            if self._generation != seen:
                return
            self._async_waiters.add(wake)
        try:
            with anyio.move_on_after(seconds):
                await event.wait()
        finally:
            with self._cond:
                self._async_waiters.discard(wake)

    def _start_locked(self) -> None:
        """First wait in this process: set up inotify and the reader thread."""
        if self._tried:
            return
        self._tried = True
        names = frozenset({self.db_path.name, f"{self.db_path.name}-wal",
                           f"{self.db_path.name}-journal", self.bell_path.name})
        try:
            self._watch = DirectoryWatch(self.db_path.parent, names)
        except InotifyUnavailable as exc:
            log.warning("mailbox.wakeup_polling", db=str(self.db_path), reason=str(exc))
            return
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(
            target=self._run, args=(self._watch,), name=f"mailbox-feed:{self.db_path.name}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, watch: DirectoryWatch) -> None:
        poller = select.poll()
        poller.register(watch.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        bell = self.bell_path.name
        due: list[float | None] = [None] * len(SETTLE_S)  # pending settle wake-ups
        while True:
            pending = [d for d in due if d is not None]
            timeout = None if not pending else max(0.0, min(pending) - time.monotonic()) * 1000
            ready = poller.poll(timeout)
            if any(fd == self._stop_r for fd, _ in ready):
                return
            if ready:
                names = watch.drain()
                with self._cond:
                    if self._waiters == 0:  # nobody to wake: stop watching until someone waits
                        watch.stop()
                        due = [None] * len(SETTLE_S)
                        continue
                now = time.monotonic()
                if "*" in names or bell in names:
                    self.notify()
                    due[0] = None  # the bell explains the WAL writes before it
                tail = names[_last_index(names, bell) + 1 :]
                if any(n != bell for n in tail):  # WAL activity no bell explained (yet)
                    due = [now + d for d in SETTLE_S]
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
        if self._bell_fd >= 0:
            os.close(self._bell_fd)
            self._bell_fd = -1
        self.notify()  # nobody may sleep on a feed that no longer watches


def _last_index(names: list[str], name: str) -> int:
    """Index of the last ``name`` in ``names``, -1 if absent."""
    for i in range(len(names) - 1, -1, -1):
        if names[i] == name:
            return i
    return -1


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
