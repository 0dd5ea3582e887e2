"""Issue 14.3 prototypes: what our queue's throughput would be with cheaper sends, a
write gate that hands SQLite's lock over without its busy sleeps, and consumers that let
their batch grow, measured beside the seed as written at equal ``synchronous``.

    python bench/queue_proto.py [--messages N] [--repeats R] [--keys k1,k2,...]

Each prototype is a bench client on a real database of our schema (or a variant of it),
with the real wake-up (``wait_for_messages`` and bells) of ``orchestrator.mailbox``; the
writes are the mailbox's own statements, sent without the Python around them. A program,
not a test: nothing here asserts on time. Figures: docs/benchmarks.md, "Issue 14.3,
tenth session".
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import mmap
import os
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # same reason as bench/queue.py (stdlib queue shadowed)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from bench.queue_backends import PRODUCER, Claimed, Client, Ours, _OursClient  # noqa: E402

# The mailbox is imported where it is used: bench/queue.py lists these keys (through
# queue_backends.backends()) and must not break when a prototype's internals move.

_ID_COLUMN = "id             TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(8)))),"
_CHECKS = (
    "CHECK (json_valid(body))",
    "CHECK (kind IN ('request', 'response', 'notice', 'broadcast'))",
    "CHECK (status IN ('pending', 'leased', 'done', 'dead'))",
    "CHECK (max_attempts >= 1)",
)

_SLOTS, _SLOT = 16, 4096
_U32 = struct.Struct("<I")

_CLAIM = """
UPDATE messages SET status = 'leased', lease_owner = :owner,
    lease_expires = :expires, attempts = attempts + 1, claimed_at = :now
WHERE seq IN (
    SELECT seq FROM messages
    WHERE recipient = :recipient AND status = 'pending' AND kind != 'response'
      AND available_at <= :now
      AND (expires_at IS NULL OR expires_at > :now)
    ORDER BY available_at, seq LIMIT :limit)
RETURNING seq, id, body
"""
_PROBE = """
SELECT EXISTS (SELECT 1 FROM messages
               WHERE recipient = :r AND status = 'pending' AND kind != 'response'
                 AND available_at <= :now)
