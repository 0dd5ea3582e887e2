"""Taking messages out: claim with a lease, ack, nack, extend, release.

A consumer names itself with ``owner`` (unique per incarnation, e.g.
``"alice:4242:1f3a"``): only the owner of a lease may ack, nack or extend it,
so a consumer that lost its lease (it stalled, the lease expired, someone else
claimed the message) gets LeaseLost instead of acking twice.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Sequence

from orchestrator import errors
from orchestrator.mailbox.core import MailboxCore
from orchestrator.mailbox.model import (
    DEFAULT_LEASE_S,
    ERR_EXPIRED,
    ERR_MAX_ATTEMPTS,
    MESSAGE_COLUMNS,
    Message,
    message_from_row,
)

# What would a claim for :r find or fix? Index probes, no lock: (something
# pending is due, a lease has run out, a pending message is past its TTL).
_ANYTHING_TO_DO = """
SELECT EXISTS (SELECT 1 FROM messages
               WHERE recipient = :r AND status = 'pending' AND kind != 'response'
                 AND available_at <= :now),
       EXISTS (SELECT 1 FROM messages
               WHERE recipient = :r AND status = 'leased' AND lease_expires <= :now),
       EXISTS (SELECT 1 FROM messages
               WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= :now
                 AND recipient = :r)
