"""Putting messages in: send, request (with deadlock refusal), broadcast, reply."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

from orchestrator import errors
from orchestrator.mailbox import schema
from orchestrator.mailbox.core import MailboxCore
from orchestrator.mailbox.model import (
    DEFAULT_MAX_ATTEMPTS,
    SUPERVISOR,
    USER,
    Message,
    check_id,
    encode_body,
    make_message,
    new_id,
)

SendKind = Literal["notice", "request", "broadcast"]

# The names reachable from the recipient over live wait-for edges; the sender among
# them means the recipient is (transitively) blocked on the sender already. UNION
# (not UNION ALL) visits each name once: linear in the edges whatever a foreign writer
# left, where walking every path took 13 s under the write lock with 10 names (review
# I). `user` waits on nobody in particular: any terminal answers as the human, so an
# `ask` from the CLI blocks no agent (its edge says only that someone waits: `stop`).
_LIVE_EDGE = (
    f"w.expires_at > :now AND typeof(w.expires_at) IN ('real', 'integer') AND w.waiter != '{USER}'"
)
_CYCLE_SQL = f"""
WITH RECURSIVE reach(name) AS (
    SELECT :recipient
    UNION
    SELECT w.target FROM reach JOIN waits AS w ON w.waiter = reach.name
    WHERE {_LIVE_EDGE}
)
SELECT 1 FROM reach WHERE name = :sender LIMIT 1
"""
# Only once a cycle is found: the live edges, for the path the refusal prints.
_EDGES_SQL = f"SELECT DISTINCT w.waiter, w.target FROM waits AS w WHERE {_LIVE_EDGE}"


_COLUMNS = (
    "id, kind, sender, recipient, correlation_id, cause_id, body, status, attempts, "
    "max_attempts, available_at, created_at, expires_at, done_at, error, error_detail"
)
_INSERT = f"INSERT INTO messages ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
# The same insert, made only if the recipient is `user` or registered: one
# autocommit statement is atomic on its own, so a send needs no BEGIN/COMMIT.
_INSERT_IF_KNOWN = (
    f"INSERT INTO messages ({_COLUMNS}) SELECT {', '.join('?' * 16)} "
    "WHERE ? = 'user' OR EXISTS (SELECT 1 FROM agents WHERE name = ?)"
)


class SendOps(MailboxCore):
    def _try_insert(
        self,
        conn: sqlite3.Connection,
        *,
        kind: str,
        sender: str,
        recipient: str,
        body_text: str,
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        status: str = "pending",
        error: str | None = None,
        error_detail: str | None = None,
        if_known: bool = False,
        message_id: str | None = None,
    ) -> Message | None:
        """Insert one message; None if ``if_known`` and the recipient is unknown. With
        ``message_id`` (the caller's, to send again after an error that left it unknown
        whether the first try was stored) a message already stored under it that is the
        same (sender, recipient, kind, body) is returned instead of a second one."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._touch(recipient)
        now = self.now()
        expires_at = None if ttl_s is None else now + ttl_s
        done_at = now if status == "done" else None
        values = [
            "",
            kind,
            sender,
            recipient,
            correlation_id,
            cause_id,
            body_text,
            status,
            0,
            max_attempts,
            now,
            now,
            expires_at,
            done_at,
            error,
            error_detail,
        ]
        if if_known:
            sql = _INSERT_IF_KNOWN
            values += (recipient, recipient)
        else:
            sql = _INSERT
        chosen = message_id
        for _ in range(5):
            values[0] = message_id = chosen or new_id()
            try:
                if conn.execute(sql, values).rowcount == 0:
                    return None  # if_known, and nobody by that name
            except sqlite3.IntegrityError as exc:
                if "messages.id" in str(exc) and chosen is not None:
                    return self._stored_before(
                        conn,
                        chosen,
                        kind=kind,
                        sender=sender,
                        recipient=recipient,
                        body_text=body_text,
                    )
                if "messages.id" in str(exc):  # two processes drew the same id: draw again
                    continue
                if kind == "response" and correlation_id is not None:
                    raise errors.AlreadyReplied(correlation_id) from exc
                raise
            return make_message(
                message_id,
                kind,
                sender,
                recipient,
                correlation_id,
                cause_id,
                json.loads(body_text),
                status,
                0,
                max_attempts,
                None,
                None,
                now,
                now,
                expires_at,
                None,
                done_at,
                error,
                error_detail,
            )
        raise errors.QueueError("could not draw a unique message id")  # pragma: no cover

    def _stored_before(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        kind: str,
        sender: str,
        recipient: str,
        body_text: str,
    ) -> Message:
        """The message an earlier try stored under the caller's id, or MessageIdTaken."""
        found = self._fetch_by_id(conn, message_id)
        if (found.kind, found.sender, found.recipient) != (kind, sender, recipient) or (
            found.body != json.loads(body_text)
        ):
            raise errors.MessageIdTaken(message_id)
        return found

    def _insert(self, conn: sqlite3.Connection, **fields: Any) -> Message:
        """Insert one message, recipient unchecked (replies go to whoever asked)."""
        message = self._try_insert(conn, **fields)
        assert message is not None
        return message

    def _insert_checked(self, conn: sqlite3.Connection, **fields: Any) -> Message:
        """Insert one message to a recipient that must be known (RecipientUnknown if not)."""
        message = self._try_insert(conn, if_known=True, **fields)
        if message is None:
            raise errors.RecipientUnknown(fields["recipient"], self._known_names(conn))
        return message

    def send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        kind: SendKind = "notice",
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        message_id: str | None = None,
    ) -> Message:
        """Queue one message for a registered recipient (or ``user``). ``message_id``
        (from ``new_id()``) makes the send safe to repeat: see ``_try_insert``."""
        if kind not in ("notice", "request", "broadcast"):
            raise ValueError(
                f"send() kind must be notice, request or broadcast, not {kind!r} "
                "(responses are made by reply())"
            )
        body_text = encode_body(body)
        if message_id is None:
            sent = self._send_one(
                kind, sender, recipient, body_text, correlation_id, cause_id, ttl_s, max_attempts
            )
            if sent is not None:
                return sent
        with self._statement() as conn:
            return self._insert_checked(
                conn,
                kind=kind,
                sender=sender,
                recipient=recipient,
                body_text=body_text,
                correlation_id=correlation_id,
                cause_id=cause_id,
                ttl_s=ttl_s,
                max_attempts=max_attempts,
                message_id=None if message_id is None else check_id(message_id),
            )

    def _send_one(  # noqa: PLR0917 - positional: once per send, keywords cost more
        self,
        kind: str,
        sender: str,
        recipient: str,
        body_text: str,
        correlation_id: str | None,
        cause_id: str | None,
        ttl_s: float | None,
        max_attempts: int,
    ) -> Message | None:
        """:meth:`send` without a caller's id, outside any other write: what
        ``_statement()`` and ``_insert_checked()`` do, written out once (issue 14.3: their
        generator, keyword and bookkeeping layers were ~40 % of a send's CPU). The same
        statement, the same checks (recipient, CHECKs, UNIQUE id, the file's identity),
        the same errors and bell. None: nested in another write, take the general path."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        with self._lock:
            if self._topics is not None:  # inside a write: its bookkeeping decides the bells
                return None
            conn = self._writable()
            self.check_file()
            now = self._clock()
            expires_at = None if ttl_s is None else now + ttl_s
            for _ in range(5):
                message_id = new_id()
                try:
                    inserted = conn.execute(
                        _INSERT_IF_KNOWN,
                        (
                            message_id,
                            kind,
                            sender,
                            recipient,
                            correlation_id,
                            cause_id,
                            body_text,
                            "pending",
                            0,
                            max_attempts,
                            now,
                            now,
                            expires_at,
                            None,
                            None,
                            None,
                            recipient,
                            recipient,
                        ),
                    ).rowcount
                except sqlite3.IntegrityError as exc:
                    if "messages.id" in str(exc):  # two processes drew the same id: draw again
                        continue
                    raise
                except sqlite3.Error as exc:
                    raise schema.translate(self.path, exc) from exc
                break
            else:  # pragma: no cover
                raise errors.QueueError("could not draw a unique message id")
            if not inserted:
                try:
                    known = self._known_names(conn)
                except sqlite3.Error as exc:
                    raise schema.translate(self.path, exc) from exc
                raise errors.RecipientUnknown(recipient, known)
            self._rung_at = conn.total_changes
            if self._feed is not None:
                if self._held is not None:
                    self._held.append({recipient})
                else:
                    self._feed.ring((recipient,))
        return make_message(
            message_id,
            kind,
            sender,
            recipient,
            correlation_id,
            cause_id,
            json.loads(body_text),
            "pending",
            0,
            max_attempts,
            None,
            None,
            now,
            now,
            expires_at,
            None,
            None,
            None,
            None,
        )

    def send_many(
        self,
        sender: str,
        messages: Sequence[tuple[str, Any]],
        *,
        kind: SendKind = "notice",
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[Message]:
        """Queue many ``(recipient, body)`` messages in one transaction (one commit, one
        wake-up): all or nothing. The batch form of :meth:`send` for busy producers."""
        if kind not in ("notice", "request", "broadcast"):
            raise ValueError(f"send_many() kind must be notice, request or broadcast, not {kind!r}")
        encoded = [(recipient, encode_body(body)) for recipient, body in messages]
        with self._write() as conn:
            return [
                self._insert_checked(
                    conn,
                    kind=kind,
                    sender=sender,
                    recipient=recipient,
                    body_text=text,
                    ttl_s=ttl_s,
                    max_attempts=max_attempts,
                )
                for recipient, text in encoded
            ]

    def request(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        wait_s: float | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Queue a request. With ``wait_s`` the sender declares it will block for the
        reply; a request that would close a wait cycle raises WouldDeadlock, unwritten.
        ``message_id`` makes it safe to repeat, as for :meth:`send`."""
        body_text = encode_body(body)
        fields: dict[str, Any] = {
            "kind": "request",
            "sender": sender,
            "recipient": recipient,
            "body_text": body_text,
            "cause_id": cause_id,
            "ttl_s": ttl_s,
            "max_attempts": max_attempts,
            "message_id": None if message_id is None else check_id(message_id),
        }
        if wait_s is None:  # fire and forget: one statement, like send()
            with self._statement() as conn:
                return self._insert_checked(conn, **fields)
        with self._write() as conn:
            self._check_recipient(conn, recipient)
            now = self.now()
            cycle = self._wait_cycle(conn, sender, recipient, now)
            if cycle is not None:
                raise errors.WouldDeadlock(request_id="", detail=cycle)
            message = self._insert(conn, **fields)
            if message.status in ("pending", "leased"):  # else stored before, and ended:
                # no wait on it (as on NATS); OR REPLACE: the same request sent again
                conn.execute(
                    "INSERT OR REPLACE INTO waits (request_id, waiter, target, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (message.id, sender, recipient, now + wait_s),
                )
        return message

    @staticmethod
    def _wait_cycle(
        conn: sqlite3.Connection, sender: str, recipient: str, now: float
    ) -> str | None:
        """'a -> b -> a' if ``sender`` waiting on ``recipient`` would close a cycle."""
        if sender == recipient:
            return f"{sender} -> {sender}"
        if sender == USER:
            return None  # see _CYCLE_SQL: the human is never one blocked waiter
        args = {"recipient": recipient, "sender": sender, "now": now}
        if conn.execute(_CYCLE_SQL, args).fetchone() is None:
            return None
        return " -> ".join(
            [sender, *_shortest_path(conn.execute(_EDGES_SQL, args), recipient, sender)]
        )

    def broadcast(self, sender: str, body: Any, *, ttl_s: float | None = None) -> list[Message]:
        """One ``broadcast`` message to every registered agent except the sender,
        ``user`` and ``supervisor``, in one transaction."""
        body_text = encode_body(body)
        with self._write() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM agents WHERE name NOT IN (?, ?, ?) ORDER BY name",
                    (sender, USER, SUPERVISOR),
                )
            ]
            return [
                self._insert(
                    conn,
                    kind="broadcast",
                    sender=sender,
                    recipient=name,
                    body_text=body_text,
                    ttl_s=ttl_s,
                )
                for name in names
            ]

    def reply(self, request_id: str, sender: str, body: Any) -> Message:
        """Answer a request. Exactly one response per request (a UNIQUE index)."""
        body_text = encode_body(body)
        with self._write() as conn:
            request = self._fetch_by_id(conn, request_id)
            if request.kind != "request":
                raise errors.NotARequest(request_id, request.kind)
            if self._fetch_reply(conn, request_id) is not None:
                raise errors.AlreadyReplied(request_id)
            response = self._insert(
                conn,
                kind="response",
                sender=sender,
                recipient=request.sender,
                body_text=body_text,
                correlation_id=request_id,
                cause_id=request_id,
                status="done",
            )
            conn.execute("DELETE FROM waits WHERE request_id = ?", (request_id,))
        return response

    def fail_request(self, request_id: str, code: str, detail: str = "") -> bool:
        """Answer a request with an error (the waiter raises the matching RequestFailed)
        and move the request to the dead letters. False if it was already answered."""
        with self._write() as conn:
            request = self._fetch_by_id(conn, request_id)
            if request.kind != "request":
                raise errors.NotARequest(request_id, request.kind)
            if self._fetch_reply(conn, request_id) is not None:
                return False
            self._insert(
                conn,
                kind="response",
                sender=request.recipient,
                recipient=request.sender,
                body_text="null",
                correlation_id=request_id,
                cause_id=request_id,
                status="done",
                error=code,
                error_detail=detail or None,
            )
            conn.execute(
                """
                UPDATE messages SET status = 'dead', error = ?, error_detail = ?,
                    lease_owner = NULL, lease_expires = NULL, done_at = ?
                WHERE id = ? AND status IN ('pending', 'leased')
                """,
                (code, detail or None, self.now(), request_id),
            )
            conn.execute("DELETE FROM waits WHERE request_id = ?", (request_id,))
        return True


def _shortest_path(edges: sqlite3.Cursor, start: str, end: str) -> list[str]:
    """The names from ``start`` to ``end`` over ``edges`` (a breadth-first walk, each
    name once); [start, end] if there is no such path (an edge gone meanwhile)."""
    nexts: dict[str, list[str]] = {}
    for waiter, target in edges:
        nexts.setdefault(waiter, []).append(target)
    came_from: dict[str, str] = {start: start}
    frontier = [start]
    while frontier and end not in came_from:
        step = []
        for name in frontier:
            for target in nexts.get(name, ()):
                if target not in came_from:
                    came_from[target] = name
                    step.append(target)
        frontier = step
    if end not in came_from:
        return [start, end]
    path = [end]
    while path[-1] != start:
        path.append(came_from[path[-1]])
    return path[::-1]
