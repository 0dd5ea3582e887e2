"""Contract: the registry, the waits, and looking after the queue (list, trace, dead
letters, retry, purge, sweep)."""

from __future__ import annotations

import anyio
import pytest
from contract_openers import Opener
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import SUPERVISOR, AsyncMailboxBackend

Q = AsyncMailboxBackend


# --- registry ---------------------------------------------------------------------


async def test_register_records_every_field(backend: Q, clock: FakeClock) -> None:
    """register() stores name, description, pid, state, meta and stamps both times."""
    info = await backend.register(
        "alice", "writes code", pid=42, state="running", meta={"session": "s1"}
    )
    assert (info.name, info.description, info.pid, info.state) == (
        "alice",
        "writes code",
        42,
        "running",
    )
    assert info.meta == {"session": "s1"}
    assert info.registered_at == info.heartbeat_at == clock.now
    assert await backend.agent("alice") == info


async def test_register_again_updates_but_keeps_registration_time_and_meta(
    backend: Q, clock: FakeClock
) -> None:
    """A second register() is an upsert: new fields win, registered_at and meta stay."""
    first = await backend.register("alice", "old", meta={"turns": 3})
    clock.advance(10)
    second = await backend.register("alice", "new", pid=7, state="running")
    assert second.registered_at == first.registered_at
    assert second.heartbeat_at == clock.now
    assert (second.description, second.pid, second.state) == ("new", 7, "running")
    assert second.meta == {"turns": 3}
    assert len(await backend.agents()) == 1


async def test_agents_lists_by_name_and_unknown_agent_is_none(backend: Q) -> None:
    """agents() is sorted by name; agent() of an unknown name is None; every name the
    roster allows works (digits first, '-' and '_')."""
    for name in ("zed", "amy", "9-lives_x"):
        await backend.register(name)
    assert [a.name for a in await backend.agents()] == ["9-lives_x", "amy", "zed"]
    assert await backend.agent("nobody") is None
    m = await backend.send("amy", "9-lives_x", "hi")
    assert [x.id for x in await backend.claim("9-lives_x", owner="w")] == [m.id]


async def test_update_agent_merges_meta_and_beats_heart(backend: Q, clock: FakeClock) -> None:
    """update_agent() merges meta keys, changes only the fields given, refreshes the heartbeat."""
    await backend.register("alice", "d", pid=1, state="starting", meta={"session": "s1"})
    clock.advance(5)
    await backend.update_agent("alice", state="running", meta={"turns": 2})
    info = await backend.agent("alice")
    assert info is not None
    assert (info.state, info.pid, info.heartbeat_at) == ("running", 1, clock.now)
    assert info.meta == {"session": "s1", "turns": 2}
    await backend.update_agent("alice", state="stopped", pid=None, heartbeat=False)
    clock.advance(5)
    after = await backend.agent("alice")
    assert after is not None
    assert (after.pid, after.heartbeat_at) == (None, info.heartbeat_at)


async def test_update_unknown_agent_is_refused_with_known_names(backend: Q) -> None:
    """update_agent() on a name nobody registered raises RecipientUnknown."""
    await backend.register("alice")
    with pytest.raises(errors.RecipientUnknown) as info:
        await backend.update_agent("alcie", state="running")
    assert info.value.known == ["user", "alice"]


async def test_unregister_keeps_messages_waiting(backend: Q) -> None:
    """Removing an agent leaves its queued messages; they are claimable once it is back."""
    await backend.register("alice")
    sent = await backend.send("user", "alice", "hello")
    await backend.unregister("alice")
    assert await backend.agent("alice") is None
    assert (await backend.get(sent.id)).status == "pending"
    await backend.register("alice")
    assert [m.id for m in await backend.claim("alice", owner="w")] == [sent.id]


@pytest.mark.parametrize("name", ["  ", "", "a/b", "Bob", "bé", "user", "supervisor"])
async def test_malformed_and_reserved_names_are_refused(backend: Q, name: str) -> None:
    """The registry takes the roster's rule for names (issue 16 point 20): a malformed or
    reserved name is InvalidName, and no row is written or overwritten."""
    with pytest.raises(errors.InvalidName):
        await backend.register(name)
    assert await backend.agents() == []


async def test_the_supervisor_row_is_written_only_through_register_supervisor(
    backend: Q,
) -> None:
    """register_supervisor writes the reserved row (state running); unregister refuses the
    reserved rows on every backend."""
    await backend.register_supervisor(4242, {"instance": "x"})
    info = await backend.agent(SUPERVISOR)
    assert info is not None
    assert (info.pid, info.state) == (4242, "running")
    with pytest.raises(errors.InvalidName, match=r"^cannot unregister 'supervisor'"):
        await backend.unregister(SUPERVISOR)  # it said "cannot register"


