"""Contract: putting messages in (send, batches, broadcast, request, reply, deadlocks)."""

from __future__ import annotations

import pytest
from contract_openers import everything
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_BODY_DEPTH,
    SUPERVISOR,
    USER,
    AsyncMailboxBackend,
    new_id,
)

Q = AsyncMailboxBackend


async def test_send_stores_a_pending_notice(q: Q, clock: FakeClock) -> None:
    """send() returns the stored message: pending notice, no attempts, TTL as expires_at."""
    m = await q.send("alice", "bob", {"text": "hi", "n": [1, 2]}, ttl_s=60, cause_id="c1")
    assert (m.kind, m.sender, m.recipient, m.status) == ("notice", "alice", "bob", "pending")
    assert m.body == {"text": "hi", "n": [1, 2]}
    assert (m.attempts, m.max_attempts) == (0, DEFAULT_MAX_ATTEMPTS)
    assert m.created_at == m.available_at == clock.now
    assert m.expires_at == clock.now + 60
    assert m.cause_id == "c1"
    assert await q.get(m.id) == m


async def test_ids_are_unique_short_and_sort_by_creation(q: Q) -> None:
    """Ids are 16-character strings that sort in creation order."""
    ids = [(await q.send("alice", "bob", i)).id for i in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == 16 for i in ids)
    assert sorted(ids) == ids


async def test_send_many_queues_a_batch_in_order(q: Q) -> None:
    """send_many() writes every (recipient, body), in the order given."""
    sent = await q.send_many("alice", [("bob", 1), ("carol", 2), ("bob", 3)], ttl_s=30)
    assert [(m.recipient, m.body) for m in sent] == [("bob", 1), ("carol", 2), ("bob", 3)]
    assert [m.body for m in await q.claim("bob", owner="w", limit=5)] == [1, 3]


async def test_send_many_refuses_a_bad_batch_whole(q: Q) -> None:
    """One unknown recipient or bad body in a batch and nothing of the batch is written."""
    before = await everything(q)
    with pytest.raises(errors.RecipientUnknown):
        await q.send_many("alice", [("bob", 1), ("nobody", 2)])
    with pytest.raises(errors.InvalidBody):
        await q.send_many("alice", [("bob", 1), ("bob", {3})])
    assert await everything(q) == before


async def test_user_is_always_a_valid_recipient(q: Q) -> None:
    """'user' receives messages without being registered."""
    assert await q.agent(USER) is None
    assert (await q.send("alice", USER, "done")).recipient == USER


async def test_unknown_recipient_lists_known_names_and_writes_nothing(q: Q) -> None:
    """A typo'd recipient is refused at send time with every valid name."""
    before = await everything(q)
    with pytest.raises(errors.RecipientUnknown) as info:
        await q.send("alice", "bobb", "hi")
    assert info.value.recipient == "bobb"
    assert info.value.known == ["user", "alice", "bob", "carol"]
    with pytest.raises(errors.RecipientUnknown):
        await q.request("alice", "bobb", "q", wait_s=5)
    assert await everything(q) == before


async def test_bad_bodies_are_refused(q: Q) -> None:
    """Bodies must be JSON and at most 1 MiB encoded."""
    with pytest.raises(errors.InvalidBody):
        await q.send("alice", "bob", {1, 2})
    with pytest.raises(errors.InvalidBody):
        await q.send("alice", "bob", float("nan"))
    with pytest.raises(errors.InvalidBody):
        await q.send("alice", "bob", "x" * (1024 * 1024 + 1))


def _nested(depth: int) -> list[object]:
    body: list[object] = []
    for _ in range(depth - 1):
        body = [body]
    return body


