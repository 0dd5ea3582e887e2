"""Looking at and tending the queue: get, list, trace, dead letters, sweep, purge.

``list`` is defined last: inside the class body its name would shadow the
builtin in the annotations of the methods after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator import errors
from orchestrator.mailbox.consuming import ConsumeOps
from orchestrator.mailbox.model import (
    MESSAGE_COLUMNS,
    STATUSES,
    Message,
    SweepResult,
    message_from_row,
)

# Two recursive terms (SQLite >= 3.34) so each step uses an index
# (messages_cause, messages_one_reply) instead of scanning the table.
_RELATED_SQL = f"""
WITH RECURSIVE family(id) AS (
    SELECT :id
    UNION
    SELECT m.id FROM messages AS m JOIN family AS f ON m.cause_id = f.id
    UNION
    SELECT m.id FROM messages AS m JOIN family AS f
      ON m.correlation_id = f.id AND m.kind = 'response'
)
SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN (SELECT id FROM family) ORDER BY seq
"""

# A reply whose request is still pending or leased: it is what keeps the request from
# being answered twice (the one-reply index), so no purge or sweep removes it.
_NEEDED_REPLY = """(kind = 'response' AND EXISTS (
    SELECT 1 FROM messages AS req WHERE req.id = messages.correlation_id
      AND req.status IN ('pending', 'leased')))"""


class AdminOps(ConsumeOps):
    def get(self, message_id: str) -> Message:
        """One message by id; MessageNotFound if there is none."""
        with self._read() as conn:
            return self._fetch_by_id(conn, message_id)

    def find_reply(self, request_id: str) -> Message | None:
        """The response to a request, if it has one (error responses included)."""
        with self._read() as conn:
            return self._fetch_reply(conn, request_id)

    def related(self, message_id: str) -> list[Message]:
        """The message, its reply, and everything caused by it (through ``cause_id``,
        transitively), oldest first: what `trace` shows."""
        with self._read() as conn:
            self._fetch_by_id(conn, message_id)
            rows = conn.execute(_RELATED_SQL, {"id": message_id}).fetchall()
        return [message_from_row(r) for r in rows]

    def dead(self) -> list[Message]:
        """The dead letters, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'dead' ORDER BY seq"
            ).fetchall()
        return [message_from_row(r) for r in rows]

    def retry(self, message_id: str) -> Message:
        """A dead message back to pending with a fresh set of attempts and no TTL.
        A failed request's error response is removed, so it can be answered again."""
        with self._write() as conn:
            message = self._fetch_by_id(conn, message_id)
            if message.status != "dead":
                raise errors.QueueError(
                    f"message '{message_id}' is {message.status}, not dead: only dead "
                    "letters can be retried"
                )
            conn.execute(
                """
                UPDATE messages SET status = 'pending', attempts = 0, error = NULL,
                    error_detail = NULL, lease_owner = NULL, lease_expires = NULL,
                    expires_at = NULL, done_at = NULL, claimed_at = NULL, available_at = ?
                WHERE id = ?
                """,
                (self.now(), message_id),
            )
            conn.execute(
                "DELETE FROM messages WHERE kind = 'response' AND correlation_id = ? "
                "AND error IS NOT NULL",
                (message_id,),
            )
            return self._fetch_by_id(conn, message_id)

    def purge(self, *, statuses: Sequence[str] = ("done", "dead")) -> int:
        """Delete every message in these statuses; returns how many.

        The reply to a request still pending or leased stays (a turn commits its reply
        before it acks the request): deleting it would let the request, redelivered
        after a crash, be answered a second time."""
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; use {', '.join(STATUSES)}")
        if not statuses:
            return 0
        marks = ", ".join("?" * len(statuses))
        with self._write() as conn:
            count = conn.execute(
                f"DELETE FROM messages WHERE status IN ({marks}) AND NOT {_NEEDED_REPLY}",
                tuple(statuses),
            ).rowcount
            conn.execute("DELETE FROM waits WHERE request_id NOT IN (SELECT id FROM messages)")
        return count

    def sweep(self, *, retention_s: float = 86400.0) -> SweepResult:
        """Housekeeping, in one transaction: expired leases back to pending (dead when
        attempts are used up), undelivered messages past their TTL to dead
        ('expired'), done messages older than ``retention_s`` deleted, stale wait
        edges dropped. Safe to run from any process at any time."""
        now = self.now()
        with self._write() as conn:
            requeued, dead = self._expire_leases(conn, now)
            expired = self._expire_ttl(conn, now)
            pruned = conn.execute(
                f"DELETE FROM messages WHERE status = 'done' AND done_at <= ? "
                f"AND NOT {_NEEDED_REPLY}",
                (now - retention_s,),
            ).rowcount
            # Text in expires_at (a plain-SQL writer's) sorts after every number: such an
            # edge never ran out, and refused asks as would_deadlock for good.
            conn.execute(
                "DELETE FROM waits WHERE expires_at <= ? "
                "OR typeof(expires_at) NOT IN ('real', 'integer')",
                (now,),
            )
        return SweepResult(requeued=requeued, expired=expired, dead=dead, pruned=pruned)

    def peek(self, recipient: str, *, limit: int = 10) -> list[Message]:
        """What :meth:`claim` would hand out next, oldest first, without claiming
        (no lease, no attempt counted): for `inbox` previews next to a live agent."""
        now = self.now()
        with self._read() as conn:
            rows = conn.execute(
                f"""
                SELECT {MESSAGE_COLUMNS} FROM messages
                WHERE recipient = :recipient AND status = 'pending' AND kind != 'response'
                  AND available_at <= :now AND (expires_at IS NULL OR expires_at > :now)
                ORDER BY available_at, seq LIMIT :limit
                """,
                {"recipient": recipient, "now": now, "limit": limit},
            ).fetchall()
        return [message_from_row(r) for r in rows]

    def pending_count(self, recipient: str) -> int:
        """Messages waiting for ``recipient`` (pending, not yet claimed)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE recipient = ? AND status = 'pending' "
                "AND kind != 'response'",
                (recipient,),
            ).fetchone()
        return int(row[0])

    def pending_counts(self) -> dict[str, int]:
        """Messages waiting (pending, not responses) per recipient, recipients with none
        left out: `ps` per agent, from the claim index alone (no message read)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT recipient, count(*) FROM messages "
                "WHERE status = 'pending' AND kind != 'response' GROUP BY recipient"
            ).fetchall()
        return {str(r): int(n) for r, n in rows}

    def status_counts(
        self, statuses: Sequence[str] = ("pending", "leased", "dead")
    ) -> dict[str, int]:
        """How many messages are in each of ``statuses`` (responses left out), every one
        named a key. One literal status per count, so each reads that status's partial
        index (messages_claim, messages_leased, messages_dead, messages_done)."""
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; use {', '.join(STATUSES)}")
        wanted = list(dict.fromkeys(statuses))
        if not wanted:
            return {}
        sql = "SELECT " + ", ".join(
            f"(SELECT count(*) FROM messages WHERE status = '{s}' AND kind != 'response')"
            for s in wanted
        )
        with self._read() as conn:
            row = conn.execute(sql).fetchone()
        return {s: int(n) for s, n in zip(wanted, row, strict=True)}

    def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        sender: str | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Messages matching every filter given, newest first."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        # `ps` and `top` list the leased messages on every refresh, and SQLite walked the
        # whole table for them in seq order (1M done messages: 90 ms a call). A partial
        # index (WHERE status = 'leased') is used only when the query names the status as
        # a literal (checked against STATUSES above), and only when the order does not
        # steer the planner to the table: `+seq` for the few-row statuses. Done (and
        # pending) rows are many: there the walk in seq order stops at ``limit``.
        clauses = [] if status is None else [f"status = '{status}'"]
        order = "+seq" if status in ("leased", "dead") else "seq"
        params = []
        for column, value in (("recipient", recipient), ("sender", sender)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(clauses) or "1"
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} "
                f"ORDER BY {order} DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [message_from_row(r) for r in rows]
