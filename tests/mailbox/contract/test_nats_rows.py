"""Whose an agent's registry row is: on a NATS team shared by several supervisors, the
row of the supervisor that holds the agent's lease. A move recorded by another
(registry.record, whoever calls it) leaves that row alone. A real Supervisor in this
process, its real NATS queue and leases; the other supervisor's lease and row are
written as it writes them, on the same server."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import nats.errors
import pytest
import structlog
import yaml
from natsserver import NatsServer

from orchestrator import errors, operations, reload
from orchestrator.agent_leases import LocalLeases, agent_leases
from orchestrator.lifecycle import AgentState
from orchestrator.mailbox import AsyncMailbox
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.lease import AgentLeases
from orchestrator.roster import Roster, load_roster
from orchestrator.supervision import depends, registry
from orchestrator.supervision.slot import Slot
from orchestrator.supervisor import Supervisor

OTHER = "octy-supervisor:other-machine"
OTHER_PID = 4242  # the claude the other supervisor runs alpha in (its row says so)


def _roster(tmp_path: Path, queue: dict[str, Any] | None) -> Roster:
    data: dict[str, Any] = {
        "name": "rows",
        "agents": {n: {"prompt": f"You are {n}.", "description": n} for n in ("alpha", "beta")},
    }
    if queue is not None:
        data["queue"] = queue
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(tmp_path / "agents.yaml")


@pytest.fixture
def config(nats_server: NatsServer) -> NatsConfig:
    return NatsConfig((nats_server.url,), namespace=f"rows{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def sup(tmp_path: Path, config: NatsConfig) -> AsyncIterator[Supervisor]:
    """This machine's supervisor on the shared team, its queue and leases opened as
    `up` opens them (alpha and beta registered, stopped)."""
    queue = {"servers": config.servers[0], "namespace": config.namespace}
    roster = _roster(tmp_path, queue)
    sup = Supervisor(roster, watch_roster=False)
    async with NatsMailbox(config) as mailbox:
        sup.mailbox = mailbox
        sup.leases = agent_leases(mailbox, sup.instance, roster.queue)
        for name in roster.agents:
            await mailbox.register(name, name, state="stopped")
        yield sup


@pytest.fixture
async def other(config: NatsConfig) -> AsyncIterator[AgentLeases]:
    """Another supervisor of the team, on another machine: it runs alpha (its lease,
    and alpha's row saying `ready` with its claude's pid)."""
    async with NatsMailbox(config) as mailbox:
        leases = AgentLeases(mailbox, OTHER)
        await leases.take("alpha")
        await mailbox.update_agent("alpha", state="ready", pid=OTHER_PID)
        yield leases
        await leases.release_all()


def _ours_ran_out(sup: Supervisor, *others: NatsMailbox) -> None:
    """Our lease's end has passed, as our clock tells it and the other supervisors'
    (``others``) too: wall clocks in step, as a team's must be. Our side then asks the
    lease again instead of taking it for ours (lease.AgentLeases._surely_ours)."""
    assert isinstance(sup.mailbox, NatsMailbox)
    assert isinstance(sup.leases, AgentLeases)
    later = sup.leases.lease_s + 1.0
    for mailbox in (sup.mailbox, *others):
        mailbox._clock = lambda: time.time() + later


async def _row(sup: Supervisor, name: str) -> tuple[str, int | None]:
    assert sup.mailbox is not None
    info = await sup.mailbox.agent(name)
    assert info is not None
    return info.state, info.pid


@contextlib.asynccontextmanager
async def _taken_at_our_write(
    sup: Supervisor,
    config: NatsConfig,
    monkeypatch: pytest.MonkeyPatch,
    then: Callable[[NatsMailbox], Awaitable[Any]] | None,
    *,
    ours_ran_out: bool = False,
) -> AsyncIterator[list[AgentLeases]]:
    """Exactly as our first write of alpha's row reaches the server (a hook on the KV's
    write), the other supervisor takes alpha (our lease run out first with
    ``ours_ran_out``) and does ``then`` with its queue (writes its row), before our write
    goes on. Yields the other's leases (empty: the hook never ran); released at the end."""
    assert isinstance(sup.mailbox, NatsMailbox)
    kv = sup.mailbox.kv
    real_update = kv._update
    taken: list[AgentLeases] = []

    async def other_takes_it_first(key: str, value: bytes, *args: Any, **kwargs: Any) -> int:
        if key == "a.alpha" and not taken:
            other = await NatsMailbox(config).open()
            leases = AgentLeases(other, OTHER)
            taken.append(leases)
            if ours_ran_out:
                _ours_ran_out(sup, other)
            await leases.take("alpha")
            if then is not None:
                await then(other)
        return await real_update(key, value, *args, **kwargs)

    monkeypatch.setattr(kv, "_update", other_takes_it_first)
    try:
        yield taken
    finally:
        for leases in taken:
            await leases.release_all()
            await leases.mailbox.aclose()


