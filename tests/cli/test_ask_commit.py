"""`ask` writes its request in short lock waits with Ctrl-C held (cli/ask_commit.py): a
Ctrl-C that comes while another program holds the queue's write lock ends it unwritten.
Real SQLite files, a real lock holder, a real (held) SIGINT."""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import errors
from orchestrator.cli.ask_commit import HELD, NotSent, request_unless_interrupted
from orchestrator.mailbox import Mailbox


@pytest.fixture
def mb(tmp_path: Path) -> Iterator[Mailbox]:
    with Mailbox(tmp_path / "q" / "team.db") as mailbox:
        mailbox.register("bob", "answers")
        yield mailbox


@pytest.fixture
def sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread, as `ask` holds it; nothing left pending after."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.sigtimedwait({signal.SIGINT}, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_a_ctrl_c_held_while_the_lock_is_taken_ends_the_write_unwritten(
    mb: Mailbox, sigint_held: None
) -> None:
    holder = sqlite3.connect(mb.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        # Directed at this thread: pending here, whatever other threads let through.
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        with pytest.raises(NotSent):
            request_unless_interrupted(mb, lambda: mb.request("user", "bob", "hi?", wait_s=5))
        assert signal.SIGINT not in signal.sigpending()  # consumed: ask says what happened
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert mb.list(limit=10) == []
    # The connection waits as long as ever afterwards (its busy timeout is restored).
    assert mb._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_without_a_ctrl_c_the_write_goes_through_once(mb: Mailbox, sigint_held: None) -> None:
    message = request_unless_interrupted(mb, lambda: mb.request("user", "bob", "hi?", wait_s=5))
    assert [m.id for m in mb.list(limit=10)] == [message.id]


def test_a_full_disk_is_not_waited_out(mb: Mailbox) -> None:
    """Only a lock is waited for in slices: another stall is raised at once."""
    calls = []

    def stalled() -> None:
        calls.append(1)
        raise errors.DatabaseStalled(str(mb.path), "database or disk is full")

    with pytest.raises(errors.DatabaseStalled):
        request_unless_interrupted(mb, stalled)  # type: ignore[arg-type]
    assert calls == [1]


def test_a_sigterm_held_while_the_lock_is_taken_ends_the_write_unwritten(mb: Mailbox) -> None:
    """SIGTERM and SIGHUP end `ask` as Ctrl-C does (review I.2), before its write too."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    holder = sqlite3.connect(mb.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        with pytest.raises(NotSent):
            request_unless_interrupted(mb, lambda: mb.request("user", "bob", "hi?", wait_s=5))
        assert not HELD & signal.sigpending()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        signal.sigtimedwait(HELD, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert mb.list(limit=10) == []
