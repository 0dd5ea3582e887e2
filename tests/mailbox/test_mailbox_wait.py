"""Blocking waits: replies and inbox, woken by other processes, without busy-polling."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from mailbox_workers.support import FakeClock, background_worker, counts, run_worker

from orchestrator import errors
from orchestrator.mailbox import Mailbox


def test_wait_for_reply_gets_the_answer_from_another_process(mb: Mailbox) -> None:
    """A reply committed by a different process wakes the waiter, which returns the response."""
    r = mb.request("alice", "bob", "ping", wait_s=60)
    with background_worker("act.py", str(mb.path), "reply", r.id, "bob", json.dumps("pong"), "0.3"):
        reply = mb.wait_for_reply(r.id, timeout_s=60)
    assert (reply.body, reply.sender, reply.correlation_id) == ("pong", "bob", r.id)


def test_wait_for_reply_times_out_and_clears_its_wait(mb: Mailbox) -> None:
    """No reply in time: RequestTimeout carries the id and the wait; the wait-for edge is gone."""
    r = mb.request("alice", "bob", "anyone?", wait_s=60)
    with pytest.raises(errors.RequestTimeout) as info:
        mb.wait_for_reply(r.id, timeout_s=0.2)
    assert (info.value.request_id, info.value.waited_s, info.value.code) == (r.id, 0.2, "timeout")
    assert counts(mb.path)["waits"] == 0
    mb.request("bob", "alice", "my turn", wait_s=60)  # no longer a cycle


def test_late_reply_is_still_recorded_after_a_timeout(mb: Mailbox) -> None:
    """A timeout only stops the waiting: a later reply is accepted and can be read."""
    r = mb.request("alice", "bob", "slow?")
    with pytest.raises(errors.RequestTimeout):
        mb.wait_for_reply(r.id, timeout_s=0.05)
    mb.reply(r.id, "bob", "sorry, late")
    assert mb.wait_for_reply(r.id, timeout_s=1).body == "sorry, late"


def test_wait_for_reply_on_a_notice_is_refused(mb: Mailbox) -> None:
    """Waiting for the reply to something that is not a request is a NotARequest error."""
    n = mb.send("alice", "bob", "fyi")
    with pytest.raises(errors.NotARequest):
        mb.wait_for_reply(n.id, timeout_s=1)


def test_wait_for_messages_wakes_on_a_send_from_another_process(mb: Mailbox) -> None:
    """An idle consumer wakes when another process sends to it (the timeout is only a safety
    net)."""
    with background_worker("act.py", str(mb.path), "send", "alice", "bob", '"hi"', "0.3"):
        assert mb.wait_for_messages("bob", timeout_s=60) is True
    (m,) = mb.claim("bob", owner="bob-1")
    assert m.body == "hi"


def test_wait_for_messages_wakes_on_plain_sql_from_another_program(mb: Mailbox) -> None:
    """A row inserted with plain SQL and the table defaults (another language) wakes the
    consumer."""
    with background_worker(
        "act.py", str(mb.path), "sql-insert", "script", "bob", '{"x": 1}', "0.3"
    ):
        assert mb.wait_for_messages("bob", timeout_s=60) is True
    (m,) = mb.claim("bob", owner="bob-1")
    assert (m.sender, m.body, m.kind, m.max_attempts) == ("script", {"x": 1}, "notice", 5)
    assert m.id


def test_wait_for_messages_times_out_false(mb: Mailbox) -> None:
    """Nothing arrives: wait_for_messages returns False after its timeout."""
    assert mb.wait_for_messages("bob", timeout_s=0.1) is False


def test_wait_for_messages_returns_at_once_when_mail_is_waiting(mb: Mailbox) -> None:
    """A consumer with pending mail does not sleep."""
    mb.send("alice", "bob", "already here")
    assert mb.wait_for_messages("bob", timeout_s=0) is True


def test_wait_for_messages_wakes_when_a_delayed_message_comes_due(mb: Mailbox) -> None:
    """A nacked message with a delay becomes claimable by the clock alone, with no write to wake
    on.
    """
    m = mb.send("alice", "bob", "retry me")
    mb.claim("bob", owner="bob-1")
    mb.nack(m.id, owner="bob-1", delay_s=0.3)
    assert mb.claim("bob", owner="bob-1") == []
    assert mb.wait_for_messages("bob", timeout_s=60) is True
    assert [x.id for x in mb.claim("bob", owner="bob-1")] == [m.id]


def test_waiting_in_one_thread_while_another_sends(mb: Mailbox) -> None:
    """Two threads may share one Mailbox: a wait does not hold the connection's lock."""
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(mb.wait_for_messages("bob", 60)))
    waiter.start()
    mb.send("alice", "bob", "from the other thread")
    waiter.join(timeout=60)
    assert got == [True]


