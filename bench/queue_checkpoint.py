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

    python bench/queue_proto.py --keys ours,ours-ckc25,seed-written-normal --repeats 4

A program, not a test. Figures: docs/benchmarks.md, "Issue 14.3, thirteenth session".
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.queue_backends import PRODUCER, Claimed, Client, Ours, _OursClient

_HEADER = struct.Struct("=16xI76xI")  # mxFrame at 16, nBackfill at 96


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

    def send(self, body: dict[str, Any]) -> None:
        before = uncopied_frames(self._fd)
        t0 = time.monotonic_ns()
        self._mb.send(PRODUCER, self._queue, body)
        took = time.monotonic_ns() - t0
        self.send_ns += took
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
                f"({self.slow_other[1] / 1e6:.1f} ms)",
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
