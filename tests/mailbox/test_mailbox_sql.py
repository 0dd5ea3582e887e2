"""Other languages: the plain-SQL recipes documented for the queue work against a real file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from orchestrator import errors
from orchestrator.mailbox import SCHEMA_VERSION, Mailbox


@pytest.fixture
def sql(mb: Mailbox) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(mb.path, isolation_level=None, timeout=10)
    yield conn
    conn.close()


def test_schema_version_is_recorded(sql: sqlite3.Connection) -> None:
    """PRAGMA user_version says which schema the file has, for other programs to check."""
    assert sql.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sql.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_plain_sql_send_with_defaults(mb: Mailbox, sql: sqlite3.Connection) -> None:
    """An INSERT naming only sender, recipient and body gives a complete pending notice."""
    sql.execute(
        "INSERT INTO messages (sender, recipient, body) VALUES ('script', 'alice', '{\"t\":1}')"
    )
    (m,) = mb.claim("alice", owner="w")
    assert (m.kind, m.sender, m.body, m.attempts, m.max_attempts) == (
        "notice",
        "script",
        {"t": 1},
        1,
        5,
    )
    assert abs(m.created_at - time.time()) < 60


def test_plain_sql_claim_and_ack(mb: Mailbox, sql: sqlite3.Connection) -> None:
    """The documented claim UPDATE ... RETURNING and ack UPDATE behave like claim()/ack()."""
    sent = [mb.send("user", "alice", i) for i in range(3)]
    now = time.time()
    sql.execute("BEGIN IMMEDIATE")
    rows = sql.execute(
        """
        UPDATE messages SET status='leased', lease_owner='script:1', attempts=attempts+1,
               lease_expires=:now+30, claimed_at=:now
         WHERE seq IN (SELECT seq FROM messages
                        WHERE recipient='alice' AND status='pending' AND kind!='response'
                          AND available_at<=:now AND (expires_at IS NULL OR expires_at>:now)
                        ORDER BY available_at, seq LIMIT 2)
        RETURNING id, sender, kind, body
        """,
        {"now": now},
    ).fetchall()
    sql.execute("COMMIT")
    assert sorted(r[0] for r in rows) == sorted(m.id for m in sent[:2])
    acked = sql.execute(
        "UPDATE messages SET status='done', done_at=?, lease_expires=NULL "
        "WHERE id=? AND status='leased' AND lease_owner='script:1'",
        (now, rows[0][0]),
    ).rowcount
    assert acked == 1
    assert mb.get(rows[0][0]).status == "done"
    with pytest.raises(errors.LeaseLost):
        mb.ack([rows[1][0]], owner="someone-else")


def test_plain_sql_reply_reaches_the_waiter_once(mb: Mailbox, sql: sqlite3.Connection) -> None:
    """The documented reply INSERT is what wait_for_reply() returns; a second one is refused."""
    r = mb.request("user", "alice", "q?", wait_s=30)
    recipe = (
        "INSERT INTO messages (kind, sender, recipient, correlation_id, cause_id, body, "
        "status, done_at) SELECT 'response', 'alice', sender, id, id, '\"the answer\"', "
        "'done', ? FROM messages WHERE id=? AND kind='request'"
    )
    assert sql.execute(recipe, (time.time(), r.id)).rowcount == 1
    assert mb.wait_for_reply(r.id, timeout_s=5).body == "the answer"
    assert sql.execute("SELECT count(*) FROM waits").fetchone()[0] == 0  # the waiter cleaned up
    with pytest.raises(sqlite3.IntegrityError):
        sql.execute(recipe, (time.time(), r.id))
