"""Putting messages in: send, request, broadcast, reply, fail_request, deadlock refusal."""

from __future__ import annotations

import sqlite3

import pytest
from mailbox_workers.support import FakeClock, counts

from orchestrator import errors
from orchestrator.mailbox import DEFAULT_MAX_ATTEMPTS, SUPERVISOR, USER, Mailbox


def test_send_stores_a_pending_notice(mb: Mailbox, clock: FakeClock) -> None:
    """send() returns the stored message: pending notice, no attempts yet, TTL turned into
    expires_at.
    """
    m = mb.send("alice", "bob", {"text": "hi", "n": [1, 2]}, ttl_s=60, cause_id="c1")
    assert (m.kind, m.sender, m.recipient, m.status) == ("notice", "alice", "bob", "pending")
    assert m.body == {"text": "hi", "n": [1, 2]}
    assert (m.attempts, m.max_attempts) == (0, DEFAULT_MAX_ATTEMPTS)
    assert m.created_at == m.available_at == clock.now
    assert m.expires_at == clock.now + 60
    assert m.cause_id == "c1"
    assert mb.get(m.id) == m


def test_ids_are_unique_short_and_sort_by_creation(mb: Mailbox) -> None:
    """Ids are 16-character strings that sort in creation order."""
    ids = [mb.send("alice", "bob", i).id for i in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 16 for i in ids)
    assert sorted(ids) == ids


def test_send_many_queues_a_batch_in_order(mb: Mailbox) -> None:
    """send_many() writes every (recipient, body) in one transaction, in the order given."""
    sent = mb.send_many("alice", [("bob", 1), ("carol", 2), ("bob", 3)], ttl_s=30)
    assert [(m.recipient, m.body) for m in sent] == [("bob", 1), ("carol", 2), ("bob", 3)]
    assert [m.body for m in mb.claim("bob", owner="w", limit=5)] == [1, 3]


def test_send_many_is_all_or_nothing(mb: Mailbox) -> None:
    """One unknown recipient or bad body in a batch and nothing of the batch is written."""
    before = counts(mb.path)
    with pytest.raises(errors.RecipientUnknown):
        mb.send_many("alice", [("bob", 1), ("nobody", 2)])
    with pytest.raises(errors.InvalidBody):
        mb.send_many("alice", [("bob", 1), ("bob", {3})])
    assert counts(mb.path) == before


def test_user_is_always_a_valid_recipient(mb: Mailbox) -> None:
    """'user' receives messages without being registered."""
    assert mb.agent(USER) is None
    assert mb.send("alice", USER, "done").recipient == USER


def test_unknown_recipient_lists_known_names_and_writes_nothing(mb: Mailbox) -> None:
    """A typo'd recipient is refused at send time with every valid name; no row is written."""
    before = counts(mb.path)
    with pytest.raises(errors.RecipientUnknown) as info:
        mb.send("alice", "bobb", "hi")
    assert info.value.recipient == "bobb"
    assert info.value.known == ["user", "alice", "bob", "carol"]
    assert "bob" in str(info.value)
    assert counts(mb.path) == before


def test_message_to_offline_agent_waits_for_it(mb: Mailbox) -> None:
    """A registered agent that is not running still gets its messages, claimable when it comes
    back.
    """
    mb.update_agent("bob", state="stopped", heartbeat=False)
    m = mb.send("alice", "bob", "for later")
    assert mb.pending_count("bob") == 1
    mb.update_agent("bob", state="running")
    assert [x.id for x in mb.claim("bob", owner="bob-1")] == [m.id]


def test_send_refuses_response_kind(mb: Mailbox) -> None:
    """Responses are made by reply() only (it enforces one per request)."""
    with pytest.raises(ValueError, match="reply"):
        mb.send("alice", "bob", "x", kind="response")  # type: ignore[arg-type]


def test_request_without_wait_records_no_wait_edge(mb: Mailbox) -> None:
    """A fire-and-forget request (no wait_s) does not count as waiting."""
    mb.request("alice", "bob", "q")
    assert counts(mb.path)["waits"] == 0
    mb.request("bob", "alice", "q", wait_s=30)  # no cycle: alice is not blocked


def test_would_deadlock_direct(mb: Mailbox) -> None:
    """B asking A while A waits on B is refused at once, naming the cycle, and nothing is
    written."""
    mb.request("alice", "bob", "q1", wait_s=30)
    before = counts(mb.path)
    with pytest.raises(errors.WouldDeadlock) as info:
        mb.request("bob", "alice", "q2", wait_s=30)
    assert info.value.detail == "bob -> alice -> bob"
    assert info.value.code == "would_deadlock"
    assert counts(mb.path) == before


def test_would_deadlock_through_a_chain(mb: Mailbox) -> None:
    """A waits on B, B waits on C: C asking A would close the cycle C -> A -> B -> C."""
    mb.request("alice", "bob", "q1", wait_s=30)
    mb.request("bob", "carol", "q2", wait_s=30)
    with pytest.raises(errors.WouldDeadlock) as info:
        mb.request("carol", "alice", "q3", wait_s=30)
    assert info.value.detail == "carol -> alice -> bob -> carol"


