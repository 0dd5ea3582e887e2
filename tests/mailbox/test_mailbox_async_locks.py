"""The async client's calls on the loop never wait for a lock there: a held write lock
sends them to a worker thread, which waits patiently while the loop keeps running. And
the knob that makes that possible: ``Mailbox(busy_timeout_ms=0)``."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from orchestrator import errors
from orchestrator.mailbox import AsyncMailbox, Mailbox


def _hold_write_lock(path: Path, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_write_waits_for_a_held_lock_off_the_loop(tmp_path: Path) -> None:
    """While another connection holds the write lock, a send neither fails nor stalls the
    loop: other tasks keep ticking, and the send completes once the lock is released."""
    path = tmp_path / "team.db"
    async with await AsyncMailbox(path).open() as am:
        await am.register("alice")
        await am.register("bob")
        held, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, held, release))
        holder.start()
        try:
            assert await anyio.to_thread.run_sync(held.wait, 30)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    if ticks == 10:
                        release.set()  # the loop ran while the send waited for the lock
                    await anyio.sleep(0.01)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ticker)
                    sent = await am.send("alice", "bob", "after the lock")
                    tg.cancel_scope.cancel()
            assert ticks >= 10
            (got,) = await am.claim("bob", owner="bob-1")
            assert got.id == sent.id
        finally:
            release.set()
            await anyio.to_thread.run_sync(holder.join)


async def test_reads_on_the_loop_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A held write lock does not keep the loop's reads (checks, lookups) from answering."""
    path = tmp_path / "team.db"
    async with await AsyncMailbox(path).open() as am:
        await am.register("alice")
        await am.register("bob")
        m = await am.send("alice", "bob", "queued")
        held, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, held, release))
        holder.start()
        try:
            assert await anyio.to_thread.run_sync(held.wait, 30)
            with anyio.fail_after(30):
                assert (await am.get(m.id)).status == "pending"
                assert await am.wait_for_messages("bob", timeout_s=5) is True
                assert [x.id for x in await am.peek("bob")] == [m.id]
        finally:
            release.set()
            await anyio.to_thread.run_sync(holder.join)


def test_busy_timeout_zero_refuses_a_held_lock_at_once(tmp_path: Path) -> None:
    """Mailbox(busy_timeout_ms=0) answers "locked" at once while another connection
    holds the write lock, and writes nothing; the default waits for the lock."""
    path = tmp_path / "team.db"
    with Mailbox(path) as patient, Mailbox(path, busy_timeout_ms=0) as impatient:
        patient.register("bob")  # (opening takes the write lock briefly: open both first)
        held, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, held, release))
        holder.start()
        try:
            assert held.wait(30)
            with pytest.raises(errors.DatabaseError, match="locked") as refused:
                impatient.send("user", "bob", "now")
            assert "holding a transaction open" in str(refused.value)  # says what to look for
            threading.Timer(0.3, release.set).start()
            sent = patient.send("user", "bob", "after the lock")
        finally:
            release.set()
            holder.join()
        assert [m.body for m in patient.list(recipient="bob")] == ["after the lock"]
        assert sent.body == "after the lock"