"""


@dataclass(frozen=True)
class Variant:
    unique_id: bool = True  # the UNIQUE index on messages.id
    checks: bool = True  # the CHECK constraints
    gate: bool = False  # an flock around every write: one writer tries SQLite's lock at a time
    linger_s: float = 0.0  # after a claim of >= 2 (a stream is on), wait this long first
    consumer_normal: bool = False  # claims and acks commit without their own fsync
    checkpoint: int = 0  # wal_autocheckpoint pages (0: the mailbox's 10,000)
    combine: bool = False  # flat combining: the gate holder inserts every posted send
    synchronous: str = "NORMAL"
    page_size: int = 4096
    retry_us: tuple[int, int] = (0, 0)  # busy_timeout 0; on "locked" sleep uniform(a, b) us, retry
    # Lock hand-off (eleventh session): every write rings a "released" file after its
    # commit; a writer refused the lock (busy_timeout 0) sleeps in poll() on an inotify
    # watch of that file (at most handoff_ms), then tries again. "send": only sends wait
    # so (claims and acks keep SQLite's busy sleeps, which let batches grow); "all": every write.
    handoff: str = ""
    ack_with_claim: bool = False  # an ack waits for the next claim and commits with it
    handoff_ms: float = 2.0
    sharded: bool = False  # a database file per inbox: the pairs share no write lock


def ddl(v: Variant) -> str:
    from orchestrator.mailbox import schema

    text = schema.MIGRATIONS[0]
    if _ID_COLUMN not in text:
        raise SystemExit("the messages table changed; update bench/queue_proto.py")
    if not v.unique_id:
        # ids derived from seq need no index of their own: acks go by seq
        text = text.replace(_ID_COLUMN, "id TEXT NOT NULL,")
    if not v.checks:
        for check in _CHECKS:
            text = text.replace(check, "")
    return text


class _ProtoClient:
    def __init__(self, path: Path, queue: str, owner: str, v: Variant) -> None:
        from orchestrator.mailbox import Mailbox
        from orchestrator.mailbox.model import new_id
        from orchestrator.mailbox.sending import _INSERT_IF_KNOWN

        self._new_id, self._insert_sql = new_id, _INSERT_IF_KNOWN
        self._mb = Mailbox(path, synchronous="FULL" if v.synchronous == "FULL" else "NORMAL")
        self._conn = self._mb._connection()
        self._feed = self._mb.feed
        if v.checkpoint:
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {v.checkpoint}")
        if v.consumer_normal and owner != "producer":
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._queue = queue
        self._owner = owner
        self._v = v
        if v.retry_us[1]:
            self._conn.execute("PRAGMA busy_timeout = 0")
        self._released = -1
        self._inotify = -1
        if v.handoff:
            self._released = os.open(f"{path}-released", os.O_WRONLY | os.O_CREAT, 0o600)
            if v.handoff == "all" or (v.handoff == "send" and owner == "producer"):
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                self._inotify = libc.inotify_init1(os.O_NONBLOCK | 0o2000000)
                libc.inotify_add_watch(self._inotify, f"{path}-released".encode(), 0x2)
                self._conn.execute("PRAGMA busy_timeout = 0")
        self.handoff_waits = 0
        self._deferred: list[Any] = []
        self.combined_by_others = 0
        self._sent = 0
        self._gate = os.open(f"{path}-gate", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._last = 0
        self._mm: mmap.mmap | None = None
        if v.combine:
            fd = os.open(f"{path}-combine", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if os.fstat(fd).st_size < _SLOTS * _SLOT:
                os.ftruncate(fd, _SLOTS * _SLOT)
            self._mm = mmap.mmap(fd, _SLOTS * _SLOT)
            os.close(fd)
            self._slot = (int(queue[1:]) if queue[1:].isdigit() else 0) * _SLOT

    def _lock(self) -> None:
        if self._v.gate:
            fcntl.flock(self._gate, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._v.gate:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def send(self, body: dict[str, Any]) -> None:
        now = time.time()
        q = self._queue
        values = (self._new_id(), "notice", PRODUCER, q, None, None, json.dumps(body), "pending")
        values += (0, 5, now, now, None, None, None, None, q, q)
        if self._mm is not None:
            self._sent += 1
            self._combined_send(values)
            return
        self._lock()
        try:
            self._retrying(lambda: self._conn.execute(self._insert_sql, values))
        finally:
            self._unlock()
        self._released_ring()
        self._feed.ring((q,))

    def _released_ring(self) -> None:
        if self._released >= 0:
            os.pwrite(self._released, b"\0", 0)

    def _handed_off(self, step: Any) -> Any:
        import select

        fd = self._inotify
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + 10.0
        while True:
            with contextlib.suppress(BlockingIOError):
                os.read(fd, 4096)  # drain: only releases after this count
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            self.handoff_waits += 1
            poller.poll(self._v.handoff_ms)

    def _retrying(self, step: Any) -> Any:
        if self._inotify >= 0:
            return self._handed_off(step)
        if not self._v.retry_us[1]:
            return step()
        import random

        a, b = self._v.retry_us
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                self.retries = getattr(self, "retries", 0) + 1
            time.sleep(random.uniform(a, b) / 1e6)

    def _combined_send(self, values: tuple[Any, ...]) -> None:
        """Post the row in this process's slot; whoever holds the gate inserts every
        posted row in one transaction and marks them done (one commit for many sends)."""
        mm, off = self._mm, self._slot
        assert mm is not None
        payload = json.dumps(values).encode()
        mm[off + 8 : off + 8 + len(payload)] = payload
        _U32.pack_into(mm, off + 4, len(payload))
        _U32.pack_into(mm, off, 1)
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            if _U32.unpack_from(mm, off)[0] == 2:  # another process committed it
                _U32.pack_into(mm, off, 0)
                self.combined_by_others += 1
                return
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")  # first: rows posted while it waits join in
            try:
                rows, slots, topics = [], [], set()
                for o in range(0, _SLOTS * _SLOT, _SLOT):
                    if _U32.unpack_from(mm, o)[0] == 1:
                        n = _U32.unpack_from(mm, o + 4)[0]
                        row = json.loads(mm[o + 8 : o + 8 + n])
                        rows.append(row)
                        slots.append(o)
                        topics.add(row[3])
                conn.executemany(self._insert_sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for o in slots:
                _U32.pack_into(mm, o, 0 if o == off else 2)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self._feed.ring(topics)

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for b in bodies:
            self.send(b)

    def claim(self, limit: int) -> Claimed:
        if self._v.linger_s and self._last >= 2:
            time.sleep(self._v.linger_s)
        now = time.time()
        conn = self._conn
        if not conn.execute(_PROBE, {"r": self._queue, "now": now}).fetchone()[0]:
            self._last = 0
            self._flush_ack()
            return []
        self._lock()
        try:
            self._retrying(lambda: conn.execute("BEGIN IMMEDIATE"))
            if self._deferred:
                self._ack_now(self._deferred)
                self._deferred = []
            rows = conn.execute(
                _CLAIM,
                {
                    "owner": self._owner,
                    "expires": now + 60.0,
                    "now": now,
                    "recipient": self._queue,
                    "limit": limit,
                },
            ).fetchall()
            conn.execute("COMMIT")
        finally:
            self._unlock()
        self._released_ring()
        self._last = len(rows)
        rows.sort()
        if self._v.unique_id:
            return [(r[1], json.loads(r[2])) for r in rows]
        return [(r[0], json.loads(r[2])) for r in rows]

    def _ack_now(self, handles: list[Any]) -> None:
        where = "id" if self._v.unique_id else "seq"
        self._conn.execute(
            f"UPDATE messages SET status = 'done', done_at = ?, lease_expires = NULL "
            f"WHERE {where} IN (SELECT value FROM json_each(?)) "
            "AND status = 'leased' AND lease_owner = ?",
            (time.time(), json.dumps(handles), self._owner),
        )

    def _flush_ack(self) -> None:
        if self._deferred:
            handles, self._deferred = self._deferred, []
            self._lock()
            try:
                self._retrying(lambda: self._ack_now(handles))
            finally:
                self._unlock()

    def ack(self, handles: list[Any]) -> None:
        if self._v.ack_with_claim:
            self._deferred.extend(handles)
            return
        self._lock()
        try:
            self._retrying(lambda: self._ack_now(handles))
        finally:
            self._unlock()
        self._released_ring()

    def wait(self, timeout_s: float) -> None:
        self._mb.wait_for_messages(self._queue, timeout_s)

    def close(self) -> None:
        self._flush_ack()  # (after the bench's end time: one transaction in a run's hundreds)
        os.close(self._gate)
        if os.environ.get("PROTO_DEBUG") and self._inotify >= 0:
            print(f"{self._queue} {self._owner}: {self.handoff_waits} hand-off waits", flush=True)
        for fd in (self._released, self._inotify):
            if fd >= 0:
                os.close(fd)
        if self._mm is not None:
            if os.environ.get("PROTO_DEBUG") and self._sent:
                print(f"{self._queue}: {self.combined_by_others}/{self._sent} combined", flush=True)
            self._mm.close()
        self._mb.close()


VARIANTS: dict[str, Variant] = {
    "p-raw": Variant(),
    "p-noid": Variant(unique_id=False),
    "p-noid-nochk": Variant(unique_id=False, checks=False),
    "p-gate": Variant(gate=True, linger_s=0.0005),
    "p-noid-gate": Variant(unique_id=False, gate=True),
    "p-noid-gate-linger": Variant(unique_id=False, gate=True, linger_s=0.0005),
    "p-noid-gate-linger2": Variant(unique_id=False, gate=True, linger_s=0.002),
    "p-comb": Variant(combine=True),
    "p-comb-gate": Variant(combine=True, gate=True, linger_s=0.0005),
    "p-noid-comb-gate": Variant(unique_id=False, combine=True, gate=True, linger_s=0.0005),
    "p-noid-comb": Variant(unique_id=False, combine=True),
    "p-cn": Variant(consumer_normal=True),
    "p-ck1000": Variant(checkpoint=1000),
    "p-ck300": Variant(checkpoint=300),
    "p-comb-ck1000": Variant(combine=True, checkpoint=1000),
    "p-comb-cn": Variant(combine=True, consumer_normal=True),
    "p-noid-r50": Variant(unique_id=False, retry_us=(20, 80)),
    "p-noid-r200": Variant(unique_id=False, retry_us=(100, 300)),
    "p-noid-r500": Variant(unique_id=False, retry_us=(200, 800)),
    "p-noid-r1000": Variant(unique_id=False, retry_us=(500, 1500)),
    "p-raw-r200": Variant(retry_us=(100, 300)),
    "p-raw-handoff": Variant(handoff="send"),
    "p-raw-handoff-all": Variant(handoff="all"),
    "p-raw-handoff05": Variant(handoff="send", handoff_ms=0.5),
    "p-raw-rung": Variant(handoff="ring-only"),
    "p-raw-ackclaim": Variant(ack_with_claim=True),  # the rings' cost alone: nobody waits on them
    "p-raw-1k": Variant(page_size=1024),
    "p-noid-1k": Variant(unique_id=False, page_size=1024),
    "p-noid-nochk-1k": Variant(unique_id=False, checks=False, page_size=1024),
}
for _k in ("p-raw", "p-noid", "p-noid-nochk"):
    VARIANTS[_k + "-sharded"] = Variant(**{**VARIANTS[_k].__dict__, "sharded": True})
for _k, _v in list(VARIANTS.items()):
    VARIANTS[_k + "-full"] = Variant(**{**_v.__dict__, "synchronous": "FULL"})


class Proto:
    batches = True
    send_batch = 1
    throughput_only = True

    def __init__(self, key: str) -> None:
        self.key = key
        self.label = key
        self.v = VARIANTS[key]

    def _path(self, root: Path, queue: str = "") -> Path:
        return root / self.key / (f"{queue}.db" if self.v.sharded else "team.db")

    def prepare(self, root: Path, queues: list[str]) -> None:
        for path in {self._path(root, q) for q in queues}:
            self._prepare_file(path, queues)

    def _prepare_file(self, path: Path, queues: list[str]) -> None:
        from orchestrator.mailbox import Mailbox, schema

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA page_size = {self.v.page_size}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(ddl(self.v))
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
        conn.close()
        os.chmod(path, 0o600)
        with Mailbox(path) as mb:
            mb.register(PRODUCER, "bench producer")
            for q in queues:
                mb.register(q, "bench consumer")

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _ProtoClient(self._path(root, queue), queue, owner, self.v)

    def describe(self, root: Path) -> dict[str, str]:
        return {"version": "-", "synchronous": self.v.synchronous, "wait": "-", "batching": "-"}


class _OursCheckpointClient(_OursClient):
    """The real Mailbox, with another wal_autocheckpoint on its connection."""

    def __init__(self, path: Path, queue: str, owner: str, sync: str, pages: int) -> None:
        super().__init__(path, queue, owner, sync)
        self._mb._connection().execute(f"PRAGMA wal_autocheckpoint = {pages}")


class OursCheckpoint(Ours):
    throughput_only = True

    def __init__(self, key: str, sync: str, pages: int) -> None:
        self.key, self.label, self.sync, self.pages = key, key, sync, pages

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _OursCheckpointClient(self._path(root), queue, owner, self.sync, self.pages)


class OursPages(Ours):
    """The real Mailbox on a database made with another page size."""

    throughput_only = True

    def __init__(self, key: str, page_size: int) -> None:
        self.key, self.label, self.page_size = key, key, page_size

    def prepare(self, root: Path, queues: list[str]) -> None:
        path = self._path(root)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA page_size = {self.page_size}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        os.chmod(path, 0o600)
        super().prepare(root, queues)


class OursSharded(Ours):
    """The real Mailbox, one database file per inbox: the pairs share no write lock."""

    throughput_only = True

    def __init__(self, key: str, sync: str) -> None:
        self.key, self.label, self.sync = key, key, sync

    def _file(self, root: Path, queue: str) -> Path:
        return root / self.key / f"{queue}.db"

    def prepare(self, root: Path, queues: list[str]) -> None:
        from orchestrator.mailbox import Mailbox

        for q in queues:
            with Mailbox(self._file(root, q)) as mb:
                mb.register(PRODUCER, "bench producer")
                mb.register(q, "bench consumer")

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _OursClient(self._file(root, queue), queue, owner, self.sync)

    def describe(self, root: Path) -> dict[str, str]:
        return {"version": "-", "synchronous": self.sync, "wait": "-", "batching": "-"}


def _short_busy_handler(conn: sqlite3.Connection, steps_us: tuple[int, ...]) -> Any:
    """Replace SQLite's busy sleeps (1, 2, 5 ... ms) on ``conn`` by ``steps_us`` (0: a
    sched_yield), the last step repeated, for 5 s in all. The ``sqlite3 *`` is read from
    CPython 3.11's connection object (the first field after its header), checked by asking
    it for its file name. Returns the C callback, which must outlive the connection."""
    import ctypes

    lib = ctypes.CDLL("libsqlite3.so.0")
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    total_us = 5_000_000

    def handler(_arg: Any, count: int) -> int:
        done = sum(steps_us[:count]) + max(0, count - len(steps_us)) * steps_us[-1]
        if done > total_us:
            return 0  # SQLITE_BUSY to the caller, as busy_timeout would
        step = steps_us[min(count, len(steps_us) - 1)]
        if step:
            time.sleep(step / 1e6)
        else:
            os.sched_yield()
        return 1

    callback = proto(handler)
    db = ctypes.c_void_p.from_address(id(conn) + 16).value
    lib.sqlite3_db_filename.restype = ctypes.c_char_p
    lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    if not lib.sqlite3_db_filename(db, b"main"):
        raise SystemExit("not a sqlite3 handle: another CPython layout")
    lib.sqlite3_busy_handler.argtypes = [ctypes.c_void_p, proto, ctypes.c_void_p]
    if lib.sqlite3_busy_handler(db, callback, None) != 0:
        raise SystemExit("sqlite3_busy_handler refused")
    return callback


class _OursSpinClient(_OursClient):
    def __init__(self, path: Path, queue: str, owner: str, steps: tuple[int, ...]) -> None:
        super().__init__(path, queue, owner)
        self._busy = _short_busy_handler(self._mb._connection(), steps)


class OursSpin(Ours):
    """The real Mailbox, its connections' busy handler replaced by short sleeps."""

    throughput_only = True

    def __init__(self, key: str, steps: tuple[int, ...]) -> None:
        self.key, self.label, self.steps = key, key, steps

    def _path(self, root: Path) -> Path:
        return root / self.key / "team.db"

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _OursSpinClient(self._path(root), queue, owner, self.steps)