async def test_bodies_nested_past_the_limit_are_refused(q: Q) -> None:
    """Regression: a body some hundreds of levels deep was stored, and every reader that
    printed it then failed (RecursionError in queue ls, inbox --json, queue show); a few
    thousand levels failed the send with RecursionError, not InvalidBody. Nesting is
    bounded (a cycle counts as too deep); the deepest allowed body round-trips."""
    deep_in_a_tuple = (_nested(MAX_BODY_DEPTH + 5),)  # tuples are arrays in JSON too
    for body in (
        _nested(MAX_BODY_DEPTH + 1),
        _nested(5000),
        {"a": [_nested(MAX_BODY_DEPTH)]},
        deep_in_a_tuple,
    ):
        with pytest.raises(errors.InvalidBody, match="levels deep"):
            await q.send("alice", "bob", body)
    shallow = {"text": "[" * 500 + "{" * 500}  # brackets in text are no nesting
    await q.send("alice", "bob", shallow)
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(errors.InvalidBody):
        await q.send("alice", "bob", cycle)
    m = await q.send("alice", "bob", _nested(MAX_BODY_DEPTH))
    got = await q.claim("bob", owner="w", limit=5)
    assert [x.body for x in got] == [shallow, _nested(MAX_BODY_DEPTH)]
    assert got[1].id == m.id


async def test_the_largest_body_round_trips(q: Q) -> None:
    """A body just under the 1 MiB limit is stored and read back whole."""
    body = "é" * (512 * 1024 - 8)  # two bytes each in UTF-8
    m = await q.send("alice", "bob", body)
    (got,) = await q.claim("bob", owner="w")
    assert got.id == m.id
    assert got.body == body


async def test_message_to_offline_agent_waits_for_it(q: Q) -> None:
    """A registered agent that is not running still gets its messages."""
    await q.update_agent("bob", state="stopped", heartbeat=False)
    m = await q.send("alice", "bob", "for later")
    assert await q.pending_count("bob") == 1
    await q.update_agent("bob", state="running")
    assert [x.id for x in await q.claim("bob", owner="bob-1")] == [m.id]


async def test_send_refuses_response_kind(q: Q) -> None:
    """Responses are made by reply() only (it enforces one per request)."""
    with pytest.raises(ValueError, match="reply"):
        await q.send("alice", "bob", "x", kind="response")


async def test_request_without_wait_records_no_wait_edge(q: Q) -> None:
    """A fire-and-forget request (no wait_s) does not count as waiting."""
    await q.request("alice", "bob", "q")
    await q.request("bob", "alice", "q", wait_s=30)  # no cycle: alice is not blocked


async def test_would_deadlock_direct(q: Q) -> None:
    """B asking A while A waits on B is refused at once, naming the cycle; nothing written."""
    await q.request("alice", "bob", "q1", wait_s=30)
    before = await everything(q)
    with pytest.raises(errors.WouldDeadlock) as info:
        await q.request("bob", "alice", "q2", wait_s=30)
    assert info.value.detail == "bob -> alice -> bob"
    assert info.value.code == "would_deadlock"
    assert await everything(q) == before
    await q.request("carol", "alice", "q3", wait_s=30)  # the refused edge did not stay


async def test_would_deadlock_through_a_chain(q: Q) -> None:
    """A waits on B, B waits on C: C asking A would close the cycle C -> A -> B -> C."""
    await q.request("alice", "bob", "q1", wait_s=30)
    await q.request("bob", "carol", "q2", wait_s=30)
    with pytest.raises(errors.WouldDeadlock) as info:
        await q.request("carol", "alice", "q3", wait_s=30)
    assert info.value.detail == "carol -> alice -> bob -> carol"


async def test_would_deadlock_across_clients(opener: object, q: Q) -> None:
    """Wait-for edges are shared: a cycle through another client (machine) is refused."""
    other = await opener.open()  # type: ignore[attr-defined]
    await q.request("alice", "bob", "q1", wait_s=30)
    with pytest.raises(errors.WouldDeadlock):
        await other.request("bob", "alice", "q2", wait_s=30)


async def test_asking_yourself_while_waiting_is_a_deadlock(q: Q) -> None:
    """An agent cannot block waiting on its own reply."""
    with pytest.raises(errors.WouldDeadlock, match="alice -> alice"):
        await q.request("alice", "alice", "q", wait_s=5)


async def test_the_user_blocks_nobody(q: Q) -> None:
    """While `ask` from the CLI waits on alice (user -> alice), alice may still ask the
    human: any terminal answers as `user`, so it is no one blocked waiter (review I)."""
    await q.request(USER, "alice", "review this", wait_s=30)
    await q.request("alice", USER, "which branch?", wait_s=30)
    await q.request("bob", "alice", "q", wait_s=30)  # through alice -> user: no cycle
    await q.request(USER, "bob", "and you?", wait_s=30)  # bob -> alice -> user: no cycle
    with pytest.raises(errors.WouldDeadlock):  # agents still refuse their own cycles
        await q.request("alice", "bob", "q2", wait_s=30)