"""


_ACK = """
UPDATE messages SET status = 'done', done_at = ?, lease_expires = NULL
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'leased' AND lease_owner = ?
"""
_HELD = """
SELECT id FROM messages
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'leased' AND lease_owner = ?
"""
_CLAIM_ORDER = operator.itemgetter(-2, -1)  # a claim's rows end with available_at, seq


class _NotAll(Exception):
    """An ack found an id not leased to its owner: its transaction rolls back."""


class ConsumeOps(MailboxCore):
    @staticmethod
    def _expire_leases(
        conn: sqlite3.Connection, now: float, recipient: str | None = None
    ) -> tuple[int, int]:
        """Expired leases back to pending, or dead once attempts are used up.
        Returns (requeued, dead)."""
        scope = "" if recipient is None else "AND recipient = :recipient"
        params = {"now": now, "recipient": recipient}
        # The sweep also ends leases with no numeric deadline (a plain-SQL writer's NULL
        # or text, which sorts after every number): they never ran out, and the message
        # stayed leased for good. (Not in a claim: its indexed range stays as it is.)
        due = "lease_expires <= :now"
        if recipient is None:
            due = f"({due} OR typeof(lease_expires) NOT IN ('real', 'integer'))"
        dead_ids = [
            r[0]
            for r in conn.execute(
                f"""
                UPDATE messages SET status = 'dead', error = '{ERR_MAX_ATTEMPTS}',
                    error_detail = coalesce(error_detail, 'lease expired on the last attempt'),
                    lease_expires = NULL, done_at = :now
                WHERE status = 'leased' AND {due}
                  AND attempts >= max_attempts {scope}
                RETURNING id
                """,
                params,
            )
        ]
        requeued = conn.execute(
            f"""
            UPDATE messages SET status = 'pending', lease_owner = NULL, lease_expires = NULL
            WHERE status = 'leased' AND {due} {scope}
            """,
            params,
        ).rowcount
        ConsumeOps._drop_waits(conn, dead_ids)
        return requeued, len(dead_ids)

    @staticmethod
    def _expire_ttl(conn: sqlite3.Connection, now: float, recipient: str | None = None) -> int:
        """Undelivered messages past their TTL -> dead 'expired'."""
        scope = "" if recipient is None else "AND recipient = :recipient"
        dead_ids = [
            r[0]
            for r in conn.execute(
                f"""
                UPDATE messages SET status = 'dead', error = '{ERR_EXPIRED}',
                    error_detail = 'not delivered before its TTL', done_at = :now
                WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= :now
                  {scope}
                RETURNING id
                """,
                {"now": now, "recipient": recipient},
            )
        ]
        ConsumeOps._drop_waits(conn, dead_ids)
        return len(dead_ids)

    @staticmethod
    def _drop_waits(conn: sqlite3.Connection, request_ids: Sequence[str]) -> None:
        if request_ids:
            conn.execute(
                "DELETE FROM waits WHERE request_id IN (SELECT value FROM json_each(?))",
                (_json_list(request_ids),),
            )

    def claim(
        self, recipient: str, *, owner: str, lease_s: float = DEFAULT_LEASE_S, limit: int = 1
    ) -> list[Message]:
        """Lease up to ``limit`` messages for ``recipient``, oldest first.

        Atomic across processes (one UPDATE ... RETURNING under BEGIN IMMEDIATE).
        Also returns this recipient's expired leases to pending first, so a
        crashed consumer's messages come back even when nobody runs sweep().
        """
        if limit < 1:
            return []
        now = self.now()
        with self._read() as conn:  # nothing to do? then no write lock (idle loops, busy peers)
            due, leases_out, ttl_out = conn.execute(
                _ANYTHING_TO_DO, {"r": recipient, "now": now}
            ).fetchone()
        if not (due or leases_out or ttl_out):
            # A message past its TTL is marked dead here even when nothing is claimable yet
            # (it may wait out a nack delay): claim heals its recipient's queue either way.
            return []
        with self._write() as conn:
            self._touch(recipient)
            if not (leases_out or ttl_out):
                self._quiet()  # pending -> leased only: nobody's wait can end by it
            # Skipping a step the probe found nothing for is safe: with `now` fixed,
            # leases and TTLs that run out later are not due here either, and the
            # claim below never takes a message past its TTL.
            if leases_out:
                self._expire_leases(conn, now, recipient)
            if ttl_out or leases_out:  # a lease handed back may be past its TTL too
                self._expire_ttl(conn, now, recipient)
            rows = conn.execute(
                f"""
                UPDATE messages SET status = 'leased', lease_owner = :owner,
                    lease_expires = :expires, attempts = attempts + 1, claimed_at = :now
                WHERE seq IN (
                    SELECT seq FROM messages
                    WHERE recipient = :recipient AND status = 'pending' AND kind != 'response'
                      AND available_at <= :now
                      AND (expires_at IS NULL OR expires_at > :now)
                    ORDER BY available_at, seq LIMIT :limit)
                RETURNING {MESSAGE_COLUMNS}, available_at, seq
                """,
                {
                    "owner": owner,
                    "expires": now + lease_s,
                    "now": now,
                    "recipient": recipient,
                    "limit": limit,
                },
            ).fetchall()
        rows.sort(key=_CLAIM_ORDER)  # RETURNING order is unspecified
        return [message_from_row(r) for r in rows]

    def ack(self, message_ids: Sequence[str], *, owner: str) -> None:
        """Mark leased messages done. All or nothing: if any id is not leased by
        ``owner`` (any more), nothing is acked and LeaseLost names that id."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return
        listed = _json_list(ids)
        while True:
            try:
                with self._write() as conn:
                    self._quiet()  # leased -> done ends no wait (an answer is a reply, not an ack)
                    # Counted, not RETURNING the ids: SQLite keeps RETURNING rows in a table
                    # of their own, ~2.5 us a message of a batched consumer (issue 14.3).
                    if conn.execute(_ACK, (self.now(), listed, owner)).rowcount == len(ids):
                        return
                    raise _NotAll  # roll back: all or nothing
            except _NotAll:
                pass
            # Which one? Named from a look after the rollback; if by then every id is
            # leased to ``owner`` again (its own claim, elsewhere), ack once more.
            with self._read() as conn:
                held = {r[0] for r in conn.execute(_HELD, (listed, owner))}
            missing = next((i for i in ids if i not in held), None)
            if missing is not None:
                raise errors.LeaseLost(missing, owner)

    def nack(
        self,
        message_id: str,
        *,
        owner: str,
        error: str | None = None,
        delay_s: float = 0.0,
        dead_code: str | None = None,
    ) -> Message:
        """Give a message back: pending again after ``delay_s``, or dead with error
        ``max_attempts`` when its attempts are used up. ``error`` is kept as detail.
        ``dead_code``: dead now with that error code, attempts left or not (a failure
        that would only repeat, and be paid for again). LeaseLost if the message is not
        leased by ``owner`` (any more), or not in the queue (ended and purged since its
        claim), as ack and extend say and NATS's nack: MessageNotFound escaped a failed
        turn's give-back into its session."""
        now = self.now()
        with self._write() as conn:
            message = self._fetch(conn, "id = ?", (message_id,))
            if message is None or message.status != "leased" or message.lease_owner != owner:
                raise errors.LeaseLost(message_id, owner)
            self._touch(message.recipient)
            if dead_code is not None or message.attempts >= message.max_attempts:
                conn.execute(
                    """
                    UPDATE messages SET status = 'dead', error = ?,
                        error_detail = ?, lease_expires = NULL, done_at = ?
                    WHERE id = ?
                    """,
                    (dead_code or ERR_MAX_ATTEMPTS, error, now, message_id),
                )
                self._drop_waits(conn, [message_id])
            else:
                conn.execute(
                    """
                    UPDATE messages SET status = 'pending', lease_owner = NULL,
                        lease_expires = NULL, available_at = ?, error_detail = ?
                    WHERE id = ?
                    """,
                    (now + max(delay_s, 0.0), error, message_id),
                )
            return self._fetch_by_id(conn, message_id)

    def extend(self, message_ids: Sequence[str], *, owner: str, lease_s: float) -> None:
        """Push the lease of messages still held by ``owner`` to now + ``lease_s``."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return
        with self._write() as conn:
            rows = conn.execute(
                """
                UPDATE messages SET lease_expires = ?
                WHERE id IN (SELECT value FROM json_each(?))
                  AND status = 'leased' AND lease_owner = ?
                RETURNING id, recipient
                """,
                (self.now() + lease_s, _json_list(ids), owner),
            ).fetchall()
            held = {r[0] for r in rows}
            self._quiet()  # a later lease expiry ends no wait
            if len(held) != len(ids):
                raise errors.LeaseLost(next(i for i in ids if i not in held), owner)

    def release(self, owner: str, message_ids: Sequence[str] | None = None) -> int:
        """Messages leased by ``owner`` (all, or these ids) back to pending without
        counting the attempt (a graceful shutdown; a claim handed back). Returns how many."""
        with self._write() as conn:
            rows = conn.execute(
                """
                UPDATE messages SET status = 'pending', attempts = max(attempts - 1, 0),
                    lease_owner = NULL, lease_expires = NULL
                WHERE status = 'leased' AND lease_owner = ?
                  AND (? IS NULL OR id IN (SELECT value FROM json_each(?)))
                RETURNING recipient
                """,
                (owner, *[None if message_ids is None else _json_list(message_ids)] * 2),
            ).fetchall()
            self._touch(*{r[0] for r in rows})
            return len(rows)


def _json_list(ids: Sequence[str]) -> str:
    """One bound parameter for any number of ids (``IN (SELECT value FROM json_each(?))``)."""
    return json.dumps(list(ids))