class SeedShardedNormal:
    """The seed as written (NORMAL), one database file per inbox."""

    batches = False
    send_batch = 1
    throughput_only = True

    def __init__(self) -> None:
        from bench.queue_backends import SeedWrittenNormal

        self.key = self.label = "seed-sharded-normal"
        self._seed = SeedWrittenNormal()

    def _root(self, root: Path, queue: str) -> Path:
        return root / queue

    def prepare(self, root: Path, queues: list[str]) -> None:
        for q in queues:
            self._seed.prepare(self._root(root, q), [q])

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return self._seed.open(self._root(root, queue), queue, owner)

    def describe(self, root: Path) -> dict[str, str]:
        return {"version": "-", "synchronous": "NORMAL", "wait": "-", "batching": "-"}


def factories() -> dict[str, Any]:
    out: dict[str, Any] = {k: (lambda k=k: Proto(k)) for k in VARIANTS}
    for size in (1024, 2048):
        out[f"ours-{size // 1024}k"] = lambda s=size: OursPages(f"ours-{s // 1024}k", s)
    for pages in (300, 1000, 3000):
        out[f"ours-ck{pages}"] = lambda p=pages: OursCheckpoint(f"ours-ck{p}", "NORMAL", p)
        out[f"ours-ck{pages}-full"] = lambda p=pages: OursCheckpoint(f"ours-ck{p}-full", "FULL", p)
    for name, steps in {
        "yield": (0, 0, 0, 0, 20, 50, 100, 200, 500, 1000),
        "50us": (50, 50, 50, 100, 100, 200, 500, 1000),
        "20us": (20,),
    }.items():
        out[f"ours-spin{name}"] = lambda n=name, st=steps: OursSpin(f"ours-spin{n}", st)
    out["seed-sharded-normal"] = SeedShardedNormal
    out["ours-sharded"] = lambda: OursSharded("ours-sharded", "NORMAL")
    out["ours-sharded-full"] = lambda: OursSharded("ours-sharded-full", "FULL")
    from bench.queue_checkpoint import factories as checkpoints
    from bench.queue_handoff import factories as handoffs  # it imports queue_backends

    return {**out, **handoffs(), **checkpoints()}