# --- waits ------------------------------------------------------------------------


async def test_wait_for_reply_gets_the_answer_from_another_client(opener: Opener, q: Q) -> None:
    """A reply written through another client wakes the waiter."""
    other = await opener.open()
    r = await q.request("alice", "bob", "ping", wait_s=60)

    async def answer() -> None:
        (req,) = await other.claim("bob", owner="bob-1")
        await other.reply(req.id, "bob", "pong")

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            reply = await q.wait_for_reply(r.id, timeout_s=60)
    assert (reply.body, reply.sender, reply.correlation_id) == ("pong", "bob", r.id)


async def test_wait_for_reply_times_out_and_clears_its_wait(q: Q) -> None:
    """No reply in time: RequestTimeout carries the id and the wait; the edge is gone."""
    r = await q.request("alice", "bob", "anyone?", wait_s=60)
    with pytest.raises(errors.RequestTimeout) as info:
        await q.wait_for_reply(r.id, timeout_s=0.2)
    assert (info.value.request_id, info.value.waited_s, info.value.code) == (r.id, 0.2, "timeout")
    await q.request("bob", "alice", "my turn", wait_s=60)  # no longer a cycle
    await q.reply(r.id, "bob", "sorry, late")  # a timeout only stops the waiting
    assert (await q.wait_for_reply(r.id, timeout_s=1)).body == "sorry, late"


async def test_wait_for_reply_on_a_notice_is_refused(q: Q) -> None:
    n = await q.send("alice", "bob", "fyi")
    with pytest.raises(errors.NotARequest):
        await q.wait_for_reply(n.id, timeout_s=1)


async def test_expired_request_is_noticed_by_the_waiter_without_a_sweep(
    q: Q, clock: FakeClock
) -> None:
    """A request past its TTL ends the wait with RequestExpired even if nobody sweeps."""
    r = await q.request("alice", "bob", "q", ttl_s=5)
    clock.advance(6)
    with pytest.raises(errors.RequestExpired):
        await q.wait_for_reply(r.id, timeout_s=5)
    assert (await q.get(r.id)).error == "expired"


async def test_expired_request_after_sweep_gives_its_waiter_an_error(
    q: Q, clock: FakeClock
) -> None:
    r = await q.request("alice", "bob", "q", ttl_s=10, wait_s=60)
    clock.advance(11)
    await q.sweep()
    with pytest.raises(errors.RequestExpired) as info:
        await q.wait_for_reply(r.id, timeout_s=5)
    assert "expired" in info.value.detail


async def test_wait_for_messages_wakes_on_a_send_from_another_client(opener: Opener, q: Q) -> None:
    """An idle consumer wakes when another client sends to it."""
    other = await opener.open()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other.send, "alice", "bob", "hi")
            assert await q.wait_for_messages("bob", timeout_s=60) is True
    (m,) = await q.claim("bob", owner="bob-1")
    assert m.body == "hi"


async def test_wait_for_messages_times_out_false_and_returns_at_once_with_mail(q: Q) -> None:
    assert await q.wait_for_messages("bob", timeout_s=0.1) is False
    await q.send("alice", "bob", "already here")
    assert await q.wait_for_messages("bob", timeout_s=0) is True


async def test_wait_for_messages_sees_a_delayed_message_come_due(q: Q, clock: FakeClock) -> None:
    """A nacked message with a delay becomes claimable by the clock alone (no write)."""
    m = await q.send("alice", "bob", "retry me")
    await q.claim("bob", owner="bob-1")
    await q.nack(m.id, owner="bob-1", delay_s=0.3)
    assert await q.claim("bob", owner="bob-1") == []

    async def time_passes() -> None:
        await anyio.sleep(0.05)
        clock.advance(0.3)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(time_passes)
            assert await q.wait_for_messages("bob", timeout_s=60) is True
    assert [x.id for x in await q.claim("bob", owner="bob-1")] == [m.id]


async def test_cancelled_wait_for_reply_clears_its_wait(q: Q) -> None:
    """Cancelling a wait ends it promptly and removes the wait-for edge."""
    r = await q.request("alice", "bob", "q", wait_s=600)
    with anyio.fail_after(30):
        with anyio.move_on_after(0.2) as scope:
            await q.wait_for_reply(r.id, timeout_s=600)
    assert scope.cancelled_caught
    await q.request("bob", "alice", "my turn", wait_s=60)