async def _writes_ready(other: NatsMailbox) -> None:
    await other.update_agent("alpha", state="ready", pid=OTHER_PID)


async def test_a_move_recorded_for_an_agent_another_supervisor_runs_leaves_its_row(
    sup: Supervisor, other: AgentLeases
) -> None:
    """Alpha queued here (`waiting`), then stopped (`stopped`, pid None), while the other
    supervisor runs it: neither is written over the row it keeps, whoever records them
    (every caller used to check the lease first; one that did not wrote over it). The slot
    says the row is elsewhere, logged once. Once the other releases alpha, the next
    record writes: nobody runs it, our state is its state."""
    slot = sup.add_slot("alpha")
    with structlog.testing.capture_logs() as logs:
        await sup.record_moves(slot, slot.life.start())  # waiting, as `up` queues it
        assert await _row(sup, "alpha") == ("ready", OTHER_PID)
        for target in slot.life.stop_moves():  # as its task ends, refused the lease
            await sup.move_to(slot, target)
        await registry.record(sup, slot, pid=None)  # the housekeeping's record
    assert slot.state == AgentState.STOPPED  # our lifecycle moved; the row did not
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    assert slot.elsewhere
    assert slot.unrecorded is None  # nothing owed: the row is the holder's
    said = [e for e in logs if e["event"] == "row_held_elsewhere"]
    assert [(e["agent"], e["pid"]) for e in said] == [("alpha", os.getpid())]

    beta = sup.add_slot("beta")  # nobody else runs beta: its row is ours, written
    await sup.record_moves(beta, beta.life.start())
    assert await _row(sup, "beta") == ("waiting", None)

    await other.release("alpha")  # the other machine stopped alpha
    await sup.record_moves(slot, slot.life.start())  # queued here again: ours to write
    assert await _row(sup, "alpha") == ("waiting", None)
    assert not slot.elsewhere


async def test_an_agent_taken_with_its_row_deleted_gets_its_row_written_again(
    sup: Supervisor,
) -> None:
    """Alpha's row deleted (`unregister`, a reload), then alpha taken here: the take
    marks the absent row (a delete marker). Its start's record registers the row again,
    a create conditional on the revision read: nats-py reads a marker as "not found",
    revision 0, so the create was refused for ever and, reading again, spun (5,591
    writes in 5 s): the start hung, burning the supervisor's CPU and the server's. A
    take over a marker moves the revision too (the old holder's create then fails)."""
    assert sup.mailbox is not None
    assert isinstance(sup.mailbox, NatsMailbox)
    assert await sup.mailbox.unregister("alpha", force=True)
    slot = sup.add_slot("alpha")
    await sup.leases.take("alpha")
    _, marked = await rec.last_entry(sup.mailbox.kv, "a.alpha")
    await sup.leases.release("alpha")
    await sup.leases.take("alpha")  # taken again, the row still absent: marked again
    value, again = await rec.last_entry(sup.mailbox.kv, "a.alpha")
    assert value is None
    assert again > marked > 0
    assert [a.name for a in await sup.mailbox.agents()] == ["beta"]  # no row listed
    with anyio.fail_after(30):
        await sup.record_moves(slot, slot.life.start())  # `waiting`: the row written
    assert await _row(sup, "alpha") == ("waiting", None)
    assert [a.name for a in await sup.mailbox.agents()] == ["alpha", "beta"]


async def test_a_reload_removing_an_agent_another_supervisor_runs_leaves_it_its_work(
    sup: Supervisor, other: AgentLeases
) -> None:
    """The two machines' rosters differ: this one's edit removes alpha, which the other
    supervisor runs (its roster keeps it). Our reload forgot alpha as if it were ours:
    it unregistered alpha's row (the other's) and answered every request alpha was
    working on or had queued `recipient_removed`, though alpha runs on and would answer
    them. Now our slot goes, the row and alpha's requests are the other's."""
    assert sup.mailbox is not None
    for name in sup.roster.agents:
        sup.add_slot(name)
    working = await sup.mailbox.request("beta", "alpha", "claimed by the other's alpha")
    claimed = await other.mailbox.claim("alpha", owner=f"{OTHER}:alpha", lease_s=60)
    assert [m.id for m in claimed] == [working.id]
    queued = await sup.mailbox.request("beta", "alpha", "queued for it")
    data = yaml.safe_load(sup.roster.path.read_text(encoding="utf-8"))
    del data["agents"]["alpha"]
    sup.roster.path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = await reload.apply_reload(sup)
    assert result.ok, result.errors
    assert "alpha" not in sup.slots
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    statuses = {m.id: m.status for m in await sup.mailbox.list(recipient="alpha")}
    assert statuses == {working.id: "leased", queued.id: "pending"}