def test_polling_fallback_still_delivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With inotify switched off (OCTY_MAILBOX_WAKEUP=poll) waits fall back to a slow poll and
    still work.
    """
    monkeypatch.setenv("OCTY_MAILBOX_WAKEUP", "poll")
    with Mailbox(tmp_path / "poll.db") as mb:
        mb.register("bob")
        with background_worker("act.py", str(mb.path), "send", "x", "bob", "1", "0.2"):
            assert mb.wait_for_messages("bob", timeout_s=60) is True
        assert mb.feed.pushed is False


def test_expired_request_is_noticed_by_the_waiter_without_a_sweep(tmp_path: Path) -> None:
    """A request that passes its TTL undelivered ends the wait with RequestExpired even if nobody
    sweeps.
    """
    clock = FakeClock()
    with Mailbox(tmp_path / "team.db", clock=clock) as mb:
        mb.register("bob")
        r = mb.request("alice", "bob", "q", ttl_s=5)
        clock.advance(6)
        with pytest.raises(errors.RequestExpired):
            mb.wait_for_reply(r.id, timeout_s=5)
        assert mb.get(r.id).error == "expired"


def test_act_worker_reports_unknown_action(tmp_path: Path) -> None:
    """The helper script fails loudly on a typo instead of silently doing nothing."""
    result = run_worker("act.py", str(tmp_path / "x.db"), "bogus", "a", "b", "1")
    assert result.returncode == 2


def test_a_process_that_never_waits_never_watches(tmp_path: Path) -> None:
    """Producers are not woken by every commit: the watcher thread starts with the first wait."""

    def feed_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "mailbox-feed:quiet.db"]

    path = tmp_path / "quiet.db"
    with Mailbox(path) as mb:
        mb.register("bob")
        for i in range(20):
            mb.send("alice", "bob", i)
        assert feed_threads() == []
        assert mb.wait_for_messages("bob", timeout_s=1) is True  # mail already there: no watch
        assert feed_threads() == []
        mb.claim("bob", owner="w", limit=20)
        assert mb.wait_for_messages("bob", timeout_s=0.05) is False
        assert feed_threads() == ["mailbox-feed:quiet.db"]
    assert feed_threads() == []  # closing the last Mailbox stops it


def test_the_watcher_thread_leaves_signals_to_the_main_thread(tmp_path: Path) -> None:
    """Regression: a Ctrl-C the kernel delivered to the watcher thread left the main thread
    asleep in its wait until its next wake-up (measured: KeyboardInterrupt 1.5 s after the
    signal). The watcher blocks every signal, so the kernel gives SIGINT and SIGTERM to the
    main thread; the main thread's own mask is unchanged."""
    path = tmp_path / "quiet.db"

    def blocked(tid: int) -> int:
        status = Path(f"/proc/self/task/{tid}/status").read_text(encoding="ascii")
        return int(next(line for line in status.splitlines() if line.startswith("SigBlk:"))[7:], 16)

    main_before = blocked(threading.get_native_id())
    with Mailbox(path) as mb:
        mb.register("bob")
        assert mb.wait_for_messages("bob", timeout_s=0.05) is False
        [watcher] = [t for t in threading.enumerate() if t.name == "mailbox-feed:quiet.db"]
        assert watcher.native_id is not None
        mask = blocked(watcher.native_id)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            assert mask & (1 << (sig - 1)), f"{sig.name} may be delivered to the watcher"
        assert blocked(threading.get_native_id()) == main_before


def test_regression_an_error_reply_committed_between_the_two_reads_is_not_expired(
    mb: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """poll_reply reads the reply, then the request, each in its own autocommit read. An
    error reply and the request's move to the dead letters commit together; when they land
    between the two reads the waiter saw "no reply" then "dead" and raised RequestExpired
    instead of the reply's error (a budget refusal, seen in the budget test under load).
    The first reply read is made to predate the commit; the waiter must still get the
    typed error."""
    r = mb.request("alice", "bob", "job", wait_s=60)
    assert mb.fail_request(r.id, "budget_exceeded", "bob is paused")
    real = Mailbox._fetch_reply
    calls: list[str] = []

    def first_read_before_the_commit(conn: object, request_id: str) -> object:
        calls.append(request_id)
        return None if len(calls) == 1 else real(conn, request_id)  # type: ignore[arg-type]

    monkeypatch.setattr(Mailbox, "_fetch_reply", staticmethod(first_read_before_the_commit))
    with pytest.raises(errors.BudgetExceeded):
        mb.wait_for_reply(r.id, timeout_s=5)
