"""The supervisor's shell around the lifecycle, in-process and fast: a real Supervisor, real
runners and a real SQLite queue, with sessions whose claude cannot be reached (a double of
the SDK client that refuses to connect). The real-CLI versions are test_team_supervision.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import yaml
from claude_agent_sdk import ClaudeAgentOptions, CLIConnectionError

from orchestrator import errors, operations
from orchestrator.agent_meta import MODEL_NOTE
from orchestrator.lifecycle import AgentState, RunnerEvent
from orchestrator.mailbox import AsyncMailbox, Mailbox
from orchestrator.roster import Roster, load_roster
from orchestrator.supervision import depends, registry, sessions
from orchestrator.supervision.slot import Slot
from orchestrator.supervisor import Supervisor


class Unreachable:
    """Stands in for ``ClaudeSDKClient``: every connect is refused at once."""

    connects = 0

    def __init__(self, options: ClaudeAgentOptions) -> None:
        self.options = options

    async def connect(self) -> None:
        Unreachable.connects += 1
        raise CLIConnectionError("no claude here")

    async def disconnect(self) -> None:
        pass


def write_roster(tmp_path: Path, **agents: dict[str, Any]) -> Roster:
    data = {
        "name": "unit",
        "defaults": {"backoff": {"initial": "1ms", "max": "2ms"}},
        "agents": {
            n: {"prompt": f"You are {n}.", "description": n, **a} for n, a in agents.items()
        },
    }
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(tmp_path / "agents.yaml")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    Unreachable.connects = 0


async def until_task_ends(sup: Supervisor, name: str) -> tuple[Slot, dict[str, Any]]:
    """Wait for ``name``'s session task to start, then to end; what was true at that moment:
    the slot, and its registry row and request answers read before anything else ran."""
    while name not in sup.slots or sup.slots[name].done.is_set():
        await sup.state_changed.wait()  # set on every move (STARTING: its task runs)
    slot = sup.slots[name]
    await slot.done.wait()
    with Mailbox(sup.roster.database) as mb:  # synchronous: nothing else runs meanwhile
        row = mb.agent(name)
        assert row is not None
        requests = mb.list(recipient=name, limit=100)
        answers = {m.id: mb.find_reply(m.id) for m in requests if m.kind == "request"}
    return slot, {"row": row, "answers": answers}


async def test_a_failed_agent_is_recorded_and_its_askers_answered_before_its_task_ends(
    tmp_path: Path,
) -> None:
    roster = write_roster(tmp_path, a={"restart": "never"}, b={"restart": "never"})
    roster.database.parent.mkdir(parents=True, exist_ok=True)
    with Mailbox(roster.database) as mb:
        mb.register("a")
        ask = mb.request("b", "a", "are you there?")
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        slot, seen = await until_task_ends(sup, "a")
        sup.stop()
    # When `done` was set (what start/stop/restart wait for), all of it was already true.
    assert slot.state == AgentState.FAILED
    assert (seen["row"].state, seen["row"].pid) == ("failed", None)
    answer = seen["answers"][ask.id]
    assert answer is not None
    assert answer.error == errors.RecipientFailed.code
    assert answer.error_detail == (
        "'a' failed: session ended (connect_failed) and restart is 'never'"
    )


async def test_a_crash_loop_stops_at_the_intensity_limit(tmp_path: Path) -> None:
    roster = write_roster(tmp_path, a={"restart": "always", "max_restarts": 2})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        slot, seen = await until_task_ends(sup, "a")
        sup.stop()
    assert Unreachable.connects == 3  # the first start and two restarts
    assert slot.life.restart_count == 2
    assert seen["row"].state == "failed"
    assert seen["row"].meta["restarts"] == 2


async def test_a_refused_registry_write_after_a_runner_event_does_not_end_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue out of reach (a NATS node dying, a write lock held past the busy timeout)
    as a runner reports its context, a new claude (a rewind) or the model's trouble: the
    write is logged and left for later, never raised into the runner, whose session it
    ended (session_crashed, then a restart) as a refused state write never does. The pid
    is written with the next state record (the housekeeping's), the note at the next event."""
    roster = write_roster(tmp_path, a={})
    roster.database.parent.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    async with AsyncMailbox(roster.database) as mailbox:
        await mailbox.register("a")
        sup.mailbox = mailbox
        slot = sup.add_slot("a")
        slot.life.start()
        slot.life.session_starting()
        slot.life.on_runner_event(RunnerEvent.READY)  # ready: a second READY is a rewind
        real = mailbox.update_agent
        outage = errors.QueueUnavailable("nats://test", "a leader election", "")
        refusing = True

        async def update_agent(name: str, **fields: Any) -> None:
            if refusing:
                raise outage
            await real(name, **fields)

        monkeypatch.setattr(mailbox, "update_agent", update_agent)
        with structlog.testing.capture_logs() as logs:
            await sessions.on_runner_event(sup, slot, RunnerEvent.READY, {"pid": 4242})
            await sessions.on_runner_event(sup, slot, RunnerEvent.CONTEXT, {"tokens": 9})
            await sessions.on_runner_event(sup, slot, RunnerEvent.MODEL_ERROR, {"reason": "529"})
        refused = [e for e in logs if e["event"] == "state_not_recorded" and e["agent"] == "a"]
        assert len(refused) == 3
        refusing = False
        await registry.record(sup, slot)  # what the housekeeping does for slot.unrecorded
        await sessions.on_runner_event(sup, slot, RunnerEvent.MODEL_ERROR, {"reason": "529"})
        row = await mailbox.agent("a")
    assert row is not None
    assert row.pid == 4242
    assert row.meta[MODEL_NOTE] == "529"