async def test_the_lease_asked_while_the_queue_is_away_is_a_refused_write(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The question "whose row is it?" cannot be asked (the NATS server out of reach):
    the record is refused as a write would be, logged and kept for the housekeeping,
    never raised into whoever recorded the move (a session, a stop)."""
    slot = sup.add_slot("beta")
    outage = errors.QueueUnavailable("nats://test", "a leader election", "")

    async def away(agent: str) -> errors.AgentHeldElsewhere | None:
        raise outage

    monkeypatch.setattr(sup.leases, "held_elsewhere", away)
    with structlog.testing.capture_logs() as logs:
        await sup.record_moves(slot, slot.life.start())
    assert [e["agent"] for e in logs if e["event"] == "state_not_recorded"] == ["beta"]
    assert slot.unrecorded == {"pid": None}  # owed: the housekeeping records it again
    assert await _row(sup, "beta") == ("stopped", None)
    monkeypatch.undo()
    await registry.record(sup, slot)
    assert slot.unrecorded is None
    assert await _row(sup, "beta") == ("waiting", None)


async def test_one_supervisor_per_team_records_without_asking_whose_row_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite (one supervisor, the lock file): every row is ours, answered at once; a
    record asks nothing more of the queue than its write (the hop bench/team.py times)."""
    roster = _roster(tmp_path, None)
    roster.database.parent.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(roster, watch_roster=False)
    assert isinstance(sup.leases, LocalLeases)

    async def asked(agent: str) -> errors.AgentHeldElsewhere | None:
        raise AssertionError(f"asked whose {agent}'s row is")

    monkeypatch.setattr(sup.leases, "held_elsewhere", asked)
    async with AsyncMailbox(roster.database) as mailbox:
        await mailbox.register("alpha", state="stopped")
        sup.mailbox = mailbox
        slot = sup.add_slot("alpha")
        await sup.record_moves(slot, slot.life.start())
        await sup.record_moves(slot, slot.life.stop_moves())
        info = await mailbox.agent("alpha")
    assert info is not None
    assert info.state == "stopped"
    assert not slot.elsewhere


@pytest.mark.parametrize("holder_writes", [False, True])
async def test_a_record_whose_lease_moves_before_its_write_leaves_the_new_holders_row(
    sup: Supervisor, config: NatsConfig, monkeypatch: pytest.MonkeyPatch, holder_writes: bool
) -> None:
    """Alpha ours (its lease held here), its `stopped` recorded: the lease is asked, then
    the row written, two steps. The other supervisor takes alpha exactly in between
    (the hook runs as our write of alpha's row is about to reach the server; ours ran out,
    say, while this machine was away), and writes its row too (``holder_writes``) or not
    yet. Our write never lands on its row: the lease moved, the row is the other's. The
    refusal is no error: logged once as row_held_elsewhere, nothing owed."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = sup.add_slot("alpha")
    await sup.leases.take("alpha")
    await sup.record_moves(slot, slot.life.start())
    assert await _row(sup, "alpha") == ("waiting", None)
    kv = sup.mailbox.kv
    real_update = kv.update
    taken: list[AgentLeases] = []

    async def other_takes_it_first(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.alpha" and not taken:
            other = NatsMailbox(config)
            await other.open()
            leases = AgentLeases(other, OTHER)
            taken.append(leases)
            # Ours ran out: the other supervisor takes it over as `take` does.
            found = await other.kv.get("l.alpha")
            assert found.value is not None
            record = json.loads(found.value)
            record["expires_at"] = 0.0
            await other.kv.put("l.alpha", json.dumps(record).encode())
            _ours_ran_out(sup, other)
            await leases.take("alpha")
            if holder_writes:
                await other.update_agent("alpha", state="ready", pid=OTHER_PID)
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", other_takes_it_first)
    try:
        with structlog.testing.capture_logs() as logs:
            for target in slot.life.stop_moves():
                await sup.move_to(slot, target, pid=None)
            await registry.record(sup, slot, pid=None)  # the housekeeping's, later
    finally:
        for leases in taken:
            await leases.release_all()
            await leases.mailbox.aclose()
    assert taken, "the hook never ran: no write of alpha's row"
    assert await _row(sup, "alpha") == (
        ("ready", OTHER_PID) if holder_writes else ("waiting", None)
    )
    assert slot.elsewhere
    assert slot.unrecorded is None  # nothing owed: not retried forever
    said = [e for e in logs if e["event"] == "row_held_elsewhere"]
    assert [e["agent"] for e in said] == ["alpha"]


async def test_a_field_written_beside_the_state_leaves_the_row_of_an_agent_taken_over(
    sup: Supervisor, config: NatsConfig
) -> None:
    """Our session of alpha reports a new pid (a rewind) after the other supervisor took
    alpha over (ours ran out while this machine was cut off; the renewal that would
    tell us has not come yet): the pid is not written over the other's row, refused
    as a record is (row_held_elsewhere, once), and nothing is owed."""
    slot = sup.add_slot("alpha")
    await sup.leases.take("alpha")
    await sup.record_moves(slot, slot.life.start())
    async with NatsMailbox(config) as mailbox:
        found = await mailbox.kv.get("l.alpha")
        assert found.value is not None
        record = json.loads(found.value)
        record["expires_at"] = 0.0  # ours ran out
        await mailbox.kv.put("l.alpha", json.dumps(record).encode())
        _ours_ran_out(sup, mailbox)
        leases = AgentLeases(mailbox, OTHER)
        await leases.take("alpha")
        await mailbox.update_agent("alpha", state="ready", pid=OTHER_PID)
        try:
            assert sup.leases.holds("alpha")  # not told yet
            with structlog.testing.capture_logs() as logs:
                assert await registry.write(sup, slot, pid=777)
                await registry.write(sup, slot, meta={"context": {"used": 1}})
            assert await _row(sup, "alpha") == ("ready", OTHER_PID)
            info = await mailbox.agent("alpha")
            assert info is not None
            assert "context" not in info.meta
        finally:
            await leases.release_all()
    assert slot.elsewhere
    said = [e for e in logs if e["event"] == "row_held_elsewhere"]
    assert [e["agent"] for e in said] == ["alpha"]


async def test_what_a_waiting_agent_waits_for_is_not_told_into_the_team_while_nats_is_away(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keep_told (depends.py) rewrites a `waiting` row's reason at each change. With the
    NATS server out of reach, "whose row is it?" cannot be asked: the rewrite is a refused
    write (logged, owed to the housekeeping), as every record is, never an error raised
    into the supervisor's task group, which would end the whole team."""
    slot = sup.add_slot("beta")
    await sup.record_moves(slot, slot.life.start())  # queued here: `waiting`, ours
    assert slot.shown_waiting
    outage = errors.QueueUnavailable("nats://test", "a leader election", "")

    async def away(agent: str) -> errors.AgentHeldElsewhere | None:
        raise outage

    monkeypatch.setattr(sup.leases, "held_elsewhere", away)
    before = slot.stats["waiting_for"]
    alpha = sup.add_slot("alpha")  # queued behind alpha's start, now under way
    alpha.done = anyio.Event()
    slot.behind = [alpha]
    assert depends.waits_for(sup, slot) != before  # its row is to say so
    told = anyio.Event()

    async def record(told_slot: Slot) -> None:  # the supervisor's, then seen
        await registry.record(sup, told_slot)
        told.set()

    with structlog.testing.capture_logs() as logs, anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(depends.keep_told, sup, record)
            await told.wait()  # its reason's rewrite, refused
            sup.stop()
    assert slot.unrecorded == {}  # owed: the housekeeping records it again
    assert [e["agent"] for e in logs if e["event"] == "state_not_recorded"] == ["beta"]
    assert await _row(sup, "beta") == ("waiting", None)


async def test_a_take_whose_row_rewrite_is_refused_at_once_still_moves_the_rows_revision(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A take rewrites the agent's row as it is (a new revision, same bytes), so that a
    write of the old holder, conditional on the revision it read with the lease still
    its, fails. The first try meets a stream without a leader (no responders: refused
    at once, not stored); the row read again is the same bytes, which the update loop
    took for its own write landed with the answer lost. The take must still leave the
    row at a new revision."""
    assert isinstance(sup.mailbox, NatsMailbox)
    kv = sup.mailbox.kv
    before = await kv.get("a.alpha")
    real_update = kv.update
    refused: list[str] = []

    async def no_leader_once(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.alpha" and not refused:
            refused.append(key)
            raise nats.errors.NoRespondersError
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", no_leader_once)
    await sup.leases.take("alpha")
    assert refused == ["a.alpha"]
    after = await kv.get("a.alpha")
    assert after.value == before.value
    assert after.revision is not None
    assert before.revision is not None
    assert after.revision > before.revision, "the old holder's pending write would land"


async def test_agents_queued_by_a_start_in_layers_while_nats_is_away_are_queued(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` (and a reload) shows the agents it will start as `waiting` first, each unless
    another supervisor runs it. That question unanswerable (the NATS server out of reach)
    must not raise out of `up`'s start-up, which runs in the supervisor's task group (the
    team ended): the agent is queued, its row's write refused and owed, as any record."""
    outage = errors.QueueUnavailable("nats://test", "a leader election", "")

    async def away(agent: str) -> errors.AgentHeldElsewhere | None:
        raise outage

    slot = sup.add_slot("beta")
    monkeypatch.setattr(sup.leases, "held_elsewhere", away)
    with structlog.testing.capture_logs() as logs:
        queued = await sup._queue(["beta"], still_wanted=False)
    assert queued == [slot]
    assert slot.state == AgentState.WAITING
    assert [e["agent"] for e in logs if e["event"] == "state_not_recorded"] == ["beta"]
    assert slot.unrecorded is not None  # owed: the housekeeping records it again


async def test_a_reload_stopping_agents_while_nats_is_away_queues_them_again(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload stops the changed agents layer by layer and shows those it restarts as
    `waiting` from their stop on, each unless another supervisor runs it. With that
    question unanswerable (the server out of reach) it raised out of the reload, which
    ended half done: the stopped agents were never queued again. Now they are queued,
    their rows' writes refused and owed like any record; a removed agent's row too."""
    outage = errors.QueueUnavailable("nats://test", "a leader election", "")

    async def away(agent: str) -> errors.AgentHeldElsewhere | None:
        raise outage

    beta = sup.add_slot("beta")
    monkeypatch.setattr(sup.leases, "held_elsewhere", away)
    await reload._stop_in_order(sup, sup.roster, ["beta"], {"beta"})
    assert beta.state == AgentState.WAITING
    await reload._register_agent(sup, "alpha", sup.roster.agents["alpha"], queued=True)
    assert sup.slots["alpha"].state == AgentState.WAITING


def _count_requests(sup: Supervisor, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests our side sends the server from now on, one round trip each, by the
    key each is about: a KV write's subject ends with its key, a read names it in its
    payload (``last_by_subj``)."""
    assert isinstance(sup.mailbox, NatsMailbox)
    nc = sup.mailbox.nc
    real_request = nc.request
    sent: list[str] = []

    async def counted(subject: str, payload: bytes = b"", *args: Any, **kwargs: Any) -> Any:
        about = subject
        if "MSG.GET" in subject:
            about = json.loads(payload).get("last_by_subj", subject)
        sent.append(about.rsplit(".", 2)[-2] + "." + about.rsplit(".", 1)[-1])
        return await real_request(subject, payload, *args, **kwargs)

    monkeypatch.setattr(nc, "request", counted)
    return sent


async def _running_here(sup: Supervisor, name: str) -> Slot:
    """``name`` held and running here (`ready`), its row saying so."""
    slot = sup.add_slot(name)
    await sup.leases.take(name)
    await sup.record_moves(slot, slot.life.start())
    await sup.record_moves(slot, slot.life.session_starting())
    await sup.record_moves(slot, slot.life.move(AgentState.READY))
    assert await _row(sup, name) == ("ready", None)
    return slot


async def test_a_heartbeat_after_the_agent_was_taken_over_leaves_the_new_holders_row(
    sup: Supervisor, config: NatsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpha runs here; our lease runs out (this machine cut off) and the other supervisor
    takes alpha over exactly between our heartbeat's read of alpha's row and its write
    (the hook), and writes its row. Our heartbeat, not told yet (its renewal has not
    come), must not bump the new holder's heartbeat_at: it is asked of the lease in the
    row's conditional write, as every field is, and the slot says the row is elsewhere."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = await _running_here(sup, "alpha")
    kv = sup.mailbox.kv
    real_update = kv.update
    taken: list[AgentLeases] = []

    async def other_takes_it_first(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.alpha" and not taken:
            other = await NatsMailbox(config).open()
            leases = AgentLeases(other, OTHER)
            taken.append(leases)
            _ours_ran_out(sup, other)
            await leases.take("alpha")
            await other.update_agent("alpha", state="ready", pid=OTHER_PID)
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", other_takes_it_first)
    try:
        with structlog.testing.capture_logs() as logs:
            await registry.heartbeats(sup)
            assert taken, "the hook never ran: no write of alpha's row"
            theirs = await taken[0].mailbox.kv.get("a.alpha")
            await registry.heartbeats(sup)  # told by now: alpha's row is not beaten again
    finally:
        for leases in taken:
            await leases.release_all()
            await leases.mailbox.aclose()
    now = await sup.mailbox.kv.get("a.alpha")
    assert now.revision == theirs.revision, "our heartbeat landed on the new holder's row"
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    assert slot.elsewhere
    said = [e for e in logs if e["event"] == "row_held_elsewhere"]
    assert [e["agent"] for e in said] == ["alpha"]


async def test_a_record_or_heartbeat_of_an_agent_held_here_reads_no_lease(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While our own renewal of alpha's lease surely runs, nobody else can take alpha
    (a live lease is not taken), so a record, a field's write and a heartbeat of alpha
    are its row's read and conditional write: two round trips, the lease not read (it
    was read once more before). Once our lease's end is near (no renewal answered), the
    lease is asked again."""
    assert sup.mailbox is not None
    slot = await _running_here(sup, "alpha")
    await registry.register_self(sup, sup.mailbox)
    sent = _count_requests(sup, monkeypatch)
    await registry.record(sup, slot)
    await registry.write(sup, slot, meta={"context": {"used": 1}})
    await registry.heartbeats(sup)  # the supervisor's row, then alpha's
    assert sent == [*["a.alpha"] * 4, "a.supervisor", "a.supervisor", "a.alpha", "a.alpha"]
    sent.clear()
    _ours_ran_out(sup)  # our renewal did not come: the lease is read again
    await registry.record(sup, slot)
    assert sent == ["a.alpha", "l.alpha", "a.alpha"]


async def test_a_waiting_write_tried_again_after_the_start_recorded_starting_loses(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beta queued here (`waiting`); keep_told rewrites its reason (a record of its
    current state, `waiting`). Exactly between that write's read of the row and its
    write (the hook), beta's start takes its lease and records `starting`. The waiting
    write, conditional on the revision it read, fails and is tried again: it must lose
    (the agent moved on, its own write went first), not put `waiting` back over
    `starting` until the next move."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = sup.add_slot("beta")
    await sup.record_moves(slot, slot.life.start())
    assert await _row(sup, "beta") == ("waiting", None)
    kv = sup.mailbox.kv
    real_update = kv.update
    started: list[str] = []

    async def start_first(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.beta" and not started:
            started.append(key)
            await sup.leases.take("beta")  # as the start's task does, then its move
            await sup.record_moves(slot, slot.life.session_starting())
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", start_first)
    slot.stats["waiting_for"] = "alpha"  # what keep_told tells: beta's reason changed
    await registry.record(sup, slot)  # keep_told's write, slot.state `waiting` then
    assert started, "the hook never ran: no write of beta's row"
    assert slot.state == AgentState.STARTING
    assert await _row(sup, "beta") == ("starting", None)
    assert slot.unrecorded is None  # nothing owed: the newer write said it all
    await sup.leases.release("beta")


@pytest.mark.parametrize("holder_writes", [False, True])
async def test_a_row_registered_again_after_its_deletion_leaves_an_agent_taken_over(
    sup: Supervisor, config: NatsConfig, monkeypatch: pytest.MonkeyPatch, holder_writes: bool
) -> None:
    """Alpha runs here; its row is deleted under us (`unregister`, a purge by hand): our
    next record finds it gone and registers it again. Exactly between that create's
    check of the lease and its write (the hook, on the write reaching the server), our
    lease runs out and the other supervisor takes alpha over, and registers its row too
    (``holder_writes``) or not yet. Our row must not land: not created over the absent
    row (the take marks it, the create was conditional on the revision it found), nor
    written over the other's. The slot says the row is elsewhere, nothing owed."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = await _running_here(sup, "alpha")
    assert await sup.mailbox.unregister("alpha", force=True)

    async def registers(other: NatsMailbox) -> None:
        await other.register("alpha", "theirs", pid=OTHER_PID, state="ready")

    then = registers if holder_writes else None
    async with _taken_at_our_write(sup, config, monkeypatch, then, ours_ran_out=True) as taken:
        with structlog.testing.capture_logs() as logs:
            await registry.record(sup, slot)
        assert taken, "the hook never ran: no write of alpha's row"
        theirs = await taken[0].mailbox.agent("alpha")
    assert slot.elsewhere
    assert slot.unrecorded is None
    assert [e["event"] for e in logs if e["event"] == "reregistered"] == []
    ours = await sup.mailbox.agent("alpha")
    if holder_writes:
        assert ours is not None
        assert (ours.description, ours.state, ours.pid) == ("theirs", "ready", OTHER_PID)
    else:
        assert ours is None, "our row landed on an agent the other supervisor holds"
        # The take's marker reads absent: listed nowhere, and the row is registered over it.
        assert [a.name for a in await sup.mailbox.agents()] == ["beta"]
        assert theirs is None
        await sup.mailbox.register("alpha", "again", state="stopped")
        assert await _row(sup, "alpha") == ("stopped", None)
        return
    assert theirs == ours


async def test_queueing_and_unqueueing_an_agent_asks_whose_it_is_once(
    sup: Supervisor, other: AgentLeases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up`'s (and a reload's) queueing of an agent, and a `stop` of one still queued,
    ask whose the agent is in the record's own conditional write: once (they asked
    before it too). Beta is free: queued (`waiting`, row read, lease read, row written),
    then stopped while queued, the same three. Alpha, run by the other supervisor: not
    queued, its row left alone, the lease asked once; its `stop` is refused naming the
    other supervisor, also after one question."""
    sent = _count_requests(sup, monkeypatch)
    beta = sup.add_slot("beta")
    assert await sup._queue(["beta"], still_wanted=False) == [beta]
    assert beta.state == AgentState.WAITING
    assert sent == ["a.beta", "l.beta", "a.beta"]
    assert await _row(sup, "beta") == ("waiting", None)
    sent.clear()
    assert await operations.stop_agent(sup, "beta") == "stopped"
    assert [s for s in sent if s.endswith(".beta")] == ["a.beta", "l.beta", "a.beta"]
    assert await _row(sup, "beta") == ("stopped", None)

    alpha = sup.add_slot("alpha")
    sent.clear()
    assert await sup._queue(["alpha"], still_wanted=False) == []
    assert sent == ["a.alpha", "l.alpha"]
    assert alpha.state == AgentState.STOPPED  # not queued here: the other runs it
    assert not alpha.shown_waiting
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    alpha.life.queue()  # as if queued before the other took it: a `stop` is refused
    sent.clear()
    with pytest.raises(errors.AgentHeldElsewhere):
        await operations.stop_agent(sup, "alpha")
    assert [s for s in sent if s.endswith(".alpha")] == ["a.alpha", "l.alpha"]
    assert alpha.state == AgentState.STOPPED
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)


async def test_the_log_says_only_the_states_written_on_an_agent_run_elsewhere(
    sup: Supervisor, other: AgentLeases
) -> None:
    """`up`'s queueing of alpha, run by the other supervisor, writes nothing (its row is
    the other's) and takes the queueing back: the log said `state waiting` for alpha all
    the same, a change its row never showed. A `stop` of alpha queued before the other
    took it is refused: it said `state stopped`. Beta, ours, is said as written."""
    alpha, beta = sup.add_slot("alpha"), sup.add_slot("beta")
    with structlog.testing.capture_logs() as logs:
        assert await sup._queue(["alpha", "beta"], still_wanted=False) == [beta]
        alpha.life.queue()  # as if queued before the other took it
        with pytest.raises(errors.AgentHeldElsewhere):
            await operations.stop_agent(sup, "alpha")
    said = [(e["agent"], e["state"]) for e in logs if e["event"] == "state"]
    assert said == [("beta", "waiting")]
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    assert await _row(sup, "beta") == ("waiting", None)


async def test_a_reload_queues_an_agent_it_stopped_asking_whose_it_is_once(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload stops a changed agent and shows it `waiting` for its restart: whose it
    is, is asked in that record's own write, once (it was asked before it too)."""
    beta = sup.add_slot("beta")
    sent = _count_requests(sup, monkeypatch)
    await reload._stop_in_order(sup, sup.roster, ["beta"], {"beta"})
    assert beta.state == AgentState.WAITING
    assert [s for s in sent if s == "l.beta"] == ["l.beta"]
    assert await _row(sup, "beta") == ("waiting", None)


async def test_up_registering_its_agents_leaves_the_row_of_one_taken_over_meanwhile(
    sup: Supervisor, config: NatsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` asks whose each agent is, then writes the rows of its own as `stopped`.
    Exactly between the question and alpha's write (the hook), the other supervisor
    takes alpha and writes its row: our `stopped` must not land on it (it is asked of
    the lease again in the row's own conditional write), and our slot of alpha says the
    row is elsewhere. Beta, nobody else's, is registered as before."""
    assert isinstance(sup.mailbox, NatsMailbox)
    async with _taken_at_our_write(sup, config, monkeypatch, _writes_ready) as taken:
        await sup._prepare(sup.mailbox)
        assert taken, "the hook never ran: no write of alpha's row"
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    assert sup.slots["alpha"].elsewhere
    assert await _row(sup, "beta") == ("stopped", None)
    assert not sup.slots["beta"].elsewhere


async def test_a_reload_registering_an_agent_leaves_the_row_of_one_taken_over_meanwhile(
    sup: Supervisor, config: NatsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload asks whose an added (or changed) agent is, then registers its row and
    marks it supervised. Exactly between the question and alpha's write (the hook), the
    other supervisor takes alpha and writes its row: our `waiting` (queued: the reload
    starts it) must not land on it, nor our supervised mark, and our slot of alpha says
    the row is elsewhere (as `up`'s registration and the re-register do)."""
    assert isinstance(sup.mailbox, NatsMailbox)
    async with _taken_at_our_write(sup, config, monkeypatch, _writes_ready) as taken:
        await reload._register_agent(sup, "alpha", sup.roster.agents["alpha"], queued=True)
        assert taken, "the hook never ran: no write of alpha's row"
        info = await sup.mailbox.agent("alpha")
    assert info is not None
    assert (info.state, info.pid) == ("ready", OTHER_PID)
    assert "supervised" not in info.meta
    assert sup.slots["alpha"].elsewhere
    assert sup.slots["alpha"].state == AgentState.WAITING  # our lifecycle: queued


async def test_the_pid_of_a_ready_write_that_lost_to_a_newer_move_is_still_written(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpha runs here and its session becomes `ready` with its claude's pid. Exactly
    between that write's read of the row and its write (the hook), an operator pauses
    alpha, recorded first (`paused`, no pid: a pause keeps the process). The ready
    write fails, reads again and loses as stale: its state rightly, but the pid went
    with it, so the row said `paused`, pid None for a live process (`ps`, and a later
    `up` that kills a stale claude by the row's pid, found none). The pid is owed
    now, written by the housekeeping's next record."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = sup.add_slot("alpha")
    await sup.leases.take("alpha")
    await sup.record_moves(slot, slot.life.start())
    await sup.record_moves(slot, slot.life.session_starting())
    assert await _row(sup, "alpha") == ("starting", None)
    kv = sup.mailbox.kv
    real_update = kv.update
    paused: list[str] = []

    async def pause_first(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.alpha" and not paused:
            paused.append(key)
            await sup.record_moves(slot, slot.life.pause())  # the operator's `pause`
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", pause_first)
    await sup.record_moves(slot, slot.life.move(AgentState.READY), pid=OTHER_PID)
    assert paused, "the hook never ran: no write of alpha's row"
    assert slot.state == AgentState.PAUSED
    assert slot.unrecorded == {"pid": OTHER_PID}
    await registry.record(sup, slot)  # the housekeeping's record of what is owed
    assert await _row(sup, "alpha") == ("paused", OTHER_PID)
    assert slot.unrecorded is None
    await sup.leases.release("alpha")


async def test_a_record_written_leaves_owed_what_another_owed_during_its_write(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a record's read of `slot.unrecorded` and the end of its write (the hook),
    a record that lost or was refused meanwhile owes a pid: the first record's success
    cleared it all (it wrote no pid), so the pid was never written."""
    assert isinstance(sup.mailbox, NatsMailbox)
    slot = await _running_here(sup, "alpha")
    kv = sup.mailbox.kv
    real_update = kv.update
    owed: list[str] = []

    async def owe_meanwhile(key: str, value: bytes, last: int | None = None) -> int:
        if key == "a.alpha" and not owed:
            owed.append(key)
            slot.unrecorded = {"pid": OTHER_PID}  # as registry.record does, owing it
        return await real_update(key, value, last=last)

    monkeypatch.setattr(kv, "update", owe_meanwhile)
    await registry.record(sup, slot)
    assert owed, "the hook never ran: no write of alpha's row"
    assert slot.unrecorded == {"pid": OTHER_PID}
    await registry.record(sup, slot)  # the housekeeping's
    assert await _row(sup, "alpha") == ("ready", OTHER_PID)
    assert slot.unrecorded is None
    await sup.leases.release("alpha")


async def test_a_reload_registering_an_agent_nobody_runs_now_takes_its_row_back(
    sup: Supervisor,
) -> None:
    """Beta was run by another supervisor (our slot said its row is elsewhere); that one
    released it, and a reload changes beta: its row is registered by us now, so the slot
    says so (it stayed `elsewhere`, and what reads it, a model note, was left unwritten)."""
    slot = sup.add_slot("beta")
    slot.elsewhere = True
    await reload._register_agent(sup, "beta", sup.roster.agents["beta"], queued=False)
    assert not slot.elsewhere
    assert await _row(sup, "beta") == ("stopped", None)
