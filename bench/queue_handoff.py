"""Issue 14.3, twelfth session: hand SQLite's write lock over in the kernel, and only
when a write meets it held.

In WAL mode the writer holds a POSIX ``fcntl`` write lock on byte 120 of the ``-shm``
file (WAL_WRITE_LOCK, at WALINDEX_LOCK_OFFSET 120 in SQLite's wal.c; seen in
/proc/locks while a connection holds BEGIN IMMEDIATE). A writer whose connection has
``busy_timeout = 0`` and whose write fails with "database is locked" blocks in
``F_OFD_SETLKW`` asking a READ lock on that byte: the kernel wakes it exactly when the
holder unlocks (instead of SQLite's busy sleeps of 1, 2, 5, 10 ... ms), it drops the
lock at once (this process's own SQLite would conflict with it) and writes again.

The clients are the real ``Mailbox`` (its send, claim and ack, every check kept), with
the retry around its calls:

    ours-ofd          producers' sends hand off; consumers keep SQLite's busy sleeps
    ours-ofd-all      claims and acks hand off too
    ours-ofd-pre      no busy_timeout 0 and no refused try: before each send, F_OFD_GETLK
                      on the byte; while held, wait as above; then the send as today
                      (SQLite's busy sleeps still cover a race lost after the wake-up)
    ours-sleeps       producers' sends sleep as SQLite's busy handler does, in Python:
                      counts the refusals and the time asleep the hand-off could save
    ...-full          the same at synchronous=FULL (compare with ours-full)

Run them beside today's path, interleaved, with bench/queue_proto.py:

    python bench/queue_proto.py --keys ours,ours-ofd,ours-ofd-all --repeats 4

A program, not a test. Figures: docs/benchmarks.md, "Issue 14.3, twelfth session".
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.queue_backends import PRODUCER, Claimed, Client, Ours

T = TypeVar("T")

WRITE_LOCK_BYTE = 120  # WALINDEX_LOCK_OFFSET + WAL_WRITE_LOCK (0)
# struct flock on Linux (x86_64, aarch64): short type, short whence, off_t start, off_t
# len, pid_t pid, padding. l_pid must be 0 for the OFD commands.
_FLOCK = struct.Struct("hhqqi4x")


class WriteLockWaiter:
    """Blocks until no process holds SQLite's WAL write lock on ``path``.

    The fd stays open for the client's life and is closed after its connection:
    closing any fd of a file drops every POSIX lock this process holds on it,
    SQLite's own on the -shm included."""

    def __init__(self, db_path: Path) -> None:
        self._fd = os.open(f"{db_path}-shm", os.O_RDWR | os.O_CLOEXEC)
        self._want = _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, WRITE_LOCK_BYTE, 1, 0)
        self._drop = _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, WRITE_LOCK_BYTE, 1, 0)
        self.waits = 0
        self.free = 0  # the lock was already free: the write was refused for another reason
        self.waited_ns = 0

    def held(self) -> bool:
        got = fcntl.fcntl(self._fd, fcntl.F_OFD_GETLK, self._want)
        return _FLOCK.unpack(got)[0] != fcntl.F_UNLCK

    def wait(self) -> None:
        t0 = time.monotonic_ns()
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLKW, self._want)
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, self._drop)
        self.waited_ns += time.monotonic_ns() - t0
        self.waits += 1

    def close(self) -> None:
        os.close(self._fd)


def _locked(exc: BaseException) -> bool:
    cause = exc.__cause__
    return cause is not None and "locked" in str(cause)


# SQLite's busy handler on Linux (sqliteDefaultBusyCallback, with usleep): ms per try.
_SQLITE_DELAYS_MS = (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100)


