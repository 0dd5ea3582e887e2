"""Contract: taking messages out: claim, ack, nack, extend, release; TTL, attempts, sweep."""

from __future__ import annotations

import anyio
import pytest
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend
from orchestrator.mailbox.backend import DIED_HOLDING
from orchestrator.supervision.leftovers import recover_leases

Q = AsyncMailboxBackend


async def test_claim_leases_oldest_first_up_to_limit(q: Q, clock: FakeClock) -> None:
    """claim() takes the oldest pending messages, counts the attempt and stamps lease and owner."""
    sent = [await q.send("alice", "bob", i) for i in range(5)]
    got = await q.claim("bob", owner="bob-1", lease_s=10, limit=3)
    assert [m.id for m in got] == [m.id for m in sent[:3]]
    for m in got:
        assert (m.status, m.attempts, m.lease_owner) == ("leased", 1, "bob-1")
        assert m.lease_expires == clock.now + 10
        assert m.claimed_at == clock.now
    assert [m.id for m in await q.claim("bob", owner="bob-1", limit=10)] == [m.id for m in sent[3:]]
    assert await q.claim("bob", owner="bob-1") == []


async def test_claim_only_takes_the_recipients_messages(q: Q) -> None:
    """A consumer for bob never sees alice's messages."""
    await q.send("bob", "alice", "for alice")
    assert await q.claim("bob", owner="bob-1") == []
    assert len(await q.claim("alice", owner="alice-1")) == 1


async def test_responses_are_not_claimed(q: Q) -> None:
    """Replies go to the waiter (wait_for_reply), not into the requester's work queue."""
    r = await q.request("alice", "bob", "q")
    (req,) = await q.claim("bob", owner="bob-1")
    await q.reply(req.id, "bob", "a")
    assert await q.claim("alice", owner="alice-1") == []
    assert await q.pending_count("alice") == 0
    assert (await q.wait_for_reply(r.id, timeout_s=5)).body == "a"


async def test_ack_marks_done(q: Q, clock: FakeClock) -> None:
    """ack() by the lease owner moves the message to done with a completion time."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="bob-1")
    clock.advance(1)
    await q.ack([m.id], owner="bob-1")
    done = await q.get(m.id)
    assert (done.status, done.done_at, done.lease_owner) == ("done", clock.now, "bob-1")


async def test_ack_by_another_owner_is_lease_lost_and_acks_nothing(q: Q) -> None:
    """A batch ack is all or nothing: one id not held by the owner fails the whole batch."""
    a = await q.send("alice", "bob", "a")
    b = await q.send("alice", "bob", "b")
    await q.claim("bob", owner="bob-1")
    await q.claim("bob", owner="bob-2")
    with pytest.raises(errors.LeaseLost) as info:
        await q.ack([a.id, b.id], owner="bob-1")
    assert (info.value.message_id, info.value.owner) == (b.id, "bob-1")
    assert (await q.get(a.id)).status == "leased"


async def test_ack_twice_is_refused(q: Q) -> None:
    """A message is acked once; acking it again raises LeaseLost."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="bob-1")
    await q.ack([m.id], owner="bob-1")
    with pytest.raises(errors.LeaseLost):
        await q.ack([m.id], owner="bob-1")


async def test_nack_returns_the_message_after_a_delay(q: Q, clock: FakeClock) -> None:
    """nack() puts the message back, claimable again once delay_s has passed; the reason is kept."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="bob-1")
    back = await q.nack(m.id, owner="bob-1", error="tool crashed", delay_s=30)
    assert (back.status, back.attempts, back.error_detail) == ("pending", 1, "tool crashed")
    assert back.available_at == clock.now + 30
    assert await q.claim("bob", owner="bob-1") == []
    clock.advance(30)
    again = await q.claim("bob", owner="bob-1")
    assert [(x.id, x.attempts) for x in again] == [(m.id, 2)]


async def test_claim_expires_a_ttl_passed_message_still_waiting_out_a_nack_delay(
    q: Q, clock: FakeClock
) -> None:
    """Regression (Hypothesis, fresh CI seed): a message nacked with a delay whose TTL then
    passes is marked dead 'expired' by the next claim, though nothing is claimable yet.
    The lock-free probe before a claim had skipped the TTL repair in that case."""
    m = await q.send("alice", "bob", "x", ttl_s=1.0, max_attempts=2)
    await q.claim("bob", owner="bob-1", lease_s=2.0)
    clock.advance(1.0)
    await q.nack(m.id, owner="bob-1", delay_s=5.0)
    assert await q.claim("bob", owner="bob-2") == []
    gone = await q.get(m.id)
    assert (gone.status, gone.error) == ("dead", "expired")


async def test_nack_on_the_last_attempt_goes_dead(q: Q) -> None:
    """After max_attempts deliveries a nack sends the message to the dead letters
    ('max_attempts')."""
    m = await q.send("alice", "bob", "poison", max_attempts=2)
    for _ in range(2):
        await q.claim("bob", owner="bob-1")
        last = await q.nack(m.id, owner="bob-1", error="boom")
    assert (last.status, last.error, last.error_detail) == ("dead", "max_attempts", "boom")
    assert [d.id for d in await q.dead()] == [m.id]
    assert await q.claim("bob", owner="bob-1") == []


async def test_nack_by_a_stranger_is_lease_lost(q: Q) -> None:
    """Only the lease owner may give a message back."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="bob-1")
    with pytest.raises(errors.LeaseLost):
        await q.nack(m.id, owner="bob-2")
    assert (await q.get(m.id)).status == "leased"