def main(argv: list[str] | None = None) -> int:
    from bench.queue_run import REPO, throughput
    from bench.queue_workers import Target

    p = argparse.ArgumentParser(prog="bench/queue_proto.py", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=6000, help="per throughput run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--keys", default="ours,seed-written-normal,p-noid-gate-linger")
    p.add_argument("--pairs", default="1,4")
    args = p.parse_args(argv)
    keys = args.keys.split(",")
    pair_counts = [int(x) for x in args.pairs.split(",")]
    os.chdir(REPO)
    base = Path(tempfile.mkdtemp(prefix="octy-proto-"))
    print(f"load {os.getloadavg()[0]:.2f} at start", flush=True)
    runs: dict[tuple[str, int], list[float]] = {}
    try:
        for rep in range(args.repeats):
            # A, B, B, A, A, B ...: no key always runs first (after the previous 4-pair run)
            for key in keys if rep % 2 == 0 else keys[::-1]:
                for pairs in pair_counts:
                    root = base / f"{key}-{pairs}-{rep}"
                    batch = 1 if key.startswith(("seed-written", "seed-sharded")) else args.batch
                    got = throughput(
                        Target(key, 0.1, str(root), ""),
                        pairs=pairs,
                        total=args.messages,
                        batch=batch,
                    )
                    if got["received"] != got["messages"] or got["duplicates"]:
                        raise SystemExit(f"{key}: lost or duplicated messages: {got}")
                    runs.setdefault((key, pairs), []).append(float(got["per_s"]))
                    print(
                        f"  {key} {pairs}p {got['per_s']:,.0f} msg/s, "
                        f"{got['mean_claim_batch']:.1f}/claim, cpu {got['cpu_us_per_msg']:.0f} us"
                        f" (prod {got['producer_cpu_us_per_msg']:.0f}), "
                        f"waits {got['slow_send_share']:.0%}",
                        flush=True,
                    )
                    if os.environ.get("PROTO_DEBUG"):
                        print(f"  ^ {key} {pairs}p", flush=True)
                    shutil.rmtree(root, ignore_errors=True)
        print(f"load {os.getloadavg()[0]:.2f} at end")
        for pairs in pair_counts:
            for key in keys:
                full = key.endswith("-full") or key == "seed-written"
                ref = "seed-written" if full else "seed-written-normal"
                med = statistics.median(runs[key, pairs])
                seed = statistics.median(runs[ref, pairs]) if (ref, pairs) in runs else None
                ratio = f"{med / seed:4.2f}x {ref}" if seed else ""
                each = " ".join(f"{r:,.0f}" for r in runs[key, pairs])
                print(f"  {pairs}p {key:24s} {med:8,.0f} msg/s {ratio:28s} (runs: {each})")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