async def test_waited_requests_are_those_someone_waits_on(q: Q, clock: FakeClock) -> None:
    """What `stop` answers: the requests to an agent with a live wait-for edge, not a
    fire-and-forget one, not one answered, not one whose waiter's wait ran out."""
    waited = await q.request("alice", "bob", "q1", wait_s=30)
    cli = await q.request(USER, "bob", "q2", wait_s=30)  # the CLI's ask: someone waits
    await q.request("carol", "bob", "q3")  # nobody waits
    answered = await q.request("carol", "bob", "q4", wait_s=30)
    await q.reply(answered.id, "bob", "done")
    await q.request("bob", "carol", "q5", wait_s=30)  # bob's own wait is not on bob
    short = await q.request("dave", "bob", "q6", wait_s=5)
    assert set(await q.waited_requests("bob")) == {waited.id, cli.id, short.id}
    clock.advance(6)
    assert set(await q.waited_requests("bob")) == {waited.id, cli.id}
    assert await q.waited_requests("nobody") == []


async def test_a_request_made_again_under_its_id_is_waited_on_again(q: Q) -> None:
    """The relay's ask made again by a replayed turn (its id derived, review I.3): the
    first wait ended (its edge cleared); the second still counts for the deadlock check."""
    request_id = new_id()
    first = await q.request("alice", "bob", "q1", wait_s=30, message_id=request_id)
    with pytest.raises(errors.RequestTimeout):
        await q.wait_for_reply(first.id, 0.05)  # the wait ends, its edge with it
    await q.request("carol", "alice", "free?", wait_s=30)  # alice waits on nobody now
    again = await q.request("alice", "bob", "q1", wait_s=30, message_id=request_id)
    assert again.id == first.id
    with pytest.raises(errors.WouldDeadlock, match="bob -> alice -> bob"):
        await q.request("bob", "alice", "q2", wait_s=30)


async def test_a_request_made_again_after_it_ended_unanswered_is_not_waited_on(q: Q) -> None:
    """A replayed ask whose first request was failed meanwhile (its peer stopped): the
    request comes back as it is, dead, for the relay to ask anew, and leaves no wait edge
    (SQLite wrote one, so the peer's own ask of the asker was refused as a deadlock)."""
    request_id = new_id()
    await q.request("alice", "bob", "q1", wait_s=30, message_id=request_id)
    assert await q.fail_request(request_id, "recipient_stopped", "bob was stopped")
    again = await q.request("alice", "bob", "q1", wait_s=30, message_id=request_id)
    assert (again.id, again.status) == (request_id, "dead")
    await q.request("bob", "alice", "q2", wait_s=30)  # alice waits on nobody


async def test_wait_edge_expires_after_wait_s(q: Q, clock: FakeClock) -> None:
    """Once the waiter's wait_s has passed, it no longer blocks anyone's ask."""
    await q.request("alice", "bob", "q1", wait_s=30)
    clock.advance(31)
    await q.request("bob", "alice", "q2", wait_s=30)


async def test_reply_clears_the_wait_edge(q: Q) -> None:
    """After B answers A, B may ask A (A no longer waits)."""
    r = await q.request("alice", "bob", "q1", wait_s=30)
    await q.reply(r.id, "bob", "a1")
    await q.request("bob", "alice", "q2", wait_s=30)


async def test_broadcast_reaches_each_agent_once_but_not_sender_user_or_supervisor(
    q: Q,
) -> None:
    """One 'broadcast' per registered agent except the sender, user and supervisor."""
    await q.register_supervisor(1, {})
    sent = await q.broadcast("alice", "standup", ttl_s=10)
    assert sorted(m.recipient for m in sent) == ["bob", "carol"]
    assert {m.kind for m in sent} == {"broadcast"}
    assert await q.pending_count("bob") == 1
    assert await q.pending_count("alice") == 0
    assert await q.pending_count(SUPERVISOR) == 0


