"""Contract: calls racing one another or reusing what another call holds (reviewer A's
findings on the NATS backend; SQLite already behaved so, and must keep doing it)."""

from __future__ import annotations

import anyio
import pytest
from contract_openers import Opener
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import AsyncMailboxBackend, new_id

Q = AsyncMailboxBackend


async def test_two_retries_at_once_leave_the_message_claimable(q: Q, opener: Opener) -> None:
    """Two operators run `queue retry ID` at the same moment: one revives the message,
    the other is refused ("not dead"), and the message can be claimed. On NATS the
    loser's error path used to delete the hint the winner had just written: the
    message stayed pending for ever, found by no claim."""
    other = await opener.open()
    m = await q.send("alice", "bob", "important", max_attempts=1)
    await q.claim("bob", owner="w")
    await q.nack(m.id, owner="w", error="boom")
    results: list[object] = []

    async def retry(backend: Q) -> None:
        try:
            results.append(await backend.retry(m.id))
        except errors.QueueError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(retry, q)
        tg.start_soon(retry, other)
    revived = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert (len(revived), len(refused)) == (1, 1)
    assert "not dead" in str(refused[0])
    assert [c.id for c in await q.claim("bob", owner="w2")] == [m.id]


async def test_a_refused_reuse_of_an_id_leaves_the_owners_wait_edge(q: Q) -> None:
    """A waiting request under an id already taken is refused (MessageIdTaken) and
    changes nothing: the request that holds the id still waits on bob, so bob asking
    alice with a wait is a deadlock, refused. On NATS the refused call used to
    overwrite the other request's wait-for edge, then delete it."""
    taken = new_id()
    await q.request("alice", "bob", "A waits on bob", wait_s=600, message_id=taken)
    with pytest.raises(errors.MessageIdTaken):
        await q.request("carol", "bob", "reuses the id", wait_s=600, message_id=taken)
    with pytest.raises(errors.WouldDeadlock):
        await q.request("bob", "alice", "bob waits on alice", wait_s=600)


async def test_a_repeated_waiting_request_is_stored_once(q: Q) -> None:
    """The same waiting request sent again under its own id (a caller's retry) is the
    same request, not a taken id, and its edge still stands."""
    mid = new_id()
    first = await q.request("alice", "bob", "once", wait_s=600, message_id=mid)
    again = await q.request("alice", "bob", "once", wait_s=600, message_id=mid)
    assert again.id == first.id == mid
    assert [m.id for m in await q.list(recipient="bob")] == [mid]
    with pytest.raises(errors.WouldDeadlock):
        await q.request("bob", "alice", "bob waits on alice", wait_s=600)


async def test_sweep_counts_the_messages_it_expired(q: Q, clock: FakeClock) -> None:
    """sweep's ``expired`` is how many messages went dead past their TTL, whatever wait
    edges it also looked at (on NATS the edge loop reused the counter's name)."""
    for i in range(3):
        await q.send("alice", "bob", f"m{i}", ttl_s=5)
    await q.request("carol", "alice", "a live wait", wait_s=3600)
    clock.advance(10)
    result = await q.sweep()
    assert result.expired == 3
    assert len(await q.dead()) == 3
