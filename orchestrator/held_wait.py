"""Waiting for a reply only while this machine's supervisor lives (the CLI's operator
commands, and `ask` to one of its agents). Apart from lockfile.py, which the queue
itself imports: this needs the queue's types."""

from __future__ import annotations

from pathlib import Path

from orchestrator import errors
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import MailboxBackend, Message

SUPERVISOR_SILENT_AFTER_S = 20.0
"""A running supervisor writes its heartbeat every 5 s (supervision/chores.py); silent
this long while it holds its lock, it is stopped (SIGSTOP, a debugger) or stuck."""


def supervisor_silence(heartbeat_at: float | None, now: float) -> float | None:
    """Seconds since the supervisor's last heartbeat when that is too long, else None."""
    if heartbeat_at is None or now - heartbeat_at <= SUPERVISOR_SILENT_AFTER_S:
        return None
    return now - heartbeat_at


def reply_while_held(
    mailbox: MailboxBackend, request_id: str, *, db_path: Path, pid: int, timeout_s: float
) -> Message | None:
    """The reply to ``request_id``, waited for while the supervisor ``pid`` holds the team's
    lock; None as soon as it does not (killed, stopped) and no reply came: the lock is this
    machine's truth about it (the kernel drops it with the process), looked at about once
    a second by the one wait (which keeps the request's wait-for edge while it waits).
    RequestTimeout after ``timeout_s``."""
    try:
        return mailbox.wait_for_reply(
            request_id, timeout_s, still=lambda: holder_pid(db_path) == pid
        )
    except errors.WaitStopped:
        return None
