"""The wake-up bells: one per recipient bucket, so a waiter sleeps through other inboxes' mail."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from mailbox_workers.support import background_worker, run_worker

from orchestrator.mailbox import Mailbox
from orchestrator.mailbox.wakeup import BELL_SUFFIX, bucket

SAFETY_S = 10.0  # only ever reached if a wake-up is lost


def _bell(mb: Mailbox, name: str) -> Path:
    return mb.path.with_name(f"{mb.path.name}{BELL_SUFFIX}-{bucket(name)}")


def test_alice_and_bob_have_different_bells() -> None:
    """The names these tests use fall in different buckets (else they would prove nothing)."""
    assert bucket("alice") != bucket("bob")


def test_a_send_rings_the_recipients_bell_only(mb: Mailbox) -> None:
    """send() to bob writes bob's bucket bell, not alice's."""
    mb.send("alice", "bob", "hi")
    assert _bell(mb, "bob").exists()
    assert not _bell(mb, "alice").exists()
    assert _bell(mb, "bob").stat().st_mode & 0o777 == 0o600


def test_a_waiter_for_one_inbox_sleeps_through_another_inboxs_bell(mb: Mailbox) -> None:
    """A bell for bob wakes waiters for any change but not a waiter for alice's inbox;
    alice's bell wakes her waiter."""
    with mb.feed.watching("alice") as for_alice, mb.feed.watching() as for_any:
        assert mb.feed.pushed
        seen_alice, seen_any = for_alice.generation, for_any.generation
        mb.feed.ring(["bob"])
        for_any.wait(seen_any, SAFETY_S)
        assert for_any.generation != seen_any
        assert for_alice.generation == seen_alice
        mb.feed.ring(["alice"])
        for_alice.wait(seen_alice, SAFETY_S)
        assert for_alice.generation != seen_alice


def test_the_bell_for_everyone_wakes_a_waiter_for_one_inbox(mb: Mailbox) -> None:
    """Writes that may concern anyone (sweep, admin, registry) ring the shared bell,
    which wakes every waiter."""
    with mb.feed.watching("alice") as for_alice:
        seen = for_alice.generation
        mb.feed.ring()
        for_alice.wait(seen, SAFETY_S)
        assert for_alice.generation != seen


def test_a_release_in_another_process_wakes_the_inbox_waiter(mb: Mailbox) -> None:
    """Messages put back by release() in another process wake a consumer waiting on
    that inbox (release rings the bells of the recipients it touched)."""
    mb.send("bob", "alice", "job")
    taken = mb.claim("alice", owner="crashing", limit=1)
    assert len(taken) == 1
    assert mb.wait_for_messages("alice", timeout_s=0.01) is False  # nothing claimable now
    with background_worker("act.py", str(mb.path), "release", "crashing", "-", "-", "0.2"):
        assert mb.wait_for_messages("alice", timeout_s=SAFETY_S) is True


def _woken_by_bell(mb: Mailbox, before: dict[str, int]) -> None:
    """Wait until the reader thread woke for a bell: rung, or created (its first ring may
    land before the new file's watch is on; the creation then counts as the ring)."""
    deadline = time.monotonic() + SAFETY_S
    while mb.feed.wakeups["bell"] + mb.feed.wakeups["folder"] <= before["bell"] + before["folder"]:
        assert time.monotonic() < deadline, "the reader never woke for a bell"
        time.sleep(0.01)


def test_commits_to_another_inbox_do_not_wake_an_idle_waiter(mb: Mailbox) -> None:
    """A process waiting on alice's inbox is not woken by bob's mail from another process:
    bob's bell is not even watched here, and the WAL, which every commit writes, is read at
    most once per cool-down however many commits land (before: once per commit, so twenty
    idle agents burned a core while one pair talked). alice's own mail still wakes it."""
    n = 300
    with mb.feed.watching("alice") as waiter:
        assert mb.feed.pushed
        before = dict(mb.feed.wakeups)
        done = run_worker("act.py", str(mb.path), "send-n", "carol", "bob", str(n))
        assert done.returncode == 0, done.stderr
        assert mb.feed.wakeups["bell"] == before["bell"]  # bob's bell: never queued here
        woken_by_wal = mb.feed.wakeups["wal"] - before["wal"]
        assert woken_by_wal < n / 10, woken_by_wal
        seen = waiter.generation
        done = run_worker("act.py", str(mb.path), "send", "carol", "alice", '"hi"')
        assert done.returncode == 0, done.stderr
        _woken_by_bell(mb, before)
        waiter.wait(seen, SAFETY_S)
        assert waiter.generation != seen
    assert mb.claim("alice", owner="a")[0].body == "hi"


def test_plain_sql_is_seen_while_another_inbox_is_busy(mb: Mailbox) -> None:
    """A row written by plain SQL (no bell) for alice, while bob's inbox takes a stream of
    commits from another process, still wakes alice's waiter (at the WAL's next read)."""
    with background_worker("act.py", str(mb.path), "send-n", "carol", "bob", "3000"):
        conn = sqlite3.connect(mb.path, timeout=10)
        with conn:
            conn.execute(
                "INSERT INTO messages (sender, recipient, body) VALUES ('script', 'alice', '1')"
            )
        conn.close()
        assert mb.wait_for_messages("alice", timeout_s=SAFETY_S) is True


def test_writes_that_end_no_wait_ring_no_bell(
    mb: Mailbox, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a write that can end a wait rings a bell (issue 14.4): new mail, an answer,
    mail back in an inbox. Registry rows, wait-for edges, a plain claim, an extended
    lease and an ack end no wait; before, each rang (the registry's the bell for
    everyone), waking every asker in every process for nothing."""
    rung: list[list[str] | None] = []
    monkeypatch.setattr(
        mb.feed, "ring", lambda topics=None: rung.append(None if topics is None else sorted(topics))
    )
    mb.register("dave")
    mb.update_agent("bob", state="busy", meta={"x": 1})
    mb.send("alice", "bob", "mail")  # new mail: bob's bell
    [mail] = mb.claim("bob", owner="b", lease_s=5)
    mb.extend([mail.id], owner="b", lease_s=5)
    mb.ack([mail.id], owner="b")
    request = mb.request("alice", "bob", "q", wait_s=30)  # new mail: bob's bell
    assert len(mb.claim("bob", owner="b", lease_s=5)) == 1
    mb.reply(request.id, "bob", "a")  # an answer: alice's bell
    mb.clear_wait(request.id)
    mb.unregister("dave")
    assert rung == [["bob"], ["bob"], ["alice"]]
    mb.send("alice", "bob", "again")
    rung.clear()
    [again] = mb.claim("bob", owner="c", lease_s=1)
    clock.advance(2)  # its lease ran out: the next claim hands it back first, and rings
    assert [m.id for m in mb.claim("bob", owner="d")] == [again.id]
    assert rung == [["bob"]]
