"""The connection every part of :class:`Mailbox` shares: transactions, clock, errors."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from orchestrator import errors
from orchestrator.mailbox import schema
from orchestrator.mailbox.model import (
    MESSAGE_COLUMNS,
    USER,
    Message,
    message_from_row,
)
from orchestrator.mailbox.wakeup import ChangeFeed, acquire_feed, release_feed

Clock = Callable[[], float]


class MailboxCore:
    """Owns one SQLite connection. Calls are serialised by a lock, so an instance
    may be shared between threads; for parallel work open one per thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        clock: Clock = time.time,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = schema.BUSY_TIMEOUT_MS,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path).absolute()
        self.readonly = readonly
        self._path_text = str(self.path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        before = schema.file_identity(self.path)
        if readonly:
            self._conn: sqlite3.Connection | None = schema.connect_readonly(self.path)
        else:
            self._conn = schema.connect(
                self.path,
                create=create,
                synchronous=synchronous,
                busy_timeout_ms=busy_timeout_ms,
            )
        # The file this connection has open, to notice when another file takes its path
        # (deleted, or moved over): writing on would split the team between two files.
        identity = schema.file_identity(self.path)
        if identity is None or (before is not None and identity != before):
            self._conn.close()
            raise errors.DatabaseReplaced(str(self.path), before or (0, 0), identity)
        self._identity: tuple[int, int] = identity
        self._feed: ChangeFeed | None = acquire_feed(self.path)
        self._rung_at = 0  # conn.total_changes when the bell last rang
        # Recipients whose messages the current write touched (their bells ring
        # after the commit); None: ring the bell for everyone.
        self._topics: set[str] | None = None
        self._silent = False  # the current write ends nobody's wait: no bell (see _quiet)
        # While not None, rings are collected here instead of rung (see holding_bells).
        self._held: list[set[str] | None] | None = None

    # --- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._feed is not None:
                release_feed(self._feed)
                self._feed = None

    @property
    def feed(self) -> ChangeFeed:
        if self._feed is None:
            raise errors.DatabaseError(str(self.path), "this mailbox is closed")
        return self._feed

    def check_file(self) -> None:
        """Raise DatabaseReplaced if the file under :attr:`path` is no longer the one this
        mailbox opened (a stat(); every write checks it, chores may call it between)."""
        try:
            st = os.stat(self._path_text)  # measured 1-4 us; a send costs 50-110 us
        except FileNotFoundError:
            raise errors.DatabaseReplaced(str(self.path), self._identity, None) from None
        if st.st_ino != self._identity[1] or st.st_dev != self._identity[0]:
            raise errors.DatabaseReplaced(str(self.path), self._identity, (st.st_dev, st.st_ino))

    def now(self) -> float:
        """The clock used for every timestamp (injectable for tests)."""
        return self._clock()

    @contextmanager
    def lock_wait(self, ms: int) -> Iterator[None]:
        """Writes in this block wait at most ``ms`` for another connection's write lock
        (busy_timeout), then raise DatabaseStalled with nothing written: for a caller that
        must look at something else between tries (`ask` and a Ctrl-C: cli/ask_commit.py).
        SQLite's busy wait is one C call that neither a signal nor interrupt() ends."""
        with self._lock:
            conn = self._writable()
            conn.execute(f"PRAGMA busy_timeout = {max(0, int(ms))}")
            try:
                yield
            finally:
                if self._conn is not None:
                    self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    # --- transactions -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise errors.DatabaseError(str(self.path), "this mailbox is closed")
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise errors.DatabaseError(
                str(self.path), "this mailbox was opened read-only; open it without readonly"
            )
        return self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short BEGIN IMMEDIATE transaction: the write lock is taken up front, so
        busy_timeout covers contention and no read snapshot can go stale mid-way.

        (SQLite's busy handler sleeps 1, 2, 5... ms between tries. Polling the lock
        every 50-200 us instead was measured: lower throughput with one writer pair
        and half of it with four, as retrying writers crowd out the lock holder.)
        After a commit that changed something, the bell rings (wakeup.py): the
        bells of the recipients the operation passed to :meth:`_touch`, or the
        bell for everyone if it passed none."""
        with self._lock:
            outer, self._topics = self._topics, set()  # this write's own _touch() calls
            outer_silent, self._silent = self._silent, False
            try:
                conn = self._writable()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise schema.translate(self.path, exc) from exc
                try:
                    # Checked under the write lock: nothing commits to a file that left
                    # its path (rm, or mv over it) after this check.
                    self.check_file()
                    yield conn
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error) and not isinstance(
                        exc, sqlite3.IntegrityError
                    ):
                        raise schema.translate(self.path, exc) from exc
                    raise
            finally:
                topics, self._topics = self._topics, outer
                silent, self._silent = self._silent, outer_silent
            self._ring_if_changed(conn, topics, silent)

    @contextmanager
    def _statement(self) -> Iterator[sqlite3.Connection]:
        """Exactly one write statement in autocommit: atomic by itself, and the
        cheapest write (no BEGIN/COMMIT round trips). SQLite takes the write lock
        at the statement's start and retries through busy_timeout."""
        with self._lock:
            outer, self._topics = self._topics, set()
            outer_silent, self._silent = self._silent, False
            conn = self._writable()
            self.check_file()
            try:
                yield conn
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.IntegrityError):
                    raise
                raise schema.translate(self.path, exc) from exc
            finally:
                topics, self._topics = self._topics, outer
                silent, self._silent = self._silent, outer_silent
            self._ring_if_changed(conn, topics, silent)

    def _touch(self, *recipients: str) -> None:
        """The current write changes messages of these recipients (and nobody else's):
        ring only their bells. A write that touches nobody rings the bell for everyone."""
        if self._topics is not None:
            self._topics.update(recipients)

    def _quiet(self) -> None:
        """The current write can end nobody's wait, so it rings no bell (issue 14.4).

        There are two waits: for claimable mail in an inbox, and for a request's answer
        or failure. Registry rows, wait-for edges, an ack, an extended lease and a plain
        claim (pending -> leased) change neither, yet each bell wakes every process
        watching it (an asker in another process checks again and goes back to sleep:
        on two cores, CPU taken from the agents doing the work). A write that does
        something else too (a claim that requeues expired leases) does not call this."""
        self._silent = True

    @contextmanager
    def holding_bells(self, into: list[set[str] | None]) -> Iterator[None]:
        """Collect in ``into`` the bells the writes inside would ring, instead of ringing
        them; the caller rings them later with :meth:`ring_held`. (``AsyncMailbox`` lets
        this process's own waiters run first: see its ``_posted``.)"""
        with self._lock:
            outer, self._held = self._held, into
            try:
                yield
            finally:
                self._held = outer

    def ring_held(self, held: list[set[str] | None]) -> None:
        """Ring what :meth:`holding_bells` collected (each write's bells, as it would have)."""
        if self._feed is not None:
            for topics in held:
                self._feed.ring(topics)

    def _ring_if_changed(
        self, conn: sqlite3.Connection, topics: set[str] | None, silent: bool = False
    ) -> None:
        changes = conn.total_changes
        if changes != self._rung_at:  # something was written: ring the bell
            self._rung_at = changes
            if self._feed is not None and not silent:
                if self._held is not None:
                    self._held.append(topics or None)
                else:
                    self._feed.ring(topics or None)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Autocommit reads (each statement sees the latest commit)."""
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise schema.translate(self.path, exc) from exc

    # --- shared lookups -----------------------------------------------------

    @staticmethod
    def _fetch(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> Message | None:
        row = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where}", params
        ).fetchone()
        return None if row is None else message_from_row(row)

    @classmethod
    def _fetch_by_id(cls, conn: sqlite3.Connection, message_id: str) -> Message:
        message = cls._fetch(conn, "id = ?", (message_id,))
        if message is None:
            raise errors.MessageNotFound(message_id, only_removed=True)
        return message

    @classmethod
    def _fetch_reply(cls, conn: sqlite3.Connection, request_id: str) -> Message | None:
        return cls._fetch(conn, "correlation_id = ? AND kind = 'response'", (request_id,))

    @staticmethod
    def _known_names(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("SELECT name FROM agents ORDER BY name").fetchall()
        return [USER, *(r[0] for r in rows if r[0] != USER)]

    @classmethod
    def _check_recipient(cls, conn: sqlite3.Connection, recipient: str) -> None:
        if recipient == USER:
            return
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (recipient,)).fetchone() is None:
            raise errors.RecipientUnknown(recipient, cls._known_names(conn))

    def wake_all(self) -> None:
        """Nudge every waiter in this process (other processes wake on the commit itself)."""
        self.feed.notify()