def test_asking_yourself_while_waiting_is_a_deadlock(mb: Mailbox) -> None:
    """An agent cannot block waiting on its own reply."""
    with pytest.raises(errors.WouldDeadlock, match="alice -> alice"):
        mb.request("alice", "alice", "q", wait_s=5)


def test_wait_edge_expires_after_wait_s(mb: Mailbox, clock: FakeClock) -> None:
    """Once the waiter's wait_s has passed, it no longer blocks anyone's ask."""
    mb.request("alice", "bob", "q1", wait_s=30)
    clock.advance(31)
    mb.request("bob", "alice", "q2", wait_s=30)


def test_reply_clears_the_wait_edge(mb: Mailbox) -> None:
    """After B answers A, B may ask A (A no longer waits)."""
    r = mb.request("alice", "bob", "q1", wait_s=30)
    mb.reply(r.id, "bob", "a1")
    mb.request("bob", "alice", "q2", wait_s=30)


def test_broadcast_reaches_each_agent_once_but_not_sender_user_or_supervisor(
    mb: Mailbox,
) -> None:
    """broadcast() writes one 'broadcast' per registered agent except the sender, user and
    supervisor.
    """
    mb.register_supervisor(1, {})
    sent = mb.broadcast("alice", "standup", ttl_s=10)
    assert sorted(m.recipient for m in sent) == ["bob", "carol"]
    assert {m.kind for m in sent} == {"broadcast"}
    assert mb.pending_count("bob") == 1
    assert mb.pending_count("alice") == 0
    assert mb.pending_count(SUPERVISOR) == 0


def test_reply_is_a_response_to_the_requester(mb: Mailbox) -> None:
    """reply() addresses the request's sender, correlated to the request."""
    r = mb.request("alice", "bob", "2+2?")
    resp = mb.reply(r.id, "bob", 4)
    assert (resp.kind, resp.sender, resp.recipient) == ("response", "bob", "alice")
    assert resp.correlation_id == r.id
    assert resp.body == 4
    assert mb.find_reply(r.id) == resp


def test_second_reply_is_refused(mb: Mailbox) -> None:
    """Exactly one response per request: the second reply raises AlreadyReplied, writes nothing."""
    r = mb.request("alice", "bob", "q")
    mb.reply(r.id, "bob", "first")
    before = counts(mb.path)
    with pytest.raises(errors.AlreadyReplied):
        mb.reply(r.id, "carol", "second")
    assert counts(mb.path) == before
    assert mb.find_reply(r.id) is not None
    assert mb.find_reply(r.id).body == "first"  # type: ignore[union-attr]


def test_one_reply_is_enforced_by_the_database_itself(mb: Mailbox) -> None:
    """Even plain SQL from another program cannot add a second response (UNIQUE index)."""
    r = mb.request("alice", "bob", "q")
    mb.reply(r.id, "bob", "first")
    conn = sqlite3.connect(mb.path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO messages (kind, sender, recipient, correlation_id, body) "
            "VALUES ('response', 'x', 'alice', ?, '1')",
            (r.id,),
        )
    conn.close()


def test_reply_to_a_notice_is_refused(mb: Mailbox) -> None:
    """Only requests take replies: NotARequest names the kind, nothing is written."""
    n = mb.send("alice", "bob", "fyi")
    before = counts(mb.path)
    with pytest.raises(errors.NotARequest) as info:
        mb.reply(n.id, "bob", "ok")
    assert info.value.kind == "notice"
    assert counts(mb.path) == before


def test_reply_to_missing_message_is_not_found(mb: Mailbox) -> None:
    """Replying to an id that does not exist raises MessageNotFound."""
    with pytest.raises(errors.MessageNotFound):
        mb.reply("nope", "bob", "ok")


def test_fail_request_gives_the_waiter_a_typed_error(mb: Mailbox) -> None:
    """fail_request() posts an error response: wait_for_reply raises the class for its code."""
    r = mb.request("alice", "bob", "q", wait_s=30)
    assert mb.fail_request(r.id, "recipient_failed", "bob crashed 5 times") is True
    with pytest.raises(errors.RecipientFailed) as info:
        mb.wait_for_reply(r.id, timeout_s=5)
    assert info.value.request_id == r.id
    assert info.value.detail == "bob crashed 5 times"
    failed = mb.get(r.id)
    assert (failed.status, failed.error) == ("dead", "recipient_failed")
    assert counts(mb.path)["waits"] == 0


def test_fail_request_after_a_reply_changes_nothing(mb: Mailbox) -> None:
    """A request already answered cannot be failed: False, and the reply stands."""
    r = mb.request("alice", "bob", "q")
    mb.reply(r.id, "bob", "ok")
    assert mb.fail_request(r.id, "recipient_failed") is False
    assert mb.wait_for_reply(r.id, timeout_s=5).body == "ok"