async def test_a_stop_of_a_queued_start_stops_it_in_memory_as_in_the_registry(
    tmp_path: Path,
) -> None:
    """`stop a` while a is queued in a layer of `up` (``waiting``, no session task): the
    registry said `stopped` and the supervisor's own lifecycle stayed ``waiting``, so an
    agent's ask of it was taken (its state for peers), a dependent waited for it as on its
    way, and a later `start a` moved nothing, leaving `ps` saying `stopped` meanwhile."""
    roster = write_roster(tmp_path, a={})
    roster.database.parent.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    async with AsyncMailbox(roster.database) as mailbox:
        await mailbox.register("a", state="stopped")
        sup.mailbox = mailbox
        slot = sup.add_slot("a")
        await sup.record_moves(slot, slot.life.start())  # queued, as `up`'s layers do
        queued = await mailbox.agent("a")
        assert queued is not None
        assert queued.state == "waiting"
        assert await operations.stop_agent(sup, "a") == "stopped"
        row = await mailbox.agent("a")
        assert row is not None
        assert (row.state, slot.state) == ("stopped", AgentState.STOPPED)
        assert not depends.on_its_way(slot)
        assert slot.life.start() == [AgentState.WAITING]  # a later start is shown


async def test_a_reload_that_fails_before_its_roster_swap_ends_the_start_of_an_agent_it_adds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit adds b; b is registered `waiting` before the changed agents stop, without its
    lock, and an operator's `start b` meanwhile waits for b's roster entry. The reload then
    failed before its roster swap (here a stop that errors): the entry never came, and b's
    task waited on for it, `ps` saying `waiting (for the reload that adds it)`. The
    reload's failure ends that wait: b is stopped, its task over, and gone as before the
    reload (kept, a later `start b` waited again for the entry)."""
    from orchestrator import reload

    roster = write_roster(tmp_path, a={"restart": "never"})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    answers: list[str] = []
    slots: list[Slot] = []

    async def failing_stop(team: Any, old: Roster, names: list[str], restarting: Any) -> None:
        answers.append(await team.start_agent("b"))  # an operator's `start b` meanwhile
        slot = team.slots["b"]
        slots.append(slot)
        while slot.stats.get("waiting_for") is None and not slot.done.is_set():
            await team.state_changed.wait()  # b's task is in its wait for its entry
        raise RuntimeError("a stop that errors")

    monkeypatch.setattr(reload, "_stop_in_order", failing_stop)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        await until_task_ends(sup, "a")  # a failed (unreachable, restart never): no change
        write_roster(tmp_path, a={"restart": "never"}, b={})
        with pytest.raises(RuntimeError, match="a stop that errors"):
            await sup.reload()
        [slot] = slots
        with anyio.move_on_after(30) as guard:  # a guard against a hang, not a measure
            await slot.done.wait()
        assert "b" not in sup.slots
        with pytest.raises(errors.AgentNotFound):
            await sup.start_agent("b")
        sup.stop()
    assert answers == ["started"]
    assert not guard.cancelled_caught, f"b's start waits on: {slot.stats.get('waiting_for')}"
    assert slot.state == AgentState.STOPPED
    assert Unreachable.connects == 1  # a's only: b never launched without its entry
    with Mailbox(sup.roster.database) as mb:
        assert mb.agent("b") is None


async def test_a_reload_that_fails_while_it_registers_the_agents_it_adds_forgets_those_it_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit adds b and c; b is registered `waiting`, then c's registration raises (the
    same place a `down` cancels the reload). The reload's cleanup was set up only after
    every added agent was registered: b stayed `waiting` for good, in the supervisor and
    in its row, a reload that never came (found by review8). It is forgotten as the other
    added agents of a failed reload are."""
    from orchestrator import reload

    roster = write_roster(tmp_path, a={"restart": "never"})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    register = reload._register_agent

    async def failing_register(team: Any, name: str, spec: Any, *, queued: bool) -> None:
        if name == "c":
            raise RuntimeError("a registration that errors")
        await register(team, name, spec, queued=queued)

    monkeypatch.setattr(reload, "_register_agent", failing_register)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        await until_task_ends(sup, "a")
        write_roster(tmp_path, a={"restart": "never"}, b={}, c={})
        with pytest.raises(RuntimeError, match="a registration that errors"):
            await sup.reload()
        assert sorted(sup.slots) == ["a"]
        with pytest.raises(errors.AgentNotFound):
            await sup.start_agent("b")
        sup.stop()
    with Mailbox(sup.roster.database) as mb:
        assert mb.agent("b") is None


