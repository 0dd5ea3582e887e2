"""The async client: same operations, never blocking the event loop, cancellable waits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mailbox_workers.support import background_worker, counts

from orchestrator import errors
from orchestrator.mailbox import AsyncMailbox, Mailbox


async def _team(path: Path) -> AsyncMailbox:
    am = await AsyncMailbox(path).open()
    await am.register("alice")
    await am.register("bob")
    return am


async def test_round_trip_send_claim_ack(tmp_path: Path) -> None:
    """send, claim and ack work through the async client as through the sync one."""
    am = await _team(tmp_path / "team.db")
    try:
        m = await am.send("alice", "bob", {"n": 1})
        (got,) = await am.claim("bob", owner="bob-1")
        await am.ack([got.id], owner="bob-1")
        assert (await am.get(m.id)).status == "done"
    finally:
        await am.aclose()


async def test_wait_for_reply_does_not_block_the_loop(tmp_path: Path) -> None:
    """While one task waits for a reply, other tasks on the loop keep running."""
    async with await _team(tmp_path / "team.db") as am:
        r = await am.request("alice", "bob", "q", wait_s=60)
        ticks = 0
        ticked = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 10:
                    ticked.set()
                await anyio.sleep(0.01)

        async def answer() -> None:
            await ticked.wait()  # the loop kept running while the waiter waited
            await am.reply(r.id, "bob", "a")

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                tg.start_soon(answer)
                reply = await am.wait_for_reply(r.id, timeout_s=60)
                tg.cancel_scope.cancel()
        assert reply.body == "a"
        assert ticks >= 10


async def test_cancelled_wait_for_reply_returns_and_clears_its_wait(tmp_path: Path) -> None:
    """Cancelling a wait ends it promptly (no parked thread) and removes the wait-for edge."""
    async with await _team(tmp_path / "team.db") as am:
        r = await am.request("alice", "bob", "q", wait_s=600)
        with anyio.fail_after(30):  # safety net: a wait that ignores cancellation would trip it
            with anyio.move_on_after(0.2) as scope:
                await am.wait_for_reply(r.id, timeout_s=600)
        assert scope.cancelled_caught
        assert counts(am.sync.path)["waits"] == 0
        await am.request("bob", "alice", "my turn", wait_s=60)  # would deadlock if the edge stayed


async def test_cancelled_wait_for_messages_returns(tmp_path: Path) -> None:
    """An idle consumer's wait can be cancelled (shutdown) and returns at once."""
    async with await _team(tmp_path / "team.db") as am:
        with anyio.fail_after(30):
            with anyio.move_on_after(0.2) as scope:
                await am.wait_for_messages("bob", timeout_s=600)
        assert scope.cancelled_caught


async def test_wait_for_messages_wakes_on_another_process(tmp_path: Path) -> None:
    """The async consumer wakes on a send committed by a different process."""
    async with await _team(tmp_path / "team.db") as am:
        with background_worker("act.py", str(am.sync.path), "send", "alice", "bob", '"hi"', "0.3"):
            assert await am.wait_for_messages("bob", timeout_s=60) is True
        (m,) = await am.claim("bob", owner="bob-1")
        assert m.body == "hi"


async def test_wait_for_messages_times_out_false(tmp_path: Path) -> None:
    """Nothing arrives: the async wait returns False after its timeout."""
    async with await _team(tmp_path / "team.db") as am:
        assert await am.wait_for_messages("bob", timeout_s=0.1) is False


async def test_async_wait_for_reply_raises_typed_errors(tmp_path: Path) -> None:
    """Timeouts and failed requests surface as the same exceptions as in the sync client."""
    async with await _team(tmp_path / "team.db") as am:
        r = await am.request("alice", "bob", "q", wait_s=60)
        with pytest.raises(errors.RequestTimeout):
            await am.wait_for_reply(r.id, timeout_s=0.1)
        await am.fail_request(r.id, "recipient_failed", "gone")
        with pytest.raises(errors.RecipientFailed):
            await am.wait_for_reply(r.id, timeout_s=5)


async def test_sync_view_works_from_a_thread(tmp_path: Path) -> None:
    """`.sync` gives a Mailbox a sync tool can use from its own thread, sharing the connection."""
    async with await _team(tmp_path / "team.db") as am:
        r = await am.request("alice", "bob", "q")

        def tool() -> None:
            am.sync.reply(r.id, "bob", "from a thread")

        thread = threading.Thread(target=tool)
        thread.start()
        reply = await am.wait_for_reply(r.id, timeout_s=60)
        thread.join()
        assert reply.body == "from a thread"


