"""The four queues bench/queue.py measures, behind one small client shape.

Each backend opens a client for one named queue (one recipient) in a database
under ``root``. A client can send, claim up to ``n`` messages, ack them, and
wait until something may be claimable. Only our queue has a cross-process
wake-up; the others wait the way their users would: by sleeping a poll
interval (``describe()`` says which, and the bench prints it).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

Claimed = list[tuple[Any, dict[str, Any]]]

PRODUCER = "bench-producer"


class Client(Protocol):
    def send(self, body: dict[str, Any]) -> None: ...
    def send_many(self, bodies: list[dict[str, Any]]) -> None: ...
    def claim(self, limit: int) -> Claimed: ...
    def ack(self, handles: list[Any]) -> None: ...
    def wait(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


class Backend(Protocol):
    key: str
    label: str
    batches: bool
    send_batch: int  # messages per producer call; 1 = one send() per message
    throughput_only: bool  # a variant row: latency and idle CPU would repeat its base

    def prepare(self, root: Path, queues: list[str]) -> None: ...
    def open(self, root: Path, queue: str, owner: str) -> Client: ...
    def describe(self, root: Path) -> dict[str, str]: ...


def _synchronous_name(level: int) -> str:
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# --- ours ------------------------------------------------------------------


class _OursClient:
    def __init__(self, path: Path, queue: str, owner: str, synchronous: str = "NORMAL") -> None:
        from orchestrator.mailbox import Mailbox

        self._mb = Mailbox(path, synchronous="FULL" if synchronous == "FULL" else "NORMAL")
        self._queue = queue
        self._owner = owner

    def send(self, body: dict[str, Any]) -> None:
        self._mb.send(PRODUCER, self._queue, body)

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        self._mb.send_many(PRODUCER, [(self._queue, b) for b in bodies])

    def claim(self, limit: int) -> Claimed:
        got = self._mb.claim(self._queue, owner=self._owner, lease_s=60.0, limit=limit)
        return [(m.id, m.body) for m in got]

    def ack(self, handles: list[Any]) -> None:
        # One transaction for the whole batch: safe, every id is ours under a live lease.
        self._mb.ack(handles, owner=self._owner)

    def wait(self, timeout_s: float) -> None:
        self._mb.wait_for_messages(self._queue, timeout_s)

    def close(self) -> None:
        self._mb.close()


class Ours:
    key = "ours"
    label = "orchestrator.mailbox"
    batches = True
    send_batch = 1
    throughput_only = False

    def _path(self, root: Path) -> Path:
        return root / "ours" / "team.db"

    def prepare(self, root: Path, queues: list[str]) -> None:
        from orchestrator.mailbox import Mailbox

        with Mailbox(self._path(root)) as mb:
            mb.register(PRODUCER, "bench producer")
            for q in queues:
                mb.register(q, "bench consumer")

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _OursClient(self._path(root), queue, owner)

    def describe(self, root: Path) -> dict[str, str]:
        from orchestrator.mailbox import Mailbox

        with Mailbox(self._path(root)) as mb:
            # The live connection's setting, not the documented default (a bench may peek).
            level = mb._connection().execute("PRAGMA synchronous").fetchone()[0]
            try:
                with mb.feed.watching():
                    pushed = mb.feed.pushed
            except AttributeError:  # the wake-up internals moved: say where to look
                how = "see orchestrator/mailbox/wakeup.py"
            else:
                how = "inotify on its bell and WAL files" if pushed else "its polling fallback"
        sends = (
            "one send() per message"
            if self.send_batch == 1
            else (f"send_many() of {self.send_batch} per call (producer batching)")
        )
        return {
            "version": _version("octy-orchestrate"),
            "synchronous": _synchronous_name(level),
            "wait": f"wait_for_messages() blocks; woken by {how}",
            "batching": f"{sends}; claim(limit=N) and ack([...]) in one transaction each",
        }


class OursFull(Ours):
    """Ours at synchronous=FULL (an fsync per commit), to compare with the seed at FULL."""

    key = "ours-full"
    label = "orchestrator.mailbox, synchronous=FULL"

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _OursClient(self._path(root), queue, owner, "FULL")

    def describe(self, root: Path) -> dict[str, str]:
        return {**super().describe(root), "synchronous": "FULL"}


class OursBatchedSends(Ours):
    """Not a like-for-like row: the producer batches too (the peers' APIs cannot)."""

    key = "ours-send-many"
    label = "orchestrator.mailbox, send_many x64"
    send_batch = 64
    throughput_only = True


# --- the seed design: a plain table polled every 100 ms ----------------------

_SEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_inbox ON messages (recipient, status, id);
"""


def _seed_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class _SeedClient:
    def __init__(self, path: Path, queue: str, poll_s: float) -> None:
        self._conn = _seed_connect(path)
        self._queue = queue
        self._poll_s = poll_s

    def send(self, body: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO messages (recipient, body, created_at) VALUES (?, ?, ?)",
            (self._queue, json.dumps(body), time.time()),
        )

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def claim(self, limit: int) -> Claimed:
        # The seed claims one row per statement; it never batched.
        row = self._conn.execute(
            "UPDATE messages SET status = 'leased' WHERE id = ("
            " SELECT id FROM messages WHERE recipient = ? AND status = 'pending'"
            " ORDER BY id LIMIT 1) RETURNING id, body",
            (self._queue,),
        ).fetchone()
        return [] if row is None else [(row[0], json.loads(row[1]))]

    def ack(self, handles: list[Any]) -> None:
        for h in handles:
            self._conn.execute("UPDATE messages SET status = 'done' WHERE id = ?", (h,))

    def wait(self, timeout_s: float) -> None:
        time.sleep(min(self._poll_s, timeout_s))

    def close(self) -> None:
        self._conn.close()


class Seed:
    key = "seed"
    label = "seed design (table polled 100 ms)"
    batches = False
    send_batch = 1
    throughput_only = False

    def __init__(self, poll_s: float = 0.1) -> None:
        self.poll_s = poll_s

    def _path(self, root: Path) -> Path:
        return root / "seed" / "seed.db"

    def prepare(self, root: Path, queues: list[str]) -> None:
        self._path(root).parent.mkdir(parents=True, exist_ok=True)
        conn = _seed_connect(self._path(root))
        conn.executescript(_SEED_SCHEMA)
        conn.close()

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _SeedClient(self._path(root), queue, self.poll_s)

    def describe(self, root: Path) -> dict[str, str]:
        return {
            "version": "-",
            "synchronous": "NORMAL",
            "wait": f"sleep {self.poll_s * 1000:g} ms between empty polls",
            "batching": "none (one row per claim, one commit per ack)",
        }


class _SeedBatchedClient(_SeedClient):
    """The seed's table, taken and acked in batches: a reference for bench/queue_floor.py."""

    def claim(self, limit: int) -> Claimed:
        rows = self._conn.execute(
            "UPDATE messages SET status = 'leased' WHERE id IN ("
            " SELECT id FROM messages WHERE recipient = ? AND status = 'pending'"
            " ORDER BY id LIMIT ?) RETURNING id, body",
            (self._queue, limit),
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in sorted(rows)]

    def ack(self, handles: list[Any]) -> None:
        marks = ", ".join("?" * len(handles))
        self._conn.execute(f"UPDATE messages SET status = 'done' WHERE id IN ({marks})", handles)


class SeedBatched(Seed):
    """Not a peer: the seed's one-table schema with our batching and a 1 ms poll, i.e.
    what a queue with none of ours' bookkeeping (leases, attempts, TTL, ids, replies)
    reaches here. bench/queue_floor.py runs it beside the seed and ours."""

    key = "seed-batched"
    label = "seed table, batched claims/acks (reference, not a peer)"
    batches = True
    throughput_only = True

    def __init__(self, poll_s: float = 0.001) -> None:
        super().__init__(poll_s)

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _SeedBatchedClient(self._path(root), queue, self.poll_s)

    def describe(self, root: Path) -> dict[str, str]:
        return {
            **super().describe(root),
            "wait": f"sleep {self.poll_s * 1000:g} ms between empty polls",
            "batching": "claim(limit=N) in one UPDATE ... RETURNING, ack([...]) in one UPDATE",
        }


# --- the seed design as its document writes it -------------------------------

# Issue 14 describes it: ten columns and two indexes, INSERT to send, a transaction
# of SELECT ... LIMIT 1 then UPDATE to claim, a 100 ms poll, SQLite's default
# synchronous (FULL). Its deferred transaction fails with "database is locked"
# as soon as a producer writes concurrently (a read transaction cannot upgrade
# to a write while another connection wrote); the one-line fix a user would
# make, BEGIN IMMEDIATE, is applied: without it this peer does not run at all.
_SEED_WRITTEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL DEFAULT 'notice',
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_inbox ON messages (recipient, status, id);
CREATE INDEX IF NOT EXISTS messages_leases ON messages (status, lease_expires);
"""


class _SeedWrittenClient:
    def __init__(self, path: Path, queue: str, poll_s: float, synchronous: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._queue = queue
        self._poll_s = poll_s
        self._owner = f"{queue}-{id(self)}"

    def send(self, body: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO messages (sender, recipient, body, created_at) VALUES (?, ?, ?, ?)",
            (PRODUCER, self._queue, json.dumps(body), time.time()),
        )

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def claim(self, limit: int) -> Claimed:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # the one-line fix (the document says BEGIN)
        try:
            row = conn.execute(
                "SELECT id, body FROM messages WHERE recipient = ? AND status = 'pending'"
                " ORDER BY id LIMIT 1",
                (self._queue,),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE messages SET status = 'leased', lease_owner = ?,"
                    " lease_expires = ?, attempts = attempts + 1 WHERE id = ?",
                    (self._owner, time.time() + 60.0, row[0]),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [] if row is None else [(row[0], json.loads(row[1]))]

    def ack(self, handles: list[Any]) -> None:
        for h in handles:
            self._conn.execute("UPDATE messages SET status = 'done' WHERE id = ?", (h,))

    def wait(self, timeout_s: float) -> None:
        time.sleep(min(self._poll_s, timeout_s))

    def close(self) -> None:
        self._conn.close()


class SeedWritten:
    key = "seed-written"
    label = "seed design as written (BEGIN IMMEDIATE fix), FULL"
    batches = False
    send_batch = 1
    throughput_only = False
    synchronous = "FULL"  # SQLite's default: the document sets none

    def __init__(self, poll_s: float = 0.1) -> None:
        self.poll_s = poll_s

    def _path(self, root: Path) -> Path:
        return root / self.key / "seed.db"

    def prepare(self, root: Path, queues: list[str]) -> None:
        self._path(root).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path(root), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SEED_WRITTEN_SCHEMA)
        conn.close()

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _SeedWrittenClient(self._path(root), queue, self.poll_s, self.synchronous)

    def describe(self, root: Path) -> dict[str, str]:
        return {
            "version": "-",
            "synchronous": self.synchronous,
            "wait": f"sleep {self.poll_s * 1000:g} ms between empty polls",
            "batching": "none: BEGIN IMMEDIATE; SELECT ... LIMIT 1; UPDATE; COMMIT per message",
        }


class SeedWrittenNormal(SeedWritten):
    key = "seed-written-normal"
    label = "seed design as written (BEGIN IMMEDIATE fix), NORMAL"
    synchronous = "NORMAL"


# --- litequeue -------------------------------------------------------------


class _LiteClient:
    def __init__(self, path: Path, queue: str, poll_s: float) -> None:
        from litequeue import LiteQueue

        # kwargs go to sqlite3.connect: wait on the write lock instead of failing at once.
        self._q = LiteQueue(str(path), queue_name=queue, timeout=30.0)
        self._poll_s = poll_s

    def send(self, body: dict[str, Any]) -> None:
        self._q.put(json.dumps(body))

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def claim(self, limit: int) -> Claimed:
        m = self._q.pop()  # litequeue pops one message per call
        return [] if m is None else [(m.message_id, json.loads(m.data))]

    def ack(self, handles: list[Any]) -> None:
        for h in handles:
            self._q.done(h)

    def wait(self, timeout_s: float) -> None:
        time.sleep(min(self._poll_s, timeout_s))

    def close(self) -> None:
        self._q.close()


class LiteQueueBackend:
    key = "litequeue"
    label = f"litequeue {_version('litequeue')}"
    batches = False
    send_batch = 1
    throughput_only = False

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s

    def _path(self, root: Path) -> Path:
        return root / "litequeue" / "lq.db"

    def prepare(self, root: Path, queues: list[str]) -> None:
        self._path(root).parent.mkdir(parents=True, exist_ok=True)
        for q in queues:
            _LiteClient(self._path(root), q, self.poll_s).close()

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _LiteClient(self._path(root), queue, self.poll_s)

    def describe(self, root: Path) -> dict[str, str]:
        client = _LiteClient(self._path(root), "describe", self.poll_s)
        level = client._q.conn.execute("PRAGMA synchronous").fetchone()[0]
        client.close()
        return {
            "version": _version("litequeue"),
            "synchronous": _synchronous_name(level),
            "wait": f"no wake-up; pop() then sleep {self.poll_s * 1000:g} ms when empty",
            "batching": "none (pop() takes one; done() commits one)",
        }


# --- persist-queue ----------------------------------------------------------


class _PersistClient:
    def __init__(self, path: Path, queue: str, poll_s: float) -> None:
        import persistqueue.serializers.json as pq_json
        from persistqueue import SQLiteAckQueue

        # auto_resume=False: resuming would flip another process's unacked rows back to ready.
        self._q = SQLiteAckQueue(
            str(path), name=queue, auto_resume=False, serializer=pq_json, timeout=30.0
        )
        self._poll_s = poll_s

    def send(self, body: dict[str, Any]) -> None:
        self._q.put(body)

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def claim(self, limit: int) -> Claimed:
        from persistqueue import Empty

        try:
            item = self._q.get(block=False, raw=True)
        except Empty:
            return []
        return [(item["pqid"], item["data"])]

    def ack(self, handles: list[Any]) -> None:
        for h in handles:
            self._q.ack(id=h)

    def wait(self, timeout_s: float) -> None:
        time.sleep(min(self._poll_s, timeout_s))

    def close(self) -> None:
        self._q.close()


class PersistQueueBackend:
    key = "persistqueue"
    label = f"persist-queue {_version('persist-queue')} SQLiteAckQueue"
    batches = False
    send_batch = 1
    throughput_only = False

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s

    def _path(self, root: Path) -> Path:
        return root / "persistqueue"

    def prepare(self, root: Path, queues: list[str]) -> None:
        for q in queues:
            _PersistClient(self._path(root), q, self.poll_s).close()

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _PersistClient(self._path(root), queue, self.poll_s)

    def describe(self, root: Path) -> dict[str, str]:
        client = _PersistClient(self._path(root), "describe", self.poll_s)
        level = client._q._putter.execute("PRAGMA synchronous").fetchone()[0]
        client.close()
        return {
            "version": _version("persist-queue"),
            "synchronous": _synchronous_name(level) + " (library default)",
            "wait": (
                "get(block=True) waits on an in-process threading.Event that another "
                "process never sets (10 s tick), so: get(block=False) then sleep "
                f"{self.poll_s * 1000:g} ms when empty"
            ),
            "batching": "none (get() takes one; ack() commits one)",
        }


def backends(peer_poll_s: float) -> dict[str, Callable[[], Backend]]:
    """Factories by key; a factory, so a spawned worker builds its own."""
    from bench.queue_nats_backends import NatsBackend, NatsClusterBackend  # it imports us
    from bench.queue_proto import factories as prototypes  # it imports us

    return {
        **prototypes(),
        "ours": Ours,
        "ours-send-many": OursBatchedSends,
        "ours-full": OursFull,
        "seed-written": SeedWritten,
        "seed-written-normal": SeedWrittenNormal,
        "seed": Seed,
        "seed-batched": SeedBatched,
        "litequeue": lambda: LiteQueueBackend(peer_poll_s),
        "persistqueue": lambda: PersistQueueBackend(peer_poll_s),
        "nats": NatsBackend,
        "nats-cluster": NatsClusterBackend,
    }
