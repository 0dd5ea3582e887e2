"""Opening the database file: permissions, pragmas, schema version and migrations.

The tables are documented for other languages in queue/README.md; keep that
in step with :data:`MIGRATIONS`. A migration is only ever appended, never
edited: ``PRAGMA user_version`` records how many have run.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from orchestrator import errors, safefs

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a writer waits for another process's write transaction to finish."""

OPEN_SLICE_MS: Final = 100
"""One lock wait while opening, between Python's looks at signals (Ctrl-C)."""

CHECKPOINT_PAGES: Final = 10_000
"""WAL pages before the committing connection checkpoints (SQLite's default: 1000).

With synchronous=NORMAL a checkpoint is where the fsyncs happen, and it runs
inside one unlucky commit. A message costs ~9 WAL pages (send, claim, ack), so
at 1000 pages one delivery in ~110 waited for a checkpoint: measured p99
send->claim 2.5-4.2 ms, 1.5-2.0 ms at 10,000, throughput the same or better.
The WAL grows to ~40 MB between checkpoints; JOURNAL_LIMIT_BYTES trims it after."""
CHECKPOINT_PAGES_FULL: Final = 1_000
"""The same with synchronous=FULL (SQLite's default), where every commit fsyncs the WAL.

An fdatasync of a file that grows also commits the file system's journal (the new size
and blocks); once the WAL restarts after a checkpoint, commits overwrite blocks it
already has. Measured on a fresh database, one sender: 210 us per append+fdatasync
against 88-152 us per overwrite; bench/queue_proto.py, at FULL: 2,818 -> 3,627 msg/s
with one pair and 2,518 -> 3,026 with four (6000 messages), +6-17 % over 20,000
(docs/benchmarks.md, "Issue 14.3, tenth session"). With NORMAL nothing is fsynced
per commit and the longer interval keeps checkpoints out of the p99 (above)."""
JOURNAL_LIMIT_BYTES: Final = 64 * 1024 * 1024