# --- looking after the queue ------------------------------------------------------


async def test_list_filters_newest_first(q: Q) -> None:
    a = await q.send("alice", "bob", 1)
    b = await q.send("carol", "bob", 2)
    c = await q.send("alice", "carol", 3)
    assert [m.id for m in await q.list()] == [c.id, b.id, a.id]
    assert [m.id for m in await q.list(recipient="bob")] == [b.id, a.id]
    assert [m.id for m in await q.list(sender="alice", limit=1)] == [c.id]
    await q.claim("bob", owner="w")
    assert [m.id for m in await q.list(status="leased")] == [a.id]
    with pytest.raises(ValueError, match="status"):
        await q.list(status="nope")


async def test_related_follows_causes_and_replies(q: Q) -> None:
    """trace: the message, its reply and everything it caused, oldest first."""
    r = await q.request("user", "alice", "plan")
    sub = await q.request("alice", "bob", "part", cause_id=r.id)
    note = await q.send("bob", "carol", "fyi", cause_id=sub.id)
    sub_reply = await q.reply(sub.id, "bob", "done part")
    reply = await q.reply(r.id, "alice", "plan done")
    await q.send("carol", "bob", "unrelated")
    assert [m.id for m in await q.related(r.id)] == [r.id, sub.id, note.id, sub_reply.id, reply.id]
    with pytest.raises(errors.MessageNotFound):
        await q.related("nope")


async def test_dead_letters_and_retry(q: Q) -> None:
    """A dead message is listed, and retry gives it fresh attempts; a live one is refused."""
    m = await q.send("alice", "bob", "poison", max_attempts=1, ttl_s=60)
    await q.claim("bob", owner="w")
    await q.nack(m.id, owner="w", error="boom")
    assert [d.id for d in await q.dead()] == [m.id]
    back = await q.retry(m.id)
    assert (back.status, back.attempts, back.error, back.expires_at) == ("pending", 0, None, None)
    assert await q.dead() == []
    assert [x.id for x in await q.claim("bob", owner="w")] == [m.id]
    with pytest.raises(errors.QueueError, match="not dead"):
        await q.retry(m.id)


async def test_retry_of_a_failed_request_lets_it_be_answered(q: Q) -> None:
    r = await q.request("alice", "bob", "q")
    await q.fail_request(r.id, "recipient_failed", "crashed")
    await q.retry(r.id)
    assert await q.find_reply(r.id) is None
    (req,) = await q.claim("bob", owner="w")
    await q.reply(req.id, "bob", "now")
    assert (await q.wait_for_reply(r.id, timeout_s=5)).body == "now"


async def test_purge_keeps_the_reply_of_a_live_request(q: Q) -> None:
    """purge deletes done/dead messages, but not a reply whose request is still leased."""
    done = await q.send("alice", "bob", "x")
    r = await q.request("alice", "bob", "q")
    got = await q.claim("bob", owner="w", limit=2)
    await q.ack([done.id], owner="w")
    reply = await q.reply(r.id, "bob", "a")
    assert [m.id for m in got] == [done.id, r.id]
    assert await q.purge() == 1
    with pytest.raises(errors.MessageNotFound):
        await q.get(done.id)
    assert await q.find_reply(r.id) == reply
    with pytest.raises(errors.AlreadyReplied):
        await q.reply(r.id, "bob", "twice")
    with pytest.raises(ValueError, match="unknown status"):
        await q.purge(statuses=["gone"])


async def test_sweep_prunes_old_done_messages(q: Q, clock: FakeClock) -> None:
    m = await q.send("alice", "bob", "x")
    await q.claim("bob", owner="w")
    await q.ack([m.id], owner="w")
    assert (await q.sweep(retention_s=60)).pruned == 0
    clock.advance(61)
    assert (await q.sweep(retention_s=60)).pruned == 1
    with pytest.raises(errors.MessageNotFound):
        await q.get(m.id)


async def test_peek_shows_what_claim_would_take(q: Q, clock: FakeClock) -> None:
    a = await q.send("alice", "bob", 1)
    b = await q.send("alice", "bob", 2, ttl_s=5)
    await q.send("alice", "carol", 3)
    assert [m.id for m in await q.peek("bob")] == [a.id, b.id]
    clock.advance(6)
    assert [m.id for m in await q.peek("bob", limit=5)] == [a.id]
    assert (await q.get(a.id)).attempts == 0