async def test_open_reports_a_bad_file(tmp_path: Path) -> None:
    """Errors opening the database surface from open() / async with, as DatabaseError."""
    bad = tmp_path / "team.db"
    bad.write_text("not sqlite" * 500)
    with pytest.raises(errors.DatabaseError):
        async with AsyncMailbox(bad):
            pass


async def test_async_and_sync_clients_share_a_database(tmp_path: Path) -> None:
    """A sync Mailbox in the same process sees what the async one wrote and vice versa."""
    path = tmp_path / "team.db"
    async with await _team(path) as am:
        with Mailbox(path) as mb:
            m = mb.send("alice", "bob", "sync")
            assert await am.pending_count("bob") == 1
            (got,) = await am.claim("bob", owner="w")
            assert got.id == m.id
        assert [a.name for a in await am.agents()] == ["alice", "bob"]


async def test_closed_async_mailbox_refuses_calls(tmp_path: Path) -> None:
    """After aclose() every call raises DatabaseError('closed')."""
    am = await _team(tmp_path / "team.db")
    await am.aclose()
    with pytest.raises(errors.DatabaseError, match="closed"):
        await am.agents()


async def test_closing_while_a_task_waits_ends_that_wait(tmp_path: Path) -> None:
    """aclose() during another task's wait: the wait ends with DatabaseError('closed'), it does
    not hang or touch a closed connection."""
    am = await _team(tmp_path / "team.db")
    outcome: list[BaseException] = []

    async def waiter() -> None:
        try:
            await am.wait_for_messages("bob", timeout_s=600)
        except errors.DatabaseError as exc:
            outcome.append(exc)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.1)
            await am.aclose()
    assert len(outcome) == 1
    assert "closed" in str(outcome[0])


def _record_bells(am: AsyncMailbox, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list the mailbox's bell appends "bell" to each time it rings (and still rings)."""
    steps: list[str] = []
    ring = am.sync.feed.ring

    def recording_ring(topics: Any = None) -> None:
        steps.append("bell")
        ring(topics)

    monkeypatch.setattr(am.sync.feed, "ring", recording_ring)
    return steps


async def test_an_answer_reaches_a_waiter_in_this_process_before_the_bell_and_the_answerer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14.4: a reply's waiter in the same process (an agent's ask) has its answer and
    gets one more turn of the loop (the SDK's write lock, before its tool result goes out)
    before reply() returns to the answering agent; and the commit's bell, which every
    process watching it hears (this one's feed thread too: it took the GIL from the
    waiter mid-way), rings only after that, but rings.

    Before: the bell rang inside the commit, and the waiter was woken through the
    loop's self-pipe, a turn later than the answerer went on."""
    async with await _team(tmp_path / "team.db") as am:
        request = await am.request("alice", "bob", "q", wait_s=60)
        steps = _record_bells(am, monkeypatch)
        feed = am.sync.feed

        async def asker() -> None:
            reply = await am.wait_for_reply(request.id, timeout_s=30)
            steps.append(f"answered {reply.body}")
            async with anyio.Lock():  # what the SDK's transport.write does before writing
                steps.append("tool result written")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(asker)
                while not feed._async_waiters:
                    await anyio.lowlevel.checkpoint()  # until the asker sleeps in its wait
                await am.reply(request.id, "bob", "a")
                steps.append("reply returned")
        assert steps == ["answered a", "tool result written", "bell", "reply returned"]


async def test_an_answer_nobody_in_this_process_waits_for_rings_its_bell_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bell waits for this process's own waiters only when there are some: an answer
    for an asker in another process (`octy-orchestrate ask`) rings before reply() lets
    any other task of the answering process run."""
    async with await _team(tmp_path / "team.db") as am:
        request = await am.request("alice", "bob", "q", wait_s=60)
        steps = _record_bells(am, monkeypatch)
        ready = anyio.Event()

        async def other_task() -> None:
            ready.set()
            await anyio.lowlevel.checkpoint()  # runs at the first yield of reply()
            steps.append("another task ran")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(other_task)
                await ready.wait()
                await am.reply(request.id, "bob", "a")
                steps.append("reply returned")
        assert steps == ["bell", "another task ran", "reply returned"]
