"""`ask` queues its request with Ctrl-C held, so that an interrupt never lands between the
request's commit and the wait that says where it is (ask_verb._ask). Held through
SQLite's wait for another writer's lock, though, Ctrl-C did nothing for up to the busy
timeout (10 s): the wait is one C call that no signal ends.

So the request is written in short lock waits, with a look at the held signal between
them: a Ctrl-C that arrives before the request is written ends `ask` with nothing sent.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable

from orchestrator import errors
from orchestrator.mailbox import Mailbox, MailboxBackend, Message
from orchestrator.mailbox.schema import BUSY_TIMEOUT_MS

# What ends `ask` as Ctrl-C does: SIGTERM (a `kill`, a service manager) and SIGHUP (its
# terminal closed) once ran no `finally`, so a `--as NAME` ask's wait-for edge outlived it
# for its whole --timeout (review I.2). Each is held, as SIGINT is, until the request is
# known, then raised as KeyboardInterrupt (ask_verb._ask).
HELD: frozenset[signal.Signals] = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

# One lock wait between looks at Ctrl-C: what a Ctrl-C may take to end `ask` (SQLite's busy
# handler sleeps 1, 2, 5… up to 100 ms between its own tries, so this costs no extra wake-up).
SLICE_MS = 100


class NotSent(Exception):
    """Ctrl-C came while the request waited for the queue's write lock: nothing written."""


def request_unless_interrupted(mb: MailboxBackend, write: Callable[[], Message]) -> Message:
    """``write()`` with HELD blocked in this thread: its Message once committed, or
    NotSent if one of them became pending while it waited for another connection's write
    lock (consumed here: the caller says what happened). Past the queue's usual busy
    timeout in all, DatabaseStalled as before. A NATS queue is written as it always is."""
    if not isinstance(mb, Mailbox):
        return write()
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with mb.lock_wait(SLICE_MS):
                return write()
        except errors.DatabaseStalled as exc:
            if not _lock_busy(exc):
                raise  # a full disk: no wait ends that
            pending = HELD & signal.sigpending()
            if pending:
                signal.sigtimedwait(pending, 0)
                raise NotSent from None
            if time.monotonic() >= deadline:
                raise


def _lock_busy(exc: errors.DatabaseStalled) -> bool:
    cause = exc.__cause__
    return isinstance(cause, sqlite3.Error) and (
        getattr(cause, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    )
