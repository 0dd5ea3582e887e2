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


def test_text_and_absurd_numbers_in_number_columns_are_read_not_crashed_on(
    mb: Mailbox, sql: sqlite3.Connection
) -> None:
    """SQLite keeps text it cannot convert in a REAL column, and a time of 1e308 or -5 is
    a number. Rows a plain-SQL writer left so made `queue ls`, `queue show` and `trace`
    end in tracebacks (arithmetic and dates on them), and a text `available_at` ended
    every wait on its inbox, an agent's idle wait included (TypeError: text sorts after
    every number, so it came back as the next time due). They are read as numbers or
    as nothing now; a row that can never be due is never claimed, and `queue ls` shows
    it."""
    mb.register("bob", "")
    sql.execute(
        "INSERT INTO messages (id, sender, recipient, body, created_at, available_at, "
        "attempts, expires_at) VALUES ('weird1', 'user', 'bob', '\"x\"', 'yesterday', 'soon', "
        "'many', 1e308)"
    )
    sql.execute(
        "INSERT INTO messages (id, sender, recipient, body, created_at, available_at) "
        "VALUES ('weird2', 'user', 'bob', '1', 9e999, -5)"
    )
    sql.execute("UPDATE agents SET heartbeat_at = 'x', pid = 'y' WHERE name = 'bob'")
    weird1 = mb.get("weird1")
    assert (weird1.created_at, weird1.available_at, weird1.attempts) == (0.0, 0.0, 0)
    assert weird1.expires_at is None
    assert mb.get("weird2").created_at == 0.0
    bob = mb.agent("bob")
    assert bob is not None
    assert (bob.pid, bob.heartbeat_at) == (None, None)
    for odd in (1234.5, 0, -7, 2**40):  # ps and top called os.kill(1234.5, 0): a traceback
        sql.execute("UPDATE agents SET pid = ? WHERE name = 'bob'", (odd,))
        assert mb.agent("bob").pid is None  # type: ignore[union-attr]
    [claimed] = mb.claim("bob", owner="o", limit=5)  # weird2: -5 is due; 'soon' never is
    assert claimed.id == "weird2"
    mb.ack([claimed.id], owner="o")
    assert mb.wait_for_messages("bob", 0.05) is False
    assert {m.id for m in mb.list(status="pending")} == {"weird1"}


def test_bodies_and_meta_nested_past_what_python_reads(
    mb: Mailbox, sql: sqlite3.Connection
) -> None:
    """json_valid accepts 999 nested arrays, Python's json.loads raises RecursionError
    on them (not ValueError): every read of such a row was a traceback, and a claim of
    it ended the agent's session. The body is read as its text; a meta that is not an
    object (or too deep) as {}, and the supervisor's next registry write replaces it."""
    mb.register("bob", "")
    deep = "[" * 999 + "]" * 999
    sql.execute(
        "INSERT INTO messages (id, sender, recipient, body) VALUES ('deep', 'user', 'bob', ?)",
        (deep,),
    )
    assert mb.get("deep").body == deep
    [claimed] = mb.claim("bob", owner="o")
    assert claimed.body == deep
    for meta in (deep, "[1]", '"text"'):
        sql.execute("UPDATE agents SET meta = ? WHERE name = 'bob'", (meta,))
        bob = mb.agent("bob")
        assert bob is not None
        assert bob.meta == {}
        mb.update_agent("bob", state="ready", meta={"k": 1})
        bob = mb.agent("bob")
        assert bob is not None
        assert bob.meta == {"k": 1}


def test_a_wait_edge_with_text_for_its_deadline_refuses_nothing_and_is_swept(
    mb: Mailbox, sql: sqlite3.Connection
) -> None:
    """An edge 'a waits on b until never' (text sorts after every number) closed a
    cycle for good: b's asks to a were refused as would_deadlock, and the sweep never
    removed it."""
    mb.register("a", "")
    mb.register("b", "")
    sql.execute(
        "INSERT INTO waits (request_id, waiter, target, expires_at) VALUES ('x', 'a', 'b', 'never')"
    )
    mb.request("b", "a", "fine?", wait_s=30)  # no cycle through the odd edge
    mb.sweep()
    assert sql.execute("SELECT count(*) FROM waits WHERE request_id = 'x'").fetchone()[0] == 0


@pytest.mark.parametrize("deadline", ["NULL", "'later'"])
def test_a_lease_with_no_numeric_deadline_is_ended_by_the_sweep(
    mb: Mailbox, sql: sqlite3.Connection, deadline: str
) -> None:
    """A plain-SQL writer's lease with no deadline, or text (after every number), never
    ran out: the message stayed leased for good. The sweep requeues it."""
    mb.register("bob", "")
    m = mb.send("user", "bob", "stuck?")
    sql.execute(
        f"UPDATE messages SET status = 'leased', lease_owner = 'script', attempts = 1, "
        f"lease_expires = {deadline} WHERE id = ?",
        (m.id,),
    )
    assert mb.sweep().requeued == 1
    [again] = mb.claim("bob", owner="o")
    assert again.id == m.id