# Timestamps are REAL unix seconds. `now()` in SQL, for plain-SQL writers:
_NOW: Final = "((julianday('now') - 2440587.5) * 86400.0)"

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: messages, agents, wait-for edges
    f"""
    CREATE TABLE messages (
        seq            INTEGER PRIMARY KEY,
        id             TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(8)))),
        kind           TEXT NOT NULL DEFAULT 'notice'
                       CHECK (kind IN ('request', 'response', 'notice', 'broadcast')),
        sender         TEXT NOT NULL,
        recipient      TEXT NOT NULL,
        correlation_id TEXT,
        cause_id       TEXT,
        body           TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(body)),
        status         TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'leased', 'done', 'dead')),
        attempts       INTEGER NOT NULL DEFAULT 0,
        max_attempts   INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
        lease_owner    TEXT,
        lease_expires  REAL,
        available_at   REAL NOT NULL DEFAULT {_NOW},
        created_at     REAL NOT NULL DEFAULT {_NOW},
        expires_at     REAL,
        claimed_at     REAL,
        done_at        REAL,
        error          TEXT,
        error_detail   TEXT
    );
    -- claim: the oldest available pending message for one recipient
    CREATE INDEX messages_claim ON messages (recipient, available_at, seq)
        WHERE status = 'pending' AND kind != 'response';
    -- lease expiry (sweep, and claim's self-healing of crashed consumers)
    CREATE INDEX messages_leased ON messages (recipient, lease_expires) WHERE status = 'leased';
    -- TTL expiry of undelivered messages
    CREATE INDEX messages_ttl ON messages (expires_at)
        WHERE status = 'pending' AND expires_at IS NOT NULL;
    CREATE INDEX messages_done ON messages (done_at) WHERE status = 'done';
    CREATE INDEX messages_dead ON messages (seq) WHERE status = 'dead';
    CREATE INDEX messages_cause ON messages (cause_id) WHERE cause_id IS NOT NULL;
    -- exactly one response per request
    CREATE UNIQUE INDEX messages_one_reply ON messages (correlation_id)
        WHERE kind = 'response';

    CREATE TABLE agents (
        name          TEXT PRIMARY KEY,
        description   TEXT NOT NULL DEFAULT '',
        pid           INTEGER,
        state         TEXT NOT NULL DEFAULT 'registered',
        heartbeat_at  REAL,
        registered_at REAL NOT NULL DEFAULT {_NOW},
        meta          TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(meta))
    );

    -- who is blocked waiting for whose reply (deadlock detection)
    CREATE TABLE waits (
        request_id TEXT PRIMARY KEY,
        waiter     TEXT NOT NULL,
        target     TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX waits_waiter ON waits (waiter, expires_at);
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def _fail(path: Path, exc: BaseException) -> errors.DatabaseError:
    """Turn a sqlite3/OS error met while opening into a DatabaseError that says what to do."""
    text = str(exc)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        reason = (
            f"not a usable SQLite database ({text}); move the file aside "
            "(or delete it to start an empty queue) or pass another --db path"
        )
    elif "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        reason = (
            f"the database is read-only ({text}); make the file and its folder writable "
            "by this user (the -wal and -shm files live next to it) or pass another --db path"
        )
    elif "unable to open" in low:
        reason = (
            f"cannot open the database ({text}); check the folder exists and is writable "
            "(SQLite creates -wal and -shm files next to it)"
        )
    elif "locked" in low or "busy" in low:
        return errors.DatabaseStalled(
            str(path),
            f"{text}: another connection kept the write lock past this one's busy timeout; "
            "a program holding a transaction open (an sqlite3 shell after BEGIN, a stopped "
            "process) blocks every writer until it commits or exits (`fuser` on the file "
            "finds it)",
        )
    elif _code(exc) == sqlite3.SQLITE_FULL or "disk is full" in low or "no space left" in low:
        return errors.DatabaseStalled(
            str(path),
            f"{text}: the file system holding it has no room left (`df` on its folder); "
            "nothing was written: free space there and try again (a running team waits "
            "and goes on by itself)",
        )
    elif "i/o error" in low:
        reason = (
            f"{text}: SQLite could not read or write it; check that it is the team's "
            "database file, on a disk that works (`dmesg` tells of failing disks)"
        )
    else:
        reason = text
    return errors.DatabaseError(str(path), reason)


def _code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (SQLITE_FULL...), when it carries one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def translate(path: Path, exc: sqlite3.Error) -> errors.DatabaseError:
    """Errors raised by a query on an already open database (public for the store)."""
    return _fail(path, exc)


def _create_file(path: Path) -> None:
    """Create the parent folder 0700 and the file 0600 before SQLite touches them.

    SQLite gives the -wal and -shm files the permissions of the main file, so
    the whole set stays private. O_EXCL never follows a link at the path.
    """
    safefs.private_folder(path.parent, "queue folder")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    os.close(fd)


SIDE_FILES: Final = ("-wal", "-shm", "-journal")
"""The files SQLite opens by name next to the database."""


def check_files(path: Path) -> None:
    """Refuse a queue whose folder others can write, or whose database, -wal, -shm or
    -journal is a symbolic link: SQLite would follow it (and write through it)."""
    safefs.check_folder(path.parent, "queue folder")
    safefs.check_not_link(path, "queue database")
    for suffix in SIDE_FILES:
        safefs.check_not_link(path.with_name(path.name + suffix), "queue database's file")


def file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file now at ``path``; None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def connect(
    path: Path, *, create: bool, synchronous: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open, check and migrate the database; raise DatabaseError with a fix if unusable.
    ``busy_timeout_ms`` is how long this connection's writes wait for another's write
    lock afterwards (0: fail at once with "database is locked"); opening itself always
    waits up to BUSY_TIMEOUT_MS."""
    if not os.path.lexists(path):
        if not create:
            raise errors.DatabaseMissing(
                str(path), "no queue database here; run `octy-orchestrate up` or pass --db"
            )
        try:
            _create_file(path)
        except OSError as exc:
            raise _fail(path, exc) from exc
    elif path.is_dir():
        raise errors.DatabaseError(str(path), "is a directory; pass the path of a .db file")
    check_files(path)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (short write
        # transactions that take the write lock up front, so busy_timeout applies).
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as exc:
        raise _fail(path, exc) from exc
    try:
        # Opening takes the write lock (_migrate): waited for in short slices, up to
        # BUSY_TIMEOUT_MS in all, so that a Ctrl-C ends a verb that waits for a lock
        # another program holds (SQLite's own wait is one C call no signal ends).
        conn.execute(f"PRAGMA busy_timeout = {OPEN_SLICE_MS}")
        _retry_while_locked(lambda: _set_up(conn, path, synchronous))
        conn.execute(f"PRAGMA busy_timeout = {max(0, int(busy_timeout_ms))}")
    except errors.DatabaseError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise _fail(path, exc) from exc
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open an existing queue for reading only: no write lock taken, no migration, no
    file created or chmod-ed, so it answers while another process writes and works on a
    read-only mount. A schema this version cannot read is a DatabaseError saying why."""
    if not os.path.lexists(path):
        raise errors.DatabaseMissing(
            str(path), "no queue database here; run `octy-orchestrate up` or pass --db"
        )
    if path.is_dir():
        raise errors.DatabaseError(str(path), "is a directory; pass the path of a .db file")
    check_files(path)
    # A WAL database needs its -shm to be read; where the folder is read-only (a read-only
    # mount, a copy in a 0555 folder) and none exists, no writer can exist either, and
    # SQLite may read the file as immutable.
    uris = [f"{path.as_uri()}?mode=ro"]
    if not os.access(path.parent, os.W_OK):
        uris.append(f"{path.as_uri()}?mode=ro&immutable=1")
    last: sqlite3.Error | None = None
    for uri in uris:
        conn = sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = 1")
            _check_readable_schema(conn, path)
            return conn
        except errors.DatabaseError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            last = exc
    assert last is not None
    raise _fail(path, last) from last


def _check_readable_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise errors.DatabaseError(
            str(path),
            f"schema version {version} is newer than this octy-orchestrate understands "
            f"({SCHEMA_VERSION}); upgrade octy-orchestrate",
        )
    if version < SCHEMA_VERSION:
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        if version == 0 and tables:
            names = ", ".join(t[0] for t in tables)
            raise errors.DatabaseError(
                str(path),
                f"this SQLite file belongs to something else (tables: {names}); "
                "pass another --db path",
            )
        raise errors.DatabaseError(
            str(path),
            f"the queue's schema is at version {version}, this reader needs "
            f"{SCHEMA_VERSION}; a writing command (`octy-orchestrate up`, `register`) "
            "upgrades it",
        )


def _set_up(conn: sqlite3.Connection, path: Path, synchronous: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise errors.DatabaseError(
            str(path), f"cannot switch to WAL mode (got {mode!r}); is the folder writable?"
        )
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    pages = CHECKPOINT_PAGES_FULL if synchronous.upper() == "FULL" else CHECKPOINT_PAGES
    conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_LIMIT_BYTES}")
    _migrate(conn, path)


def _retry_while_locked(step: Callable[[], None]) -> None:
    """Run ``step``, retrying while SQLite says "database is locked".

    Opening is the one place where SQLite may answer SQLITE_BUSY at once,
    without its busy handler: processes racing to create the file each hold a
    shared lock and want to write the header (switching to WAL), and SQLite
    refuses one of them rather than deadlock. Seen in the demo, where the
    supervisor and the CLI open a new queue together."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def open_peek_connection(path: Path) -> sqlite3.Connection:
    """A read-only connection that never waits (busy_timeout 0), for quick checks run
    on an event loop thread. Open it after :func:`connect` has set the file up."""
    conn = sqlite3.connect(
        f"{path.as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=0,
    )
    conn.execute("PRAGMA busy_timeout = 0")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema forward; prove we can write (a read-only file fails here, not later)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise errors.DatabaseError(
                str(path),
                f"schema version {version} is newer than this octy-orchestrate understands "
                f"({SCHEMA_VERSION}); upgrade octy-orchestrate",
            )
        if version == 0:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            if tables:
                names = ", ".join(t[0] for t in tables)
                raise errors.DatabaseError(
                    str(path),
                    f"this SQLite file belongs to something else (tables: {names}); "
                    "pass another --db path",
                )
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                conn.execute(statement)
        # Setting the version is a real page write even when unchanged: a
        # read-only file fails here (SQLITE_READONLY) at open, not at the first
        # send. With nothing to migrate we roll back, so opening writes nothing
        # (and wakes no waiter).
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT" if version < SCHEMA_VERSION else "ROLLBACK")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script (executescript would COMMIT our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
