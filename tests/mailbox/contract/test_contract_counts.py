"""Contract: what `ps` and `top` read of the queue each refresh, the pending and leased
messages (``list`` by those statuses: on NATS through their hints), ``pending_counts``
and ``status_counts``, agree with the whole listing after every kind of change, made by
this client or another one (the NATS client keeps a tally between calls: tally.py)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from contract_openers import Opener
from mailbox_workers.support import FakeClock

from orchestrator.mailbox import AsyncMailboxBackend
from orchestrator.mailbox.model import STATUSES, Message

Q = AsyncMailboxBackend


async def listed(q: Q) -> list[Message]:
    """Every message, oldest first: the truth both methods are checked against."""
    return list(reversed(await q.list(limit=1_000_000)))


async def assert_agrees(q: Q) -> None:
    every = await listed(q)
    for status in ("pending", "leased"):
        want = [m for m in reversed(every) if m.status == status]
        assert await q.list(status=status, limit=1_000_000) == want
        assert await q.list(status=status, limit=2) == want[:2]
        for name in ("alice", "bob", "carol"):
            mine = [m for m in want if m.recipient == name]
            assert await q.list(status=status, recipient=name) == mine
            assert await q.list(status=status, sender=name) == [m for m in want if m.sender == name]
    waiting = Counter(m.recipient for m in every if m.status == "pending" and m.kind != "response")
    assert await q.pending_counts() == dict(waiting)
    tally = Counter(m.status for m in every if m.kind != "response")
    assert await q.status_counts(STATUSES) == {s: tally[s] for s in STATUSES}
    assert await q.status_counts() == {s: tally[s] for s in ("pending", "leased", "dead")}


async def test_pending_and_leased_are_listed_and_counted_as_stored(q: Q, clock: FakeClock) -> None:
    """Done and dead messages and responses are not among them; each message is as
    stored, newest first; pending_counts leaves out recipients with none waiting."""
    assert await q.list(status="leased") == []
    assert await q.pending_counts() == {}
    done = await q.send("alice", "bob", "done soon")
    await q.ack([m.id for m in await q.claim("bob", owner="w")], owner="w")
    request = await q.request("alice", "bob", "question")
    (held,) = await q.claim("bob", owner="w")
    await q.reply(request.id, "bob", "answer")  # a response: never waiting
    doomed = await q.send("alice", "carol", "doomed")
    (d,) = await q.claim("carol", owner="w")
    await q.nack(d.id, owner="w", dead_code="bad")
    clock.advance(1)
    waiting = [await q.send("carol", "bob", i) for i in range(2)]
    later = await q.send("bob", "alice", "later")
    assert await q.list(status="leased") == [await q.get(held.id)]
    pending = await q.list(status="pending")
    assert [m.id for m in pending] == [later.id, waiting[1].id, waiting[0].id]
    assert {done.id, doomed.id}.isdisjoint(m.id for m in pending)
    assert await q.pending_counts() == {"bob": 2, "alice": 1}
    await assert_agrees(q)


async def test_status_counts_follow_each_change_from_this_client_and_another(
    opener: Opener, q: Q, clock: FakeClock
) -> None:
    """One client asks after each change (as `top` does once a second) while another
    changes the queue: send, claim, ack, nack, dead letters, retry, lease and TTL expiry
    by sweep, purge (keys removed), sweep's pruning of old done messages."""
    other = await opener.open()
    await assert_agrees(q)
    sent = [await other.send("alice", "bob", i) for i in range(6)]
    await assert_agrees(q)
    batch = await other.claim("bob", owner="w", limit=4, lease_s=30)
    await assert_agrees(q)
    await other.ack([batch[0].id, batch[1].id], owner="w")
    await assert_agrees(q)
    await other.nack(batch[2].id, owner="w", dead_code="bad")
    await assert_agrees(q)
    await other.retry(batch[2].id)
    await assert_agrees(q)
    await other.send("alice", "carol", "short-lived", ttl_s=5)
    clock.advance(60)  # batch[3]'s lease and the TTL run out
    await other.sweep()
    await assert_agrees(q)
    assert (await q.status_counts())["dead"] == 1  # the expired one
    assert await other.purge(statuses=("dead",)) == 1  # its key removed from the bucket
    await assert_agrees(q)
    clock.advance(2 * 86400)
    assert (await other.sweep(retention_s=86400)).pruned == 2  # the two done ones
    await assert_agrees(q)
    assert await other.purge(statuses=("pending", "leased")) == len(sent) - 2
    await assert_agrees(q)
    assert await q.status_counts(STATUSES) == dict.fromkeys(STATUSES, 0)


async def test_status_counts_stay_right_through_random_changes(
    opener: Opener, q: Q, clock: FakeClock
) -> None:
    """Sixty random operations by two clients, checked after each (seeded: the same
    sequence every run)."""
    other = await opener.open()
    rng = random.Random(14)
    names = ("alice", "bob", "carol")
    for _ in range(60):
        client = rng.choice((q, other))
        who = rng.choice(names)
        step = rng.randrange(7)
        if step <= 1:
            await client.send(rng.choice(names), who, "x", ttl_s=rng.choice((None, 30)))
        elif step == 2:
            await client.claim(who, owner=who, limit=2, lease_s=rng.choice((10, 100)))
        elif step == 3:
            held = [m.id for m in await client.list(status="leased", recipient=who)]
            if held:
                await client.ack(held[:1], owner=who)
        elif step == 4:
            held = [m.id for m in await client.list(status="leased", recipient=who)]
            if held:
                await client.nack(held[0], owner=who, dead_code=rng.choice((None, "bad")))
        elif step == 5:
            dead = await client.dead()
            if dead:
                await client.retry(dead[0].id)
        else:
            clock.advance(rng.choice((5, 40)))
            await client.sweep(retention_s=rng.choice((30.0, 86400.0)))
        await assert_agrees(q)
    await other.purge(statuses=STATUSES)
    await assert_agrees(q)


async def test_status_counts_refuses_an_unknown_status(q: Q) -> None:
    with pytest.raises(ValueError, match="unknown status 'lost'"):
        await q.status_counts(("pending", "lost"))
    assert await q.status_counts(()) == {}


async def test_status_counts_of_a_long_queue_read_first_by_another_client(
    opener: Opener, q: Q
) -> None:
    """A client that comes to a queue of 80 messages (as `top` comes to a working
    team's: on NATS its first read is streamed) counts them all, and then follows."""
    for i in range(80):
        await q.send("alice", ("bob", "carol")[i % 2], i)
    for m in await q.claim("bob", owner="w", limit=30):
        await q.ack([m.id], owner="w")
    (m,) = await q.claim("carol", owner="w")
    await q.nack(m.id, owner="w", dead_code="bad")
    await q.claim("carol", owner="w", limit=3)
    late = await opener.open()
    await assert_agrees(late)
    assert await late.status_counts() == {"pending": 46, "leased": 3, "dead": 1}
    await q.send("bob", "alice", "one more")
    await q.purge(statuses=("dead",))
    await assert_agrees(late)