async def test_reply_is_a_response_to_the_requester(q: Q) -> None:
    """reply() addresses the request's sender, correlated to the request."""
    r = await q.request("alice", "bob", "2+2?")
    resp = await q.reply(r.id, "bob", 4)
    assert (resp.kind, resp.sender, resp.recipient) == ("response", "bob", "alice")
    assert resp.correlation_id == r.id
    assert resp.body == 4
    assert await q.find_reply(r.id) == resp


async def test_second_reply_is_refused(opener: object, q: Q) -> None:
    """Exactly one response per request, from any client: the second raises AlreadyReplied."""
    other = await opener.open()  # type: ignore[attr-defined]
    r = await q.request("alice", "bob", "q")
    await q.reply(r.id, "bob", "first")
    before = await everything(q)
    with pytest.raises(errors.AlreadyReplied):
        await q.reply(r.id, "carol", "second")
    with pytest.raises(errors.AlreadyReplied):
        await other.reply(r.id, "carol", "third")
    assert await everything(q) == before
    reply = await q.find_reply(r.id)
    assert reply is not None
    assert reply.body == "first"


async def test_reply_to_a_notice_is_refused(q: Q) -> None:
    """Only requests take replies: NotARequest names the kind, nothing is written."""
    n = await q.send("alice", "bob", "fyi")
    before = await everything(q)
    with pytest.raises(errors.NotARequest) as info:
        await q.reply(n.id, "bob", "ok")
    assert info.value.kind == "notice"
    assert await everything(q) == before


async def test_reply_to_missing_message_is_not_found(q: Q) -> None:
    """Replying to an id that does not exist raises MessageNotFound."""
    with pytest.raises(errors.MessageNotFound):
        await q.reply("nope", "bob", "ok")
    with pytest.raises(errors.MessageNotFound):
        await q.get("../../etc")


async def test_fail_request_gives_the_waiter_a_typed_error(q: Q) -> None:
    """fail_request() posts an error response: wait_for_reply raises the class for its code."""
    r = await q.request("alice", "bob", "q", wait_s=30)
    assert await q.fail_request(r.id, "recipient_failed", "bob crashed 5 times") is True
    with pytest.raises(errors.RecipientFailed) as info:
        await q.wait_for_reply(r.id, timeout_s=5)
    assert info.value.request_id == r.id
    assert info.value.detail == "bob crashed 5 times"
    failed = await q.get(r.id)
    assert (failed.status, failed.error) == ("dead", "recipient_failed")
    await q.request("bob", "alice", "q2", wait_s=30)  # alice's edge is gone


async def test_fail_request_after_a_reply_changes_nothing(q: Q) -> None:
    """A request already answered cannot be failed: False, and the reply stands."""
    r = await q.request("alice", "bob", "q")
    await q.reply(r.id, "bob", "ok")
    assert await q.fail_request(r.id, "recipient_failed") is False
    assert (await q.wait_for_reply(r.id, timeout_s=5)).body == "ok"


async def test_a_send_repeated_with_its_message_id_is_stored_once(q: Q, clock: FakeClock) -> None:
    """A caller that chose the id (new_id()) can send again after an error that left it
    unknown whether the first try was stored (the relay's tools in a queue outage): the
    same message under that id is returned, not stored twice; a request likewise, with
    its wait. Another message under a taken id is refused, a made-up id too."""
    mid = new_id()
    first = await q.send("alice", "bob", "once", message_id=mid)
    clock.advance(1)  # a retry comes later
    again = await q.send("alice", "bob", "once", message_id=mid)
    assert first.id == again.id == mid
    rid = new_id()
    asked = await q.request("alice", "bob", "q?", message_id=rid, wait_s=30)
    assert (await q.request("alice", "bob", "q?", message_id=rid, wait_s=30)).id == asked.id
    assert sorted(m.id for m in await q.claim("bob", owner="w", limit=10)) == sorted([mid, rid])
    with pytest.raises(errors.MessageIdTaken):
        await q.send("alice", "bob", "something else", message_id=mid)
    with pytest.raises(errors.MessageIdTaken):
        await q.send("carol", "bob", "once", message_id=mid)
    with pytest.raises(ValueError, match="message_id"):
        await q.send("alice", "bob", "x", message_id="m.1 *")
    assert len(await q.list()) == 2