async def test_a_failed_reload_gives_back_the_row_a_participant_had_under_a_name_it_adds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A participant joined as b (`register b`); an edit adds an agent b, which takes b's
    row over (supervised, `waiting`), and the reload fails before its roster swap. Its
    cleanup unregistered b, the participant's row with it: gone, which it was not before
    the reload (found by review8). The row is given back as it was, and an ask of b stays
    b's to answer."""
    from orchestrator import reload

    roster = write_roster(tmp_path, a={"restart": "never"})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)

    async def failing_stop(team: Any, old: Roster, names: list[str], restarting: Any) -> None:
        raise RuntimeError("a stop that errors")

    monkeypatch.setattr(reload, "_stop_in_order", failing_stop)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        await until_task_ends(sup, "a")
        with Mailbox(sup.roster.database) as mb:
            mb.register("b", "a terminal", pid=None, meta={"kind": "terminal"})
            before = mb.agent("b")
        write_roster(tmp_path, a={"restart": "never"}, b={})
        with pytest.raises(RuntimeError, match="a stop that errors"):
            await sup.reload()
        assert sorted(sup.slots) == ["a"]
        sup.stop()
    with Mailbox(sup.roster.database) as mb:
        after = mb.agent("b")
    assert before is not None
    assert after is not None
    assert (after.description, after.pid, after.state, after.meta) == (
        before.description,
        before.pid,
        before.state,
        before.meta,
    )


async def test_a_down_that_ends_a_reload_gives_back_the_row_a_participant_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A participant joined as b; an edit adds an agent b, which takes b's row over, and a
    `down` ends the reload while it stops a changed agent (a turn finishing in its grace).
    Review8's give-back ran only for a reload that failed with the team running: after the
    `down` b's row was the reload's (`stopped`, supervised, pid None), the participant's
    gone. Given back as it was, as a failed reload's."""
    from orchestrator import reload

    roster = write_roster(tmp_path, a={"restart": "never"})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    stopping = anyio.Event()

    async def slow_stop(team: Any, old: Roster, names: list[str], restarting: Any) -> None:
        stopping.set()
        await anyio.sleep_forever()  # ended by the `down`

    monkeypatch.setattr(reload, "_stop_in_order", slow_stop)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        await until_task_ends(sup, "a")
        with Mailbox(sup.roster.database) as mb:
            mb.register("b", "a terminal", pid=None, meta={"kind": "terminal"})
            before = mb.agent("b")
        write_roster(tmp_path, a={"restart": "never"}, b={})
        assert sup._tg is not None
        sup._tg.start_soon(sup.reload)  # as the watcher or `reload` runs it: in the team
        await stopping.wait()
        with Mailbox(sup.roster.database) as mb:
            taken = mb.agent("b")
        assert taken is not None
        assert taken.meta.get("supervised") is True  # the reload's now
        sup.stop()  # `down`
    with Mailbox(sup.roster.database) as mb:
        after = mb.agent("b")
    assert before is not None
    assert after is not None
    assert (after.description, after.pid, after.state, after.meta) == (
        before.description,
        before.pid,
        before.state,
        before.meta,
    )


