"""Issue 14.3, thirteenth session: take the WAL checkpoint off the senders' path.

With ``wal_autocheckpoint`` the connection whose commit takes the WAL past the limit
runs the checkpoint inside that commit, fsyncs and all: one producer alone, 6,000
``Mailbox.send()`` calls, two sends took 36-39 ms each (18 % of all its send time).
Here the consumers' side runs ``PRAGMA wal_checkpoint(PASSIVE)`` after a claim or an
ack once the WAL holds ``share`` of the autocheckpoint limit in frames not yet
copied back. A PASSIVE checkpoint takes no write lock (senders keep appending while it
copies and syncs); the next writer restarts the WAL once all of it is copied. Every
connection keeps ``wal_autocheckpoint`` as the safety net.

The un-copied frames are read from the wal-index header in the ``-shm`` file (SQLite's
wal.c: ``WalIndexHdr.mxFrame`` at offset 16 of the first of its two 48-byte copies,
``WalCkptInfo.nBackfill`` at offset 96; native byte order), one ``pread`` of 100 bytes.

    ours-ckoff                this client with no checkpoint of its own (today's path,
                              with the same timing of sends)
    ours-ckc25, ours-ckc50    consumers checkpoint at 25 % / 50 % of CHECKPOINT_PAGES
    ...-full                  the same at synchronous=FULL (of CHECKPOINT_PAGES_FULL)

Run them beside today's path, interleaved, with bench/queue_proto.py:

    PROTO_DEBUG=1 python bench/queue_proto.py --keys ours-ckoff,ours-ckc50 --repeats 6

The mechanism alone: one producer's 6,000 ``Mailbox.send()`` calls with no consumer,
(A) as today, (B) beside another process that checkpoints at 25 % of the limit, (C)
beside that process started but never checkpointing (its presence alone), interleaved:

    python bench/queue_checkpoint.py --repeats 8

A program, not a test. Figures: docs/benchmarks.md, "Issue 14.3, thirteenth session".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # same reason as bench/queue.py (stdlib queue shadowed)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from bench.queue_backends import PRODUCER, Claimed, Client, Ours, _OursClient  # noqa: E402

_HEADER = struct.Struct("=16xI76xI")  # mxFrame at 16, nBackfill at 96


def wal_frames(fd: int) -> int:
    """Frames in the WAL (its size; what ``wal_autocheckpoint`` compares with)."""
    raw = os.pread(fd, _HEADER.size, 0)
    return _HEADER.unpack(raw)[0] if len(raw) == _HEADER.size else 0


def uncopied_frames(fd: int) -> int:
    """Frames in the WAL not yet copied into the database file (0 if the -shm is new)."""
    raw = os.pread(fd, _HEADER.size, 0)
    if len(raw) < _HEADER.size:
        return 0
    mx, backfill = _HEADER.unpack(raw)
    return max(0, mx - backfill)


class _ConsumerCheckpointClient(_OursClient):
    def __init__(self, path: Path, queue: str, owner: str, sync: str, share: float) -> None:
        from orchestrator.mailbox import schema

        super().__init__(path, queue, owner, sync)
        pages = schema.CHECKPOINT_PAGES_FULL if sync == "FULL" else schema.CHECKPOINT_PAGES
        self._at = int(pages * share)
        self._fd = os.open(f"{path}-shm", os.O_RDONLY | os.O_CLOEXEC)
        self.checkpoints = 0
        self.ck_ns = 0
        # sends over 0.5 ms, split by whether the WAL's un-copied frames fell during the
        # send (a checkpoint ran in it, or beside it): [count, ns] each
        self.slow_ck = [0, 0]
        self.slow_other = [0, 0]
        self.send_ns = 0
        self.max_frames = 0

    def send(self, body: dict[str, Any]) -> None:
        before = uncopied_frames(self._fd)
        t0 = time.monotonic_ns()
        self._mb.send(PRODUCER, self._queue, body)
        took = time.monotonic_ns() - t0
        self.send_ns += took
        self.max_frames = max(self.max_frames, wal_frames(self._fd))
        if took > 500_000:
            slot = self.slow_ck if uncopied_frames(self._fd) < before else self.slow_other
            slot[0] += 1
            slot[1] += took

    def _maybe_checkpoint(self) -> None:
        if not self._at or uncopied_frames(self._fd) < self._at:
            return
        t0 = time.monotonic_ns()
        self._mb._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.ck_ns += time.monotonic_ns() - t0
        self.checkpoints += 1

    def claim(self, limit: int) -> Claimed:
        got = super().claim(limit)
        if got:
            self._maybe_checkpoint()
        return got

    def ack(self, handles: list[Any]) -> None:
        super().ack(handles)
        self._maybe_checkpoint()

    def close(self) -> None:
        if os.environ.get("PROTO_DEBUG"):
            print(
                f"{self._queue} {self._owner}: {self.checkpoints} checkpoints "
                f"({self.ck_ns / 1e6:.1f} ms); sends {self.send_ns / 1e6:.0f} ms, > 0.5 ms: "
                f"a checkpoint ran "
                f"{self.slow_ck[0]} ({self.slow_ck[1] / 1e6:.1f} ms), not {self.slow_other[0]} "
                f"({self.slow_other[1] / 1e6:.1f} ms); WAL at most {self.max_frames} frames",
                flush=True,
            )
        super().close()
        os.close(self._fd)


class OursConsumerCheckpoint(Ours):
    throughput_only = True

    def __init__(self, key: str, sync: str, share: float) -> None:
        self.key, self.label, self.sync, self.share = key, key, sync, share

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _ConsumerCheckpointClient(self._path(root), queue, owner, self.sync, self.share)

    def describe(self, root: Path) -> dict[str, str]:
        return {**super().describe(root), "synchronous": self.sync}


def factories() -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    for pct in (0, 25, 50):
        name = f"ours-ckc{pct}" if pct else "ours-ckoff"
        out[name] = lambda n=name, p=pct: OursConsumerCheckpoint(n, "NORMAL", p / 100)
        out[f"{name}-full"] = lambda n=name, p=pct: OursConsumerCheckpoint(
            f"{n}-full", "FULL", p / 100
        )
    return out


def _checkpointer(db: str, at: int) -> None:
    """Another process: a PASSIVE checkpoint whenever the WAL holds ``at`` un-copied
    frames, looked at every 5 ms, until the file ``db.stop`` appears."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the -shm
    fd = os.open(f"{db}-shm", os.O_RDONLY | os.O_CLOEXEC)
    done = took = 0
    print("ready", flush=True)
    while not os.path.exists(f"{db}.stop"):
        if uncopied_frames(fd) >= at:
            t0 = time.monotonic_ns()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            took += time.monotonic_ns() - t0
            done += 1
        time.sleep(0.005)
    print(f"{done} {took}", flush=True)