async def test_expired_lease_is_requeued_by_sweep(q: Q, clock: FakeClock) -> None:
    """A consumer that dies holding a message loses nothing: sweep returns it, the old owner's ack
    fails.
    """
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="crashed", lease_s=5)
    clock.advance(6)
    result = await q.sweep()
    assert (result.requeued, result.dead) == (1, 0)
    (again,) = await q.claim("bob", owner="bob-2")
    assert (again.id, again.attempts) == (m.id, 2)
    with pytest.raises(errors.LeaseLost):
        await q.ack([m.id], owner="crashed")
    await q.ack([m.id], owner="bob-2")


async def test_expired_lease_on_the_last_attempt_goes_dead(q: Q, clock: FakeClock) -> None:
    """A message whose consumer keeps dying is dead-lettered once its attempts are used up."""
    m = await q.send("alice", "bob", "x", max_attempts=1)
    await q.claim("bob", owner="crashed", lease_s=5)
    clock.advance(6)
    assert (await q.sweep()).dead == 1
    dead = await q.get(m.id)
    assert (dead.status, dead.error) == ("dead", "max_attempts")


async def test_claim_reclaims_expired_leases_without_a_sweep(q: Q, clock: FakeClock) -> None:
    """With nobody sweeping, a crashed consumer's message still comes back to the next claim."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="crashed", lease_s=5)
    assert await q.claim("bob", owner="bob-2") == []
    clock.advance(6)
    assert [x.id for x in await q.claim("bob", owner="bob-2")] == [m.id]


async def test_claim_kills_a_handed_back_message_past_its_ttl(q: Q, clock: FakeClock) -> None:
    """A crashed consumer's message whose TTL ran out while it was leased is marked
    dead 'expired' by the next claim (not left pending), and is not handed out."""
    m = await q.send("alice", "bob", "x", ttl_s=10)
    await q.claim("bob", owner="crashed", lease_s=30)
    clock.advance(31)
    assert await q.claim("bob", owner="bob-2") == []
    dead = await q.get(m.id)
    assert (dead.status, dead.error) == ("dead", "expired")


async def test_claim_kills_pending_messages_past_their_ttl(q: Q, clock: FakeClock) -> None:
    """claim() marks its recipient's undelivered messages past their TTL dead and
    hands out the live ones."""
    old = await q.send("alice", "bob", "old", ttl_s=5)
    clock.advance(6)
    new = await q.send("alice", "bob", "new")
    assert [x.id for x in await q.claim("bob", owner="bob-1", limit=5)] == [new.id]
    assert (await q.get(old.id)).status == "dead"


async def test_extend_keeps_a_slow_message(q: Q, clock: FakeClock) -> None:
    """extend() pushes the lease so a long turn is not taken away; a stranger cannot extend."""
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="bob-1", lease_s=5)
    clock.advance(4)
    await q.extend([m.id], owner="bob-1", lease_s=10)
    clock.advance(4)
    assert (await q.sweep()).requeued == 0
    assert (await q.get(m.id)).lease_expires == clock.now + 6
    with pytest.raises(errors.LeaseLost):
        await q.extend([m.id], owner="bob-2", lease_s=10)


async def test_release_gives_back_without_counting_the_attempt(q: Q) -> None:
    """release(owner) on graceful shutdown requeues everything the owner held, attempts
    unchanged."""
    for i in range(3):
        await q.send("alice", "bob", i)
    await q.claim("bob", owner="bob-1", limit=2)
    assert await q.release("bob-1") == 2
    assert {(m.status, m.attempts) for m in await q.list(recipient="bob")} == {("pending", 0)}


async def test_ttl_expired_message_is_not_claimed_and_sweep_kills_it(
    q: Q, clock: FakeClock
) -> None:
    """A message not delivered within its TTL is never claimed; sweep moves it to dead
    ('expired')."""
    m = await q.send("alice", "bob", "stale soon", ttl_s=10)
    clock.advance(11)
    assert await q.pending_count("bob") == 1
    assert (await q.sweep()).expired == 1
    dead = await q.get(m.id)
    assert (dead.status, dead.error) == ("dead", "expired")
    assert await q.claim("bob", owner="bob-1") == []


async def test_claim_skips_expired_messages_even_before_a_sweep(q: Q, clock: FakeClock) -> None:
    """claim() itself never hands out a message past its TTL; it dead-letters it."""
    old = await q.send("alice", "bob", "old", ttl_s=10)
    clock.advance(11)
    fresh = await q.send("alice", "bob", "fresh")
    assert [m.id for m in await q.claim("bob", owner="bob-1", limit=5)] == [fresh.id]
    assert (await q.get(old.id)).error == "expired"


async def test_racing_consumers_on_two_clients_each_get_a_message_once(
    opener: object, q: Q
) -> None:
    """Two clients (processes, machines) claiming the same inbox at once: every message
    is handed to exactly one of them, exactly once."""

    other = await opener.open()  # type: ignore[attr-defined]
    sent = {(await q.send("alice", "bob", i)).id for i in range(40)}
    taken: list[tuple[str, str]] = []

    async def consume(client: Q, owner: str) -> None:
        while True:
            got = await client.claim("bob", owner=owner, limit=3)
            if not got:
                return
            taken.extend((m.id, owner) for m in got)
            await client.ack([m.id for m in got], owner=owner)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, q, "w1")
            tg.start_soon(consume, other, "w2")
    assert sorted(i for i, _ in taken) == sorted(sent)
    assert {(await q.get(i)).status for i in sent} == {"done"}


async def test_nack_with_a_dead_code_goes_dead_at_once(q: Q) -> None:
    """A failure that would only repeat: dead now with that code, attempts left or not."""
    m = await q.send("alice", "bob", "x", max_attempts=5)
    await q.claim("bob", owner="bob-1")
    dead = await q.nack(m.id, owner="bob-1", error="over budget", dead_code="budget_exceeded")
    assert (dead.status, dead.error, dead.error_detail) == (
        "dead",
        "budget_exceeded",
        "over budget",
    )
    assert await q.claim("bob", owner="bob-1") == []


async def test_release_of_some_ids_hands_back_only_those(q: Q) -> None:
    """release(owner, ids) gives back just those claims, attempts uncounted."""
    sent = [await q.send("alice", "bob", i) for i in range(3)]
    await q.claim("bob", owner="bob-1", limit=3)
    assert await q.release("bob-1", [sent[0].id, "nope"]) == 1
    assert [(m.id, m.status, m.attempts) for m in await q.list(recipient="bob")][::-1] == [
        (sent[0].id, "pending", 0),
        (sent[1].id, "leased", 1),
        (sent[2].id, "leased", 1),
    ]


async def test_a_dead_supervisors_claims_go_back_with_the_attempt_counted(q: Q) -> None:
    """`up` after a supervisor died holding messages: each goes back pending with its
    attempt counted, as a dying session's does, or dead with max_attempts when that was its
    last (before, the attempt was taken back: a message the supervisor died on every time
    came back for ever); a consumer's lease that is no supervisor's is left alone."""
    dead = f"{SUPERVISOR_OWNER_PREFIX}999-dead:bob:x"
    again = await q.send("alice", "bob", "again")
    last = await q.send("alice", "bob", "last", max_attempts=1)
    script = await q.send("alice", "bob", "script's")
    assert len(await q.claim("bob", owner=dead, limit=2)) == 2
    assert len(await q.claim("bob", owner="a-script", limit=1)) == 1
    await recover_leases(q, f"{SUPERVISOR_OWNER_PREFIX}1-live")
    back = await q.get(again.id)
    assert (back.status, back.attempts, back.lease_owner) == ("pending", 1, None)
    gone = await q.get(last.id)
    assert (gone.status, gone.error, gone.error_detail) == ("dead", "max_attempts", DIED_HOLDING)
    assert (await q.get(script.id)).status == "leased"
    (next_try,) = await q.claim("bob", owner="bob-2")
    assert (next_try.id, next_try.attempts) == (again.id, 2)


async def test_a_request_a_dead_supervisor_held_on_its_last_attempt_answers_its_asker(
    q: Q,
) -> None:
    """Its asker reads turn_failed and why, as when a session dies on a request's last
    attempt (give_back.inflight, review I.4); before, the request went dead with the
    queue's `max_attempts` and the asker read `expired`, as for a request never delivered.
    One already answered (the session replied, then the supervisor died) keeps its reply."""
    dead = f"{SUPERVISOR_OWNER_PREFIX}999-dead:bob:x"
    asked = await q.request("alice", "bob", "last", max_attempts=1)
    answered = await q.request("alice", "bob", "replied", max_attempts=1)
    assert len(await q.claim("bob", owner=dead, limit=2)) == 2
    await q.reply(answered.id, "bob", "done")
    await recover_leases(q, f"{SUPERVISOR_OWNER_PREFIX}1-live")
    failed = await q.find_reply(asked.id)
    assert failed is not None
    assert failed.error == errors.TurnFailed.code
    assert DIED_HOLDING in (failed.error_detail or "")
    assert (await q.get(asked.id)).status == "dead"
    kept = await q.find_reply(answered.id)
    assert kept is not None
    assert (kept.error, kept.body) == (None, "done")
    assert (await q.get(answered.id)).status == "dead"