async def test_asks_of_an_agent_a_failed_reload_added_have_their_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ask of b, which an edit adds, is queued while the reload stops a changed agent;
    the reload fails. Its asker was answered `recipient_removed`, as if b had been taken
    out of agents.yaml (it is in the file). Now `recipient_not_added`; a removed agent's
    askers keep `recipient_removed`."""
    from orchestrator import reload

    roster = write_roster(tmp_path, a={"restart": "never"}, gone={"restart": "never"})
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    asked: list[str] = []

    async def failing_stop(team: Any, old: Roster, names: list[str], restarting: Any) -> None:
        with Mailbox(team.roster.database) as mb:
            asked.append(mb.request("user", "b", "are you there?", wait_s=60).id)
        raise RuntimeError("a stop that errors")

    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        # Both failed (unreachable, restart never), in whichever order, their tasks over.
        while sorted(n for n, s in sup.slots.items() if s.state == AgentState.FAILED) != [
            "a",
            "gone",
        ]:
            await sup.state_changed.wait()
        for slot in sup.slots.values():
            await slot.done.wait()
        with Mailbox(sup.roster.database) as mb:
            for_gone = mb.request("user", "gone", "still there?", wait_s=60)
        write_roster(tmp_path, a={"restart": "never"})  # gone removed: recipient_removed
        await sup.reload()
        monkeypatch.setattr(reload, "_stop_in_order", failing_stop)
        write_roster(tmp_path, a={"restart": "never"}, b={})
        with pytest.raises(RuntimeError, match="a stop that errors"):
            await sup.reload()
        sup.stop()
    [for_b] = asked
    with Mailbox(sup.roster.database) as mb:
        with pytest.raises(errors.RecipientNotAdded) as not_added:
            mb.wait_for_reply(for_b, 0)
        with pytest.raises(errors.RecipientRemoved) as removed:
            mb.wait_for_reply(for_gone.id, 0)
    assert not_added.value.code == "recipient_not_added"
    assert "the reload that added 'b' failed before it started it" in str(not_added.value)
    assert removed.value.code == "recipient_removed"


async def test_a_reloads_queue_refused_by_the_rows_holder_leaves_no_waiting_for_behind(
    tmp_path: Path,
) -> None:
    """A reload stops changed agent b and queues it again; on a shared NATS team another
    supervisor has taken b meanwhile, and the queue's record is refused. The reload undid
    only the lifecycle (`stopped` in memory): what the record had said b waited for (a,
    on its way) stayed in its stats, and the next record of b once the row is ours again
    wrote `stopped` with `waiting_for: a` in its meta. Undone as up's layers undo it
    (Slot.unqueue). The holder here is a lease double; the rows are real SQLite rows."""
    from orchestrator import reload
    from orchestrator.agent_leases import LocalLeases
    from orchestrator.mailbox import AsyncMailbox

    class HeldForB(LocalLeases):
        held = True

        async def write_row(self, mailbox: Any, agent: str, **fields: Any) -> Any:
            if agent == "b" and self.held:
                return errors.AgentHeldElsewhere("b", "other", "elsewhere", 99, 30.0)
            return await super().write_row(mailbox, agent, **fields)

    roster = write_roster(tmp_path, a={}, b={"depends_on": ["a"]})
    roster.database.parent.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(roster, watch_roster=False, client=Unreachable)
    leases = HeldForB()
    sup.leases = leases
    async with AsyncMailbox(roster.database) as mailbox:
        await mailbox.register("a", state="stopped")
        await mailbox.register("b", state="stopped")
        sup.mailbox = mailbox
        a = sup.add_slot("a")
        a.life.queue()  # on its way: what b waits for
        b = sup.add_slot("b")
        await reload._stop_in_order(sup, roster, ["b"], {"b"})
        assert b.state == AgentState.STOPPED
        leases.held = False  # the other let b go: its row is ours again
        await registry.record(sup, b)
        row = await mailbox.agent("b")
    assert row is not None
    assert row.state == "stopped"
    assert row.meta.get("waiting_for") is None, row.meta
    assert not b.shown_waiting
