"""The short paths of send(), claim() and ack() (issue 14.3) keep every guarantee of the
general ones: what send() returns is what it stored, nested writes and held bells still
go through their bookkeeping, an id drawn twice is drawn again, a batch ack stays all or
nothing and names a message it could not ack."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import Mailbox, sending
from orchestrator.mailbox.model import message_from_row


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"kind": "request", "ttl_s": 30.0, "max_attempts": 2},
        {"kind": "broadcast", "correlation_id": "c1", "cause_id": "k1"},
    ],
)
def test_send_returns_the_message_it_stored(
    mb: Mailbox, clock: FakeClock, options: dict[str, Any]
) -> None:
    sent = mb.send("alice", "bob", {"n": [1, (2, 3)], "t": "é"}, **options)
    stored = mb.get(sent.id)
    assert sent == stored
    assert sent.body == {"n": [1, [2, 3]], "t": "é"}  # as stored: the tuple is a list
    assert (sent.kind, sent.status, sent.created_at) == (
        options.get("kind", "notice"),
        "pending",
        clock.now,
    )


def test_send_refuses_bad_attempts_and_unknown_recipients_writing_nothing(mb: Mailbox) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        mb.send("alice", "bob", "x", max_attempts=0)
    with pytest.raises(errors.RecipientUnknown, match="alice, bob, carol"):
        mb.send("alice", "nobody", "x")
    assert mb.list(limit=10) == []


def test_an_id_drawn_twice_is_drawn_again(mb: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes may draw one id in the same millisecond: the UNIQUE index refuses the
    second row, and the send draws another id instead of failing."""
    first = mb.send("alice", "bob", "first")
    draws = iter([first.id, "0123456789abcdef"])
    monkeypatch.setattr(sending, "new_id", lambda: next(draws))
    second = mb.send("alice", "bob", "second")
    assert second.id == "0123456789abcdef"
    assert sorted(m.body for m in mb.list(limit=10)) == ["first", "second"]


def test_a_send_inside_held_bells_is_collected_not_rung(
    mb: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    rung: list[Any] = []
    monkeypatch.setattr(mb.feed, "ring", lambda topics=None: rung.append(topics))
    held: list[set[str] | None] = []
    with mb.holding_bells(held):
        mb.send("alice", "bob", "x")
    assert (held, rung) == ([{"bob"}], [])
    mb.ring_held(held)
    assert rung == [{"bob"}]


def test_a_send_inside_another_write_commits_with_it(mb: Mailbox) -> None:
    """Nested in a transaction, send() is one of its statements: rolled back with it."""

    def rolled_back() -> None:
        with mb._write():
            mb.send("alice", "bob", "rolled back")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        rolled_back()
    assert mb.list(limit=10) == []
    with mb._write():
        mb.send("alice", "bob", "kept")
    assert [m.body for m in mb.list(limit=10)] == ["kept"]


def test_a_send_that_hits_a_held_lock_is_a_database_error(mb: Mailbox) -> None:
    """SQLite's errors come out as the queue's own (here: the lock held past the wait)."""
    other = sqlite3.connect(mb.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with mb.lock_wait(0), pytest.raises(errors.DatabaseError):
            mb.send("alice", "bob", "x")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert mb.list(limit=10) == []


def test_a_batch_ack_names_the_message_it_could_not_ack(mb: Mailbox) -> None:
    ids = [mb.send("alice", "bob", i).id for i in range(3)]
    assert len(mb.claim("bob", owner="b1", limit=3)) == 3
    mb.release("b1", [ids[1]])
    assert [m.id for m in mb.claim("bob", owner="b2")] == [ids[1]]
    with pytest.raises(errors.LeaseLost) as info:
        mb.ack([ids[0], ids[0], ids[1], ids[2]], owner="b1")
    assert info.value.message_id == ids[1]
    assert {mb.get(i).status for i in ids} == {"leased"}  # all or nothing


def test_an_ack_whose_leases_came_back_before_the_look_acks_them(mb: Mailbox) -> None:
    """The id an ack could not ack is named from a look after its rollback; if by then
    every message is leased to the owner again, the ack is tried again, not refused."""
    ids = [mb.send("alice", "bob", i).id for i in range(2)]
    mb.claim("bob", owner="b1", limit=2)
    mb.release("b1", [ids[1]])
    read = mb._read

    @contextmanager
    def look_after_reclaim() -> Iterator[sqlite3.Connection]:
        with Mailbox(mb.path) as elsewhere:  # the owner's lease is back (its own claim)
            assert [m.id for m in elsewhere.claim("bob", owner="b1")] == [ids[1]]
        with read() as conn:
            yield conn

    mb._read = look_after_reclaim  # type: ignore[method-assign]
    mb.ack(ids, owner="b1")
    mb._read = read  # type: ignore[method-assign]
    assert {mb.get(i).status for i in ids} == {"done"}


def test_a_message_row_keeps_a_body_python_cannot_read_as_text() -> None:
    deep = "[" * 5000 + "]" * 5000
    row = ("id", "notice", "a", "b", None, None, deep, "pending", 0, 1)
    row += (None, None, 1.0, 1.0, None, None, None, None, None)
    assert message_from_row(row).body == deep
    assert message_from_row((*row[:6], "not json", *row[7:])).body == "not json"
    assert message_from_row((*row, 1.0, 7)) == message_from_row(row)  # a claim's sort keys
    with pytest.raises(ValueError, match="19 columns"):
        message_from_row(row[:-1])
