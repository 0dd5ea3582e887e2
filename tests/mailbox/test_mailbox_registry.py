"""The agent registry: register (upsert), update, unregister, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import Mailbox


def test_register_records_every_field(empty_mb: Mailbox, clock: FakeClock) -> None:
    """register() stores name, description, pid, state, meta and stamps both times."""
    info = empty_mb.register(
        "alice", "writes code", pid=42, state="running", meta={"session": "s1"}
    )
    assert info.name == "alice"
    assert info.description == "writes code"
    assert info.pid == 42
    assert info.state == "running"
    assert info.meta == {"session": "s1"}
    assert info.registered_at == clock.now
    assert info.heartbeat_at == clock.now
    assert empty_mb.agent("alice") == info


def test_register_again_updates_but_keeps_registration_time_and_meta(
    empty_mb: Mailbox, clock: FakeClock
) -> None:
    """A second register() is an upsert: new fields win, registered_at and meta (when None) stay."""
    first = empty_mb.register("alice", "old", meta={"turns": 3})
    clock.advance(10)
    second = empty_mb.register("alice", "new", pid=7, state="running")
    assert second.registered_at == first.registered_at
    assert second.heartbeat_at == clock.now
    assert (second.description, second.pid, second.state) == ("new", 7, "running")
    assert second.meta == {"turns": 3}
    assert len(empty_mb.agents()) == 1


def test_agents_lists_by_name_and_unknown_agent_is_none(empty_mb: Mailbox) -> None:
    """agents() is sorted by name; agent() of an unknown name is None."""
    empty_mb.register("zed")
    empty_mb.register("amy")
    assert [a.name for a in empty_mb.agents()] == ["amy", "zed"]
    assert empty_mb.agent("nobody") is None


def test_update_agent_merges_meta_and_beats_heart(empty_mb: Mailbox, clock: FakeClock) -> None:
    """update_agent() merges meta keys, changes only the fields given, refreshes the heartbeat."""
    empty_mb.register("alice", "d", pid=1, state="starting", meta={"session": "s1", "turns": 1})
    clock.advance(5)
    empty_mb.update_agent("alice", state="running", meta={"turns": 2, "cost": 0.5})
    info = empty_mb.agent("alice")
    assert info is not None
    assert info.state == "running"
    assert info.pid == 1
    assert info.meta == {"session": "s1", "turns": 2, "cost": 0.5}
    assert info.heartbeat_at == clock.now


def test_update_agent_pid_none_clears_it_and_leaving_it_out_keeps_it(empty_mb: Mailbox) -> None:
    """pid=None records that the process is gone; omitting pid leaves it alone."""
    empty_mb.register("alice", pid=1234)
    empty_mb.update_agent("alice", state="running")
    assert empty_mb.agent("alice").pid == 1234  # type: ignore[union-attr]
    empty_mb.update_agent("alice", state="stopped", pid=None)
    assert empty_mb.agent("alice").pid is None  # type: ignore[union-attr]


def test_update_agent_without_heartbeat_keeps_the_old_one(
    empty_mb: Mailbox, clock: FakeClock
) -> None:
    """heartbeat=False changes fields without pretending the agent is alive."""
    before = empty_mb.register("alice").heartbeat_at
    clock.advance(5)
    empty_mb.update_agent("alice", state="failed", heartbeat=False)
    info = empty_mb.agent("alice")
    assert info is not None
    assert info.heartbeat_at == before
    assert info.state == "failed"


def test_update_unknown_agent_is_refused_with_known_names(empty_mb: Mailbox) -> None:
    """update_agent() on a name nobody registered raises RecipientUnknown listing the known ones."""
    empty_mb.register("alice")
    with pytest.raises(errors.RecipientUnknown) as info:
        empty_mb.update_agent("alcie", state="running")
    assert info.value.known == ["user", "alice"]


def test_unregister_keeps_messages_waiting(empty_mb: Mailbox) -> None:
    """Removing an agent leaves its queued messages; they are claimable once it is back."""
    empty_mb.register("alice")
    sent = empty_mb.send("user", "alice", "hello")
    empty_mb.unregister("alice")
    assert empty_mb.agent("alice") is None
    assert empty_mb.get(sent.id).status == "pending"
    empty_mb.register("alice")
    assert [m.id for m in empty_mb.claim("alice", owner="w")] == [sent.id]


@pytest.mark.parametrize(
    "name", ["", "  ", "user", "supervisor", "a/b", "../x", "Alice", "-x", "a b", "a\x1b[2J"]
)
def test_reserved_and_malformed_names_are_refused(empty_mb: Mailbox, name: str) -> None:
    """Regression (issue 16.20): register('supervisor'), register('user') or a name with '/'
    overwrote or created the team's own rows. The registry refuses them as the roster does,
    with InvalidName, before anything is written."""
    with pytest.raises(errors.InvalidName, match="cannot register"):
        empty_mb.register(name)
    assert empty_mb.agents() == []


def test_only_the_supervisor_writes_its_row_and_nobody_unregisters_it(empty_mb: Mailbox) -> None:
    """register_supervisor() is the supervisor's way in; unregister of a reserved row is
    refused."""
    empty_mb.register_supervisor(4242, {"instance": "x"})
    assert empty_mb.agent("supervisor") is not None
    with pytest.raises(errors.InvalidName):
        empty_mb.register("supervisor", "fake")
    with pytest.raises(errors.InvalidName):
        empty_mb.unregister("supervisor")
    assert empty_mb.agent("supervisor").pid == 4242  # type: ignore[union-attr]


def test_unregister_refuses_an_agent_a_running_supervisor_manages(tmp_path: Path) -> None:
    """Issue 9.5: unregister removes an external participant, but refuses a roster agent
    (meta.supervised) while its supervisor holds the team's lock; once the lock is gone it
    works, and force=True (the supervisor applying a roster edit) always does."""
    from orchestrator.lockfile import SupervisorLock

    db = tmp_path / "team.db"
    with Mailbox(db, create=True) as empty_mb:
        empty_mb.register("script", pid=123)
        empty_mb.register("coder", meta={"supervised": True})
        lock = SupervisorLock(db)
        lock.acquire()
        try:
            with pytest.raises(errors.ParticipantSupervised, match="supervisor pid"):
                empty_mb.unregister("coder")
            assert empty_mb.agent("coder") is not None
            assert empty_mb.unregister("script") is True
            assert empty_mb.unregister("script") is False  # already gone: nothing to do
        finally:
            lock.release()
        assert empty_mb.unregister("coder") is True
        empty_mb.register("coder", meta={"supervised": True})
        lock.acquire()
        try:
            assert empty_mb.unregister("coder", force=True) is True
        finally:
            lock.release()