def _produce(db: str, n: int) -> tuple[float, list[int]]:
    """n sends; total ms, and [count, ns] of sends over 0.5 ms in which the WAL's
    un-copied frames fell (a checkpoint ran in or beside them), then of the others."""
    from orchestrator.mailbox import Mailbox

    slow = [0, 0, 0, 0]
    total = 0
    with Mailbox(db) as mb:
        fd = os.open(f"{db}-shm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for i in range(n):
                before = uncopied_frames(fd)
                t0 = time.monotonic_ns()
                mb.send(PRODUCER, "work", {"i": i})
                took = time.monotonic_ns() - t0
                total += took
                if took > 500_000:
                    at = 0 if uncopied_frames(fd) < before else 2
                    slow[at] += 1
                    slow[at + 1] += took
        finally:
            os.close(fd)
    return total / 1e6, slow


def main(argv: list[str] | None = None) -> int:
    from orchestrator.mailbox import Mailbox, schema

    p = argparse.ArgumentParser(
        prog="bench/queue_checkpoint.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--messages", type=int, default=6000)
    p.add_argument("--checkpointer", nargs=2, metavar=("DB", "FRAMES"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.checkpointer:
        _checkpointer(args.checkpointer[0], int(args.checkpointer[1]))
        return 0
    at = schema.CHECKPOINT_PAGES // 4
    base = Path(tempfile.mkdtemp(prefix="octy-ckpt-"))
    totals: dict[str, list[float]] = {"A": [], "B": [], "C": []}
    print(f"load {os.getloadavg()[0]:.2f} at start", flush=True)
    try:
        for rep in range(args.repeats):
            for mode in "ABC" if rep % 2 == 0 else "CBA":
                db = str(base / f"{mode}{rep}.db")
                with Mailbox(db) as mb:
                    mb.register(PRODUCER)
                    mb.register("work")
                helper = None
                if mode != "A":
                    frames = str(at if mode == "B" else 2**31)
                    helper = subprocess.Popen(
                        [sys.executable, __file__, "--checkpointer", db, frames],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    assert helper.stdout is not None
                    if helper.stdout.readline() != "ready\n":  # its start-up is over
                        raise SystemExit("the checkpointing process did not start")
                total, slow = _produce(db, args.messages)
                ck = ""
                if helper is not None:
                    Path(f"{db}.stop").touch()
                    out, _ = helper.communicate(timeout=60)
                    done, took = (int(x) for x in out.split())
                    ck = f"; the other process: {done} checkpoints ({took / 1e6:.0f} ms)"
                totals[mode].append(total)
                print(
                    f"  {mode} sends {total:.0f} ms; over 0.5 ms: beside a checkpoint "
                    f"{slow[0]} ({slow[1] / 1e6:.0f} ms), others {slow[2]} "
                    f"({slow[3] / 1e6:.0f} ms){ck}",
                    flush=True,
                )
        print(f"load {os.getloadavg()[0]:.2f} at end")
        for mode, what in (
            ("A", "the sender checkpoints (today)"),
            ("B", f"another process checkpoints at {at} frames"),
            ("C", "another process present, no checkpoint of its own"),
        ):
            runs = " ".join(f"{t:.0f}" for t in totals[mode])
            print(
                f"  {mode} {statistics.median(totals[mode]):6.0f} ms median, {what} (runs: {runs})"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
