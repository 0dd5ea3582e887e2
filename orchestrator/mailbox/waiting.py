"""Blocking until something happens: a reply, or a claimable message.

Each wait is a loop of one cheap indexed check and a sleep on the change feed
(woken by any commit to the database, see wakeup.py). The sleep is also cut
short at the next moment the answer can change by the clock alone: a delayed
message becoming available, a lease running out, a TTL passing.
The ``poll_*`` checks are public so the async client runs the same loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from orchestrator import errors
from orchestrator.mailbox.consuming import ConsumeOps
from orchestrator.mailbox.model import STILL_CHECK_S, Message

_FOREVER = float("inf")


_INBOX_SQL = """
SELECT
  EXISTS (SELECT 1 FROM messages
          WHERE recipient = :r AND status = 'pending' AND kind != 'response'
            AND available_at <= :now
            AND (expires_at IS NULL OR expires_at > :now)),
  (SELECT min(available_at) FROM messages
   WHERE recipient = :r AND status = 'pending' AND kind != 'response'
     AND available_at > :now AND typeof(available_at) IN ('real', 'integer')),
  (SELECT min(lease_expires) FROM messages
   WHERE recipient = :r AND status = 'leased'
     AND typeof(lease_expires) IN ('real', 'integer'))
"""
# (The typeof()s: a plain-SQL writer's text in a time column sorts after every number
# in SQLite, so it came back as the "next" time and the wait did arithmetic on text: a
# TypeError that ended every wait on the inbox, an agent's idle wait included. Such a
# row is never claimable; `queue ls` shows it.)


def inbox_answer(state: tuple[bool, float]) -> tuple[bool | None, float]:
    """An inbox check in the shape :meth:`Waiter.until` takes (None: nothing yet)."""
    ready, due_in = state
    return (True if ready else None), due_in


def inbox_state(conn: sqlite3.Connection, recipient: str, now: float) -> tuple[bool, float]:
    """One indexed read: see :meth:`WaitOps.poll_inbox`. Any connection will do."""
    ready, next_available, next_lease = conn.execute(
        _INBOX_SQL, {"r": recipient, "now": now}
    ).fetchone()
    if ready or (next_lease is not None and next_lease <= now):
        return True, 0.0
    due = min(x for x in (next_available, next_lease, now + _FOREVER) if x is not None)
    return False, due - now


class WaitOps(ConsumeOps):
    def poll_reply(self, request_id: str) -> tuple[Message | None, float]:
        """(the reply, or None while there is none; seconds until the clock alone could
        change that). Raises the request's error: its error response as the matching
        RequestFailed, RequestExpired when it went dead or passed its TTL."""
        now = self.now()
        with self._read() as conn:
            reply = self._fetch_reply(conn, request_id)
            request = self._fetch_by_id(conn, request_id) if reply is None else None
            if request is not None and request.status == "dead":
                # Autocommit reads: an error reply and the request's move to the dead
                # letters commit together, but may land between our two reads. Look again
                # before calling it expired (a budget refusal was read as RequestExpired).
                reply = self._fetch_reply(conn, request_id)
        if reply is not None:
            if reply.error is not None:
                raise errors.request_error_from_code(
                    reply.error, request_id, reply.error_detail or ""
                )
            return reply, 0.0
        assert request is not None
        if request.kind != "request":
            raise errors.NotARequest(request_id, request.kind)
        if request.status == "dead":
            raise errors.RequestExpired(
                request_id, f"{request.error}: {request.error_detail or ''}".rstrip(": ")
            )
        if request.status == "pending" and request.expires_at is not None:
            if request.expires_at <= now:
                with self._write() as conn:  # nobody swept yet: settle it now
                    self._expire_ttl(conn, now, request.recipient)
                    status = self._fetch_by_id(conn, request_id).status
                if status == "dead":
                    raise errors.RequestExpired(request_id, "expired: not delivered before its TTL")
                return None, 0.0  # claimed just in time: keep waiting for its reply
            return None, request.expires_at - now
        return None, _FOREVER

    def clear_wait(self, request_id: str) -> None:
        """Drop the wait-for edge of a request whose sender stopped waiting.
        (reply() drops it too, but a reply written by plain SQL does not.)"""
        with self._read() as conn:
            edge = conn.execute("SELECT 1 FROM waits WHERE request_id = ?", (request_id,))
            if edge.fetchone() is None:
                return
        with self._statement() as conn:
            self._quiet()  # an edge ends no wait
            conn.execute("DELETE FROM waits WHERE request_id = ?", (request_id,))

    def waited_requests(self, recipient: str) -> list[str]:
        """The ids of the requests to ``recipient`` that someone waits on now (a live
        wait-for edge), oldest first: what `stop` answers (operations.stop_agent)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT request_id FROM waits WHERE target = ? AND expires_at > ? "
                "AND typeof(expires_at) IN ('real', 'integer') ORDER BY request_id",
                (recipient, self.now()),
            )
            return [str(r[0]) for r in rows]

    def poll_inbox(self, recipient: str) -> tuple[bool, float]:
        """(something is claimable for ``recipient`` now; seconds until the clock alone
        could make something claimable: a delayed message, an expiring lease)."""
        with self._read() as conn:
            return inbox_state(conn, recipient, self.now())

    def wait_for_reply(
        self, request_id: str, timeout_s: float, *, still: Callable[[], bool] | None = None
    ) -> Message:
        """Block until the request is answered; return the response.

        Raises the error a failed request carries (RecipientFailed, ...),
        RequestExpired if the request went dead, RequestTimeout after
        ``timeout_s``. The request's wait-for edge is cleared on the way out.
        ``still`` is asked every STILL_CHECK_S while no reply is in; once it says no
        (and no reply came meanwhile) the wait ends: WaitStopped.
        """
        deadline = time.monotonic() + timeout_s

        def poll() -> tuple[Message | None, float]:
            reply, due_in = self.poll_reply(request_id)
            if reply is None and still is not None:
                if not still():
                    reply, due_in = self.poll_reply(request_id)  # answered just before?
                    if reply is None:
                        raise errors.WaitStopped(request_id)
                due_in = min(due_in, STILL_CHECK_S)
            return reply, due_in

        try:
            if not self.feed.watching_now:  # answered already? then set nothing up
                reply, _ = self.poll_reply(request_id)
                if reply is not None:
                    return reply
            with self.feed.watching() as waiter:
                reply = waiter.until(poll, deadline)
            if reply is None:
                raise errors.RequestTimeout(request_id, timeout_s)
            return reply
        finally:
            if self._conn is not None:
                self.clear_wait(request_id)

    def wait_for_messages(self, recipient: str, timeout_s: float) -> bool:
        """Block until something is claimable for ``recipient`` (True) or ``timeout_s``
        passes (False). Claiming is separate: another consumer may win the race."""
        deadline = time.monotonic() + timeout_s
        if not self.feed.watching_now and self.poll_inbox(recipient)[0]:
            return True  # mail already there: set nothing up
        with self.feed.watching(recipient) as waiter:
            return (
                waiter.until(lambda: inbox_answer(self.poll_inbox(recipient)), deadline) is not None
            )