class _HandoffClient:
    """``mode`` "ofd": the kernel hand-off above; "sleeps": SQLite's own busy sleeps
    done in Python, to count the refusals and the time asleep that the hand-off can
    save (the baseline's mechanism, measured)."""

    def __init__(
        self, path: Path, queue: str, owner: str, sync: str, *, every: bool, mode: str = "ofd"
    ) -> None:
        from orchestrator import errors
        from orchestrator.mailbox import Mailbox

        self._stalled = errors.DatabaseStalled
        hand_off = every or owner == "producer"  # (bench/queue_workers.py)
        self._mb = Mailbox(
            path,
            synchronous="FULL" if sync == "FULL" else "NORMAL",
            busy_timeout_ms=0 if hand_off and mode != "pre" else 10_000,
        )
        self._waiter = WriteLockWaiter(path) if hand_off else None
        self._mode = mode
        self.slept_ns = self.refused = 0
        # sends over 0.5 ms, split by whether the lock was refused: [count, ns] each
        self.slow_refused = [0, 0]
        self.slow_clean = [0, 0]
        self._queue = queue
        self._owner = owner

    def _retrying(self, step: Callable[[], T]) -> T:
        waiter = self._waiter
        if waiter is None:
            return step()
        if self._mode == "pre":  # look first; wait while held; then SQLite's own path
            if waiter.held():
                self.refused += 1
                waiter.wait()
            return step()
        deadline = time.monotonic() + 10.0
        free_in_a_row = 0
        tries = 0
        while True:
            try:
                return step()
            except self._stalled as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
            self.refused += 1
            if self._mode == "sleeps":
                t0 = time.monotonic_ns()
                time.sleep(_SQLITE_DELAYS_MS[min(tries, 11)] / 1000)
                self.slept_ns += time.monotonic_ns() - t0
                tries += 1
                continue
            if free_in_a_row >= 2:  # refused, yet nobody writes: SQLite's own pace
                time.sleep(0.001)
                free_in_a_row = 0
                continue
            if waiter.held():
                waiter.wait()
                free_in_a_row = 0
            else:
                waiter.free += 1
                free_in_a_row += 1

    def send(self, body: dict[str, Any]) -> None:
        refused = self.refused
        t0 = time.monotonic_ns()
        self._retrying(lambda: self._mb.send(PRODUCER, self._queue, body))
        took = time.monotonic_ns() - t0
        if took > 500_000:  # as bench/queue_workers.py's SLOW_SEND_NS
            slot = self.slow_refused if self.refused != refused else self.slow_clean
            slot[0] += 1
            slot[1] += took

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for b in bodies:
            self.send(b)

    def claim(self, limit: int) -> Claimed:
        got = self._retrying(
            lambda: self._mb.claim(self._queue, owner=self._owner, lease_s=60.0, limit=limit)
        )
        return [(m.id, m.body) for m in got]

    def ack(self, handles: list[Any]) -> None:
        self._retrying(lambda: self._mb.ack(handles, owner=self._owner))

    def wait(self, timeout_s: float) -> None:
        self._mb.wait_for_messages(self._queue, timeout_s)

    def close(self) -> None:
        self._mb.close()  # first: SQLite's locks on the -shm go with its connection
        if self._waiter is not None:
            if os.environ.get("PROTO_DEBUG"):
                w = self._waiter
                print(
                    f"{self._queue} {self._owner} {self._mode}: refused {self.refused}, "
                    f"waits {w.waits} ({w.waited_ns / 1e6:.1f} ms), free {w.free}, "
                    f"slept {self.slept_ns / 1e6:.1f} ms; sends > 0.5 ms: refused "
                    f"{self.slow_refused[0]} ({self.slow_refused[1] / 1e6:.1f} ms), not "
                    f"{self.slow_clean[0]} ({self.slow_clean[1] / 1e6:.1f} ms)",
                    flush=True,
                )
            self._waiter.close()


class OursHandoff(Ours):
    throughput_only = True

    def __init__(self, key: str, sync: str, every: bool, mode: str = "ofd") -> None:
        self.key, self.label, self.sync, self.every, self.mode = key, key, sync, every, mode

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _HandoffClient(
            self._path(root), queue, owner, self.sync, every=self.every, mode=self.mode
        )

    def describe(self, root: Path) -> dict[str, str]:
        return {**super().describe(root), "synchronous": self.sync}


def factories() -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    for every, name in ((False, "ours-ofd"), (True, "ours-ofd-all")):
        out[name] = lambda n=name, e=every: OursHandoff(n, "NORMAL", e)
        out[f"{name}-full"] = lambda n=name, e=every: OursHandoff(f"{n}-full", "FULL", e)
    out["ours-ofd-pre"] = lambda: OursHandoff("ours-ofd-pre", "NORMAL", False, "pre")
    out["ours-ofd-pre-full"] = lambda: OursHandoff("ours-ofd-pre-full", "FULL", False, "pre")
    out["ours-sleeps"] = lambda: OursHandoff("ours-sleeps", "NORMAL", False, "sleeps")
    out["ours-sleeps-full"] = lambda: OursHandoff("ours-sleeps-full", "FULL", False, "sleeps")
    return out
