"""Start the team, watch it, restart what dies, apply roster edits, shut down.

One task per agent (:meth:`Supervisor._supervise`) owns that agent's runners
in turn; signal handlers only set flags, the loop does the work. The CLI talks
to a running supervisor through the database (:mod:`orchestrator.control`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog

from orchestrator import errors, operations, preflight, procid
from orchestrator.agent_leases import AgentLeases, LocalLeases, agent_leases
from orchestrator.agent_meta import LAUNCHING, MODEL_NOTE, RESUME_AT, TOTAL_KEYS, AgentMeta
from orchestrator.budget_watch import BudgetWatch
from orchestrator.control import serve_control
from orchestrator.launcher import bundled_cli, make_launcher, remove_launcher
from orchestrator.lifecycle import (
    NO_PROCESS,
    RUNNING,
    SETTLED,
    Action,
    AgentState,
    EndReason,
    Lifecycle,
    RestartPolicy,
    RunnerEvent,
    SessionEnd,
)
from orchestrator.lockfile import SupervisorLock
from orchestrator.mailbox import SUPERVISOR, SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend
from orchestrator.mailbox.opening import open_queue
from orchestrator.reload import ReloadResult, apply_reload, fingerprint, watched_paths
from orchestrator.roster import Roster
from orchestrator.sdk_import import SdkImport

# The SDK and the runner are imported in the background (orchestrator/sdk_import.py): this
# module must not import them, or `up` would wait for them before the team is operable.
if TYPE_CHECKING:
    from orchestrator.runner import AgentRunner

log = structlog.get_logger()

# Every commit wakes every waiter, so the chores that write (sweep, heartbeats) run rarely;
# the roster check is a stat() and runs often. Leases are also reclaimed by claims.
SWEEP_EVERY_S = 5.0
RELOAD_POLL_S = 1.0
DEFAULT_GRACE_S = 10.0
START_WAIT_S = 120.0  # how long a layer's start waits for its agents before the next layer
_FAILURE_WORDS = {
    "unavailable": "model unavailable",
    "deterministic": "turn failed",
    "transient": "model error",
}


def _set_event() -> anyio.Event:
    event = anyio.Event()
    event.set()
    return event


@dataclass
class Slot:
    """Everything the supervisor tracks for one agent; its state and restart history are
    its :class:`~orchestrator.lifecycle.Lifecycle`'s."""

    name: str
    life: Lifecycle
    runner: AgentRunner | None = None
    started_at: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    wake: anyio.Event = field(default_factory=anyio.Event)  # cuts a backoff short
    done: anyio.Event = field(default_factory=_set_event)  # no task running for this agent
    # Held by every operation on this agent (start/stop/restart, a reload touching it):
    # two control paths on one agent used to start a second session task (issue 16, A.1).
    ops: anyio.Lock = field(default_factory=anyio.Lock)
    # Fields of state changes the database refused (None: all recorded); housekeeping
    # writes them later (the pid cleared on a stop must not stay stale in `ps`).
    unrecorded: dict[str, Any] | None = None
    handover: str | None = None  # after a context overflow: told to the fresh session
    model_note: str | None = None  # what `ps` shows of the model's trouble (MODEL_NOTE)
    # Another supervisor took this agent over (a shared NATS team, our lease ran out):
    # its registry row is that supervisor's now, so ours writes nothing more on it.
    elsewhere: bool = False

    @property
    def state(self) -> AgentState:
        return self.life.state

    @property
    def want_running(self) -> bool:
        return self.life.want_running

    @want_running.setter
    def want_running(self, value: bool) -> None:
        self.life.want_running = value


class Supervisor:
    def __init__(
        self,
        roster: Roster,
        *,
        only: list[str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        watch_roster: bool = True,
        check_model: bool = False,
        client: Callable[[Any], Any] | None = None,
        model_check: Future[list[preflight.Problem]] | None = None,
        sdk: SdkImport | None = None,
        freeze_start_up: bool = False,
    ) -> None:
        self.roster = roster
        self.only = only
        self.grace_s = grace_s
        self.watch_roster = watch_roster
        self.check_model = check_model  # `up` checks the model once before any agent starts
        # What the runners connect with: the SDK's ClaudeSDKClient unless a test passes a double.
        self.client = client
        # The SDK's import, begun by `up` before anything else (issue 14.5); begun by run()
        # when not given. No agent is launched before it is over (_launchable).
        self._sdk = sdk
        self._launchable = anyio.Event()
        self.unavailable: errors.SdkUnavailable | None = None  # the SDK failed to import
        # `up`: the process is the supervisor's, which may freeze its start-up objects
        # (_launch_when_imported); not a test's process that runs one in passing.
        self.freeze_start_up = freeze_start_up
        # The check `up` began before importing this module (preflight.start_check): its
        # answer is reported at the same point as a check begun here.
        self._model_check = model_check
        # Every lease this supervisor takes is owned by "<instance>:...": `up` recovers
        # the leases of dead supervisors by this prefix (SUPERVISOR_OWNER_PREFIX).
        self.instance = f"{SUPERVISOR_OWNER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.slots: dict[str, Slot] = {}
        self.mailbox: AsyncMailboxBackend | None = None
        self.leases: AgentLeases = LocalLeases()  # which agents are ours to run
        self._lock = SupervisorLock(roster.database)
        self._stopping = anyio.Event()
        self._state_changed = anyio.Event()  # set (and replaced) on every agent state change
        self._forced = False
        self._tg: Any = None
        self._cli_path: str | None = None
        self.reload_lock = anyio.Lock()  # one reload at a time (watcher, `reload`)
        self.watch_fingerprint = fingerprint(watched_paths(roster.path, roster))
        self._failing_chores: set[str] = set()
        self.budgets = BudgetWatch(roster.database, lambda: self.roster, self)
        self.replaced: errors.DatabaseReplaced | None = None  # why the team stopped itself

    # --- running --------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM or ``down``; return after a graceful stop."""
        sdk = self._sdk or SdkImport()
        self._lock.acquire()
        # Each waiting agent and each ask holds a worker thread while SQLite waits.
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(
            64, 8 * len(self.roster.agents)
        )
        try:
            async with open_queue(self.roster, holder=self.instance) as mailbox:
                self.mailbox = mailbox
                self.leases = agent_leases(mailbox, self.instance, self.roster.queue)
                # Shown in the team before commands are served: another supervisor hands
                # back a command naming us while we show ourselves (foreign_commands.py;
                # until now, our process on this host or the command's age did).
                await self.leases.announce()
                sdk.start()  # begun here, not sooner: see _launch_when_imported
                if self.check_model:  # after the local checks (lock, database, logs)
                    await self._check_model()
                await self._prepare(mailbox)
                await self.budgets.open(mailbox)
                try:
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
                        tg.start_soon(self.budgets.run)
                        tg.start_soon(self._signals)
                        tg.start_soon(self.leases.keep, self._lease_lost)
                        tg.start_soon(self._housekeeping)
                        tg.start_soon(self._serve_control)
                        if self.watch_roster:
                            tg.start_soon(self._watch_roster)
                        tg.start_soon(self._launch_when_imported, sdk)
                        await self._start_layers()
                        await self._stopping.wait()
                        await self._shutdown()
                        tg.cancel_scope.cancel()
                except BaseExceptionGroup as group:  # a write met the replaced file first
                    if group.subgroup(errors.DatabaseReplaced) is not group:
                        raise
                    self.replaced = self.replaced or _replaced_in(group)
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.leases.release_all()  # agents a forced stop left held
                        await self.leases.leave()
                if self.replaced is None:
                    try:
                        await mailbox.update_agent(SUPERVISOR, state="stopped", pid=None)
                    except errors.QueueError as exc:  # the lock file says no supervisor runs
                        log.warning("state_not_recorded", agent=SUPERVISOR, error=str(exc))
            if self.replaced is not None:
                raise self.replaced
            if self.unavailable is not None:
                raise self.unavailable
        finally:
            self.budgets.close()
            if self._cli_path:
                remove_launcher(self._cli_path)
            self._lock.release()
            log.info("supervisor_stopped")

    @property
    def stopping(self) -> bool:
        """A graceful stop has begun: nothing starts any more."""
        return self._stopping.is_set()

    async def _check_model(self) -> None:
        if self._model_check is not None:
            problems = await anyio.to_thread.run_sync(self._model_check.result)
        else:
            wanted = [n for layer in self.roster.start_layers(self.only) for n in layer]
            problems = await anyio.to_thread.run_sync(preflight.check, self.roster, wanted)
        if problems:
            raise errors.ModelUnreachable([str(p) for p in problems])

    async def _launch_when_imported(self, sdk: SdkImport) -> None:
        """Once the SDK is imported, write the launcher and let agents launch; if it cannot
        be imported, say so and stop the team (no agent has started).

        The import (sdk_import.py) is begun once the database is open: it is CPU under the
        GIL, as is everything before that point (our imports, the logs, the lock, the
        schema), so begun sooner it only shares the CPU with them, delaying the moment the
        team is operable without launching agents any sooner (measured, issue 14.5). From
        there on it overlaps the model check's network wait and the registration."""
        try:
            await sdk.finished()
        except errors.SdkUnavailable as exc:
            log.error("sdk_unavailable", module=exc.module, error=exc.reason)
            self.unavailable = exc
            self.stop()
            return
        # What start-up made (our modules, the SDK's and mcp's, the roster, ~100k objects)
        # lives as long as the process: frozen, the cyclic collector stops scanning it. A
        # full collection falls in the agents' connect (their sessions allocate), and it
        # held the event loop every agent's handshake waits on for 70-450 ms (measured with
        # gc.callbacks, 10 agents, load 5-9). Only cyclic garbage among these would be kept.
        if self.freeze_start_up:
            gc.freeze()
        self._cli_path = await anyio.to_thread.run_sync(make_launcher)
        self._launchable.set()
        self._changed()
        log.info(
            "agents_launchable",
            sdk_import_s=round(sdk.took_s or 0.0, 3),
            frozen_objects=gc.get_freeze_count(),
        )
        assert self.mailbox is not None
        try:  # `up -d` returns once it reads this: past every check, the import's included
            await self.mailbox.update_agent(SUPERVISOR, meta={LAUNCHING: True})
        except errors.DatabaseReplaced as exc:
            self._abandon(exc)
        except errors.QueueError as exc:
            log.warning("state_not_recorded", agent=SUPERVISOR, error=str(exc))

    async def _until_launchable(self, slot: Slot) -> bool:
        """Wait until agents may launch (:meth:`_launch_when_imported`): True; False if the
        team or this agent was stopped first."""
        while not self._launchable.is_set():
            if self._stopping.is_set() or not slot.want_running:
                return False
            wake = slot.wake
            async with anyio.create_task_group() as tg:
                for event in (self._state_changed, wake):
                    tg.start_soon(_cancel_when_set, event, tg.cancel_scope)
            if wake.is_set():  # a restart asked meanwhile: nothing to cut short
                slot.wake = anyio.Event()
        return True

    def _changed(self) -> None:
        self._state_changed.set()
        self._state_changed = anyio.Event()

    def stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM and ``down`` do)."""
        self._stopping.set()
        self._state_changed.set()  # whoever waits for a state stops waiting

    async def _register_self(self, mailbox: AsyncMailboxBackend) -> None:
        await mailbox.register_supervisor(
            os.getpid(),
            {
                "instance": self.instance,
                "roster": str(self.roster.path),
                LAUNCHING: self._launchable.is_set(),
            },
        )

    async def _prepare(self, mailbox: AsyncMailboxBackend) -> None:
        await self._register_self(mailbox)
        # Leases held by a dead supervisor's sessions can never be acked: requeue them now.
        # Only those (we hold the team's lock, so no other supervisor lives); a live
        # external consumer's lease is its own, and runs out by itself if it died. (A
        # shared NATS team: per agent, as its lease is taken, agent_leases.py.)
        leased = await mailbox.list(status="leased", limit=100_000) if self.leases.exclusive else []
        for owner in {m.lease_owner for m in leased}:
            if (
                owner
                and owner.startswith(SUPERVISOR_OWNER_PREFIX)
                and not owner.startswith(f"{self.instance}:")
            ):
                n = await mailbox.release(owner)
                log.info("recovered_leases", owner=owner, messages=n)
        # `up AGENT…` starts those agents and what they depend on.
        wanted = {n for layer in self.roster.start_layers(self.only) for n in layer}
        for name, spec in self.roster.agents.items():
            if await self.leases.held_elsewhere(name) is not None:
                # Its row is the holder's; if wanted, its start is refused with the holder.
                self.slots[name] = Slot(name, Lifecycle(name, want_running=name in wanted))
                continue
            info = await mailbox.agent(name)
            known = AgentMeta.read(info.meta if info else None)
            if info is not None and info.pid:
                _kill_stale_cli(name, info.pid, known.pid_start)
            # supervised: `unregister` refuses this row while the team runs.
            meta = {**(info.meta if info else {}), "supervised": True}
            slot = Slot(
                name, Lifecycle(name, want_running=name in wanted), stats=AgentMeta.carried(meta)
            )
            slot.model_note = known.model_error
            self.slots[name] = slot
            await mailbox.register(
                name, spec.description, pid=None, state=AgentState.STOPPED.value, meta=meta
            )
        log.info(
            "supervisor_started",
            team=self.roster.name,
            agents=list(self.roster.agents),
            database=str(self.roster.database),
            pid=os.getpid(),
        )

    async def _start_layers(self) -> None:
        """Start the wanted agents layer by layer (see :meth:`start_in_layers`)."""
        await self.start_in_layers([n for n, s in self.slots.items() if s.want_running])

    async def start_in_layers(self, names: list[str]) -> set[str]:
        """Start ``names`` in ``depends_on`` order: a layer starts once the agents started
        in the layers before it are ready (or failed, or START_WAIT_S passed). Returns the
        names started. Callers hold the agents' ``ops`` locks (or nobody else can run)."""
        wanted = set(names)
        started: set[str] = set()
        for layer in self.roster.start_layers():
            now = [n for n in layer if n in wanted and self.slots[n].done.is_set()]
            for name in now:
                if self._spawn(name):
                    started.add(name)
            for name in now:
                slot = self.slots[name]
                with anyio.move_on_after(START_WAIT_S):
                    while slot.state not in SETTLED and not slot.done.is_set():
                        if self._stopping.is_set():
                            return started
                        await self._state_changed.wait()
        return started

    def _spawn(self, name: str) -> bool:
        """Start the task that runs ``name``'s sessions; False if it cannot start now."""
        slot = self.slots[name]
        if self._stopping.is_set() or not slot.done.is_set():
            return False  # the team is stopping, or a task already runs this agent
        slot.life.start()
        slot.done = anyio.Event()
        self._tg.start_soon(self._supervise, slot)
        return True

    # --- one agent -------------------------------------------------------------------

    async def _set_state(self, slot: Slot, target: AgentState, **fields: Any) -> None:
        await self._moved(slot, slot.life.move(target), **fields)

    async def _moved(self, slot: Slot, moves: list[AgentState], **fields: Any) -> None:
        """Announce and record the moves the agent's lifecycle made (none: nothing)."""
        for target in moves:
            self._changed()
            log.info(
                "state",
                agent=slot.name,
                state=target.value,
                **{k: v for k, v in fields.items() if v},
            )
            if target in NO_PROCESS:
                fields = {**fields, "pid": None}
            await self._record(slot, target, **fields)

    async def _record(self, slot: Slot, state: AgentState | None = None, **fields: Any) -> None:
        """Write an agent's state (``state``, or its current one) to the registry. The state
        in memory is what counts: a write refused (another process holding the write lock
        past the busy timeout) is logged and retried by housekeeping, never an end of the
        agent or the team."""
        assert self.mailbox is not None
        if slot.elsewhere:  # the row is the new holder's (a "stopped" here would be a lie)
            slot.unrecorded = None
            return
        meta = AgentMeta.record(
            slot.stats, restarts=slot.life.restart_count, started_at=slot.started_at
        )
        fields = {**(slot.unrecorded or {}), **fields}
        try:
            try:
                await self.mailbox.update_agent(
                    slot.name, state=(state or slot.state).value, meta=meta, **fields
                )
            except errors.RecipientUnknown:
                # Its row was deleted under us (`unregister`, SQL): the registry row of a
                # roster agent is the supervisor's to keep, so it is written again.
                await self._reregister(slot, meta, fields.get("pid"))
        except errors.DatabaseReplaced as exc:  # the team stops; nothing more is written
            self._abandon(exc)
        except errors.QueueError as exc:
            if slot.unrecorded is None:
                log.warning("state_not_recorded", agent=slot.name, error=str(exc))
            slot.unrecorded = {**(slot.unrecorded or {}), **fields}
        else:
            slot.unrecorded = None

    async def _reregister(self, slot: Slot, meta: dict[str, Any], pid: Any) -> None:
        assert self.mailbox is not None
        spec = self.roster.agents.get(slot.name)
        if spec is None or self.slots.get(slot.name) is not slot:
            return  # removed by a reload: gone from the registry on purpose
        if not isinstance(pid, int):
            pid = slot.runner.pid if slot.runner is not None else None
        await self.mailbox.register(
            slot.name,
            spec.description,
            pid=pid,
            state=slot.state.value,
            meta={**meta, "supervised": True},
        )
        log.warning("reregistered", agent=slot.name, reason="its registry row was deleted")

    async def _supervise(self, slot: Slot) -> None:
        try:
            try:
                await self.leases.take(slot.name)
            except errors.AgentHeldElsewhere as exc:  # refused; the other agents run on
                slot.want_running = False
                log.error("agent_held_elsewhere", agent=slot.name, error=str(exc))
                return
            slot.elsewhere = False  # ours again
            await self._supervise_loop(slot)
        except Exception as exc:
            # The supervisor's own boundary per agent: a bug here (or an error nobody
            # expected) fails this agent, never the team (issue 16, A.6).
            log.exception("supervise_crashed", agent=slot.name, error=repr(exc))
            slot.life.crashed()
            with contextlib.suppress(Exception):
                await self._record(slot, pid=None)
                await self._fail_requests(
                    slot.name, errors.RecipientFailed.code, f"'{slot.name}' failed: {exc!r}"
                )
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(errors.QueueError):
                await self.leases.release(slot.name)
            slot.done.set()
            self._changed()

    async def _supervise_loop(self, slot: Slot) -> None:
        launchable = await self._until_launchable(slot)  # no claude before the SDK is there
        while launchable and slot.want_running and not self._stopping.is_set():
            end = await self._one_session(slot)
            decision = slot.life.session_ended(
                end,
                RestartPolicy.of(self.roster.agents.get(slot.name)),
                stopping=self._stopping.is_set(),
            )
            if decision.action == Action.STOP:
                break
            if decision.action == Action.FAIL:
                # Recorded, and its askers answered, before slot.done is set (in
                # _supervise): whoever waits for the task sees the agent failed.
                await self._moved(slot, [slot.state])
                log.error("failed", agent=slot.name, reason=decision.why)
                await self._fail_requests(
                    slot.name, errors.RecipientFailed.code, f"'{slot.name}' failed: {decision.why}"
                )
                return
            if decision.fresh:  # the prompt outgrew the model's window
                await self._context_reset(slot, end)
                continue
            await self._moved(slot, [slot.state])
            if decision.why == "requested":
                log.info("restarting", agent=slot.name, reason="requested")
                continue
            log.warning(
                "restarting",
                agent=slot.name,
                reason=end.reason.value,
                detail=end.detail,
                exit_code=end.exit_code,
                backoff_s=round(decision.delay_s, 3),
            )
            with anyio.move_on_after(decision.delay_s):
                await slot.wake.wait()
            slot.wake = anyio.Event()
        for target in slot.life.stop_moves():
            await self._set_state(slot, target)

    async def _one_session(self, slot: Slot) -> SessionEnd:
        assert self.mailbox is not None
        # The SDK import imported it (sdk_import.py); _until_launchable waited for that.
        from orchestrator.runner import AgentRunner  # noqa: PLC0415 - lazy on purpose

        await self._moved(slot, slot.life.session_starting())
        slot.started_at = time.time()
        runner = AgentRunner(
            slot.name,
            self.mailbox,
            lambda: self.roster,
            owner=f"{self.instance}:{slot.name}:{uuid.uuid4().hex[:6]}",
            cli_path=self._cli_path,
            on_event=lambda event, data: self._on_runner_event(slot, event, data),
            session_id=slot.stats.get("session_id"),
            peer_state=self._peer_state,
            totals=slot.stats,
            resume_at=slot.stats.get(RESUME_AT),
            hold=self.budgets.hold,
            **({"client": self.client} if self.client is not None else {}),
        )
        runner.context.handover = slot.handover
        slot.handover = None
        slot.runner = runner
        if self._stopping.is_set() or not slot.want_running:
            runner.request_stop(0)
        try:
            end = await runner.run()
        except Exception as exc:
            replaced = _replaced_in(exc)
            if replaced is not None:  # not this agent's bug: the whole team stops
                self._abandon(replaced)
                return SessionEnd(EndReason.ERROR, replaced.reason)
            # A supervision boundary: one agent's bug must not take the team down; it counts
            # as a failed session and follows the restart policy.
            log.exception("session_crashed", agent=slot.name, error=repr(exc))
            end = SessionEnd(EndReason.ERROR, repr(exc))
        finally:
            slot.runner = None
        log.info(
            "session_ended",
            agent=slot.name,
            reason=end.reason.value,
            detail=end.detail,
            exit_code=end.exit_code,
        )
        return end

    async def _lease_lost(self, name: str, exc: errors.AgentHeldElsewhere) -> None:
        """Another supervisor took ``name`` over (ours ran out while the server was out of
        reach): stop our session of it at once, its messages are the other's now."""
        slot = self.slots.get(name)
        if slot is not None:
            log.error("agent_taken_elsewhere", agent=name, error=str(exc))
            slot.elsewhere = True
            self._request_stop(slot, 0)

    def _peer_state(self, name: str) -> str | None:
        slot = self.slots.get(name)
        return slot.state.value if slot else None

    async def _on_runner_event(self, slot: Slot, event: RunnerEvent, data: dict[str, Any]) -> None:
        """What a runner's event means: the state's move is the lifecycle's (a pair it does
        not know moves nothing); what goes with it (stats, notes, budgets) is here."""
        if event == RunnerEvent.READY:
            slot.stats["session_id"] = data.get("session_id") or slot.stats.get("session_id")
            pid = data.get("pid")  # its start time tells a later `up` it is still this process
            slot.stats["pid_start"] = procid.start_ticks(pid) if isinstance(pid, int) else None
            moves = slot.life.on_runner_event(event)
            if moves:
                await self._moved(slot, moves, pid=pid)
                await self.budgets.evaluate("start")
            elif self.mailbox is not None and not slot.elsewhere:  # a new process (a rewind)
                await self.mailbox.update_agent(slot.name, pid=pid)
        elif event == RunnerEvent.CONTEXT:  # context in use against the window (context.py)
            assert self.mailbox is not None
            if not slot.elsewhere:
                await self.mailbox.update_agent(slot.name, meta={"context": data}, heartbeat=False)
        elif event == RunnerEvent.MODEL_ERROR:
            await self._note_model(slot, str(data.get("reason") or ""))
        elif event == RunnerEvent.TURN:
            # The runner keeps the totals (orchestrator.usage); the state's record persists them.
            slot.stats.update({k: v for k, v in data["totals"].items() if k in TOTAL_KEYS})
            if data.get("resume_at"):
                slot.stats[RESUME_AT] = data["resume_at"]
            failure = data.get("failure")
            if failure is None:
                await self._note_model(slot, None)  # the model answered: nothing to show
            else:
                await self._note_model(slot, f"{_FAILURE_WORDS[failure.kind]}: {failure.reason}")
            await self._moved(slot, slot.life.on_runner_event(event))
            await self.budgets.after_turn(slot.name, data)
        else:  # busy, blocked (issue 11: approvals), unblocked
            moves = slot.life.on_runner_event(event)
            if event == RunnerEvent.BLOCKED and moves:
                slot.stats["blocked_reason"] = data.get("reason")
            elif event == RunnerEvent.UNBLOCKED and moves:
                slot.stats.pop("blocked_reason", None)
            await self._moved(slot, moves)

    async def _context_reset(self, slot: Slot, end: SessionEnd) -> None:
        """The prompt outgrew the model's window: the next session starts afresh (no
        resume) and is told where it was; the message in flight was requeued."""
        slot.stats["session_id"] = None
        slot.stats[RESUME_AT] = None  # a point in the old conversation: nothing to go back to
        slot.handover = end.handover
        await self._moved(slot, [slot.state])  # BACKOFF, counted as a restart
        log.warning("context_reset", agent=slot.name, detail=end.detail)

    # --- budgets (orchestrator/budget_watch.py decides; these move the state) ---------------

    def agent_state(self, name: str) -> AgentState | None:
        slot = self.slots.get(name)
        return slot.state if slot else None

    async def pause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None:
            await self._moved(slot, slot.life.pause())

    async def unpause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None:
            await self._moved(slot, slot.life.unpause())

    async def _note_model(self, slot: Slot, note: str | None) -> None:
        """What `ps` shows beside the state: the model's last trouble, until it answers."""
        assert self.mailbox is not None
        note = note and note[:200]
        if note != slot.model_note and not slot.elsewhere:  # one write per change
            slot.model_note = note
            await self.mailbox.update_agent(slot.name, meta={MODEL_NOTE: note})

    async def _fail_requests(self, name: str, code: str, detail: str) -> None:
        """Answer every request still waiting for ``name`` with an error ``code``, so its
        askers stop waiting now (notices stay queued for the agent's return). A database
        that refuses the writes leaves them to their TTL: logged, not fatal."""
        assert self.mailbox is not None
        answered = 0
        try:
            for status in ("pending", "leased"):
                for m in await self.mailbox.list(status=status, recipient=name, limit=100_000):
                    if m.kind == "request" and await self.mailbox.fail_request(m.id, code, detail):
                        answered += 1
        except errors.DatabaseReplaced as exc:
            self._abandon(exc)
        except errors.QueueError as exc:
            log.error("requests_not_failed", agent=name, code=code, error=str(exc))
        if answered:
            log.warning("requests_failed", agent=name, requests=answered, code=code)

    # --- the loop's chores ---------------------------------------------------------------

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self._stopping.is_set() and signum == signal.SIGINT:
                    log.warning("forced_stop")
                    self._forced = True
                    for slot in self.slots.values():
                        if slot.runner:
                            slot.runner.force_stop()
                    continue
                log.info("signal", signal=signal.Signals(signum).name, grace_s=self.grace_s)
                self.stop()

    async def _housekeeping(self) -> None:
        """Sweep expired leases and TTLs, beat the hearts, re-record unwritten states.
        A chore the database refuses (another process holding the write lock past the
        busy timeout) is reported once and tried again at the next round (issue 16, A.2)."""
        assert self.mailbox is not None
        next_sweep = time.monotonic() + SWEEP_EVERY_S
        while True:
            await anyio.sleep(RELOAD_POLL_S)
            try:
                self.mailbox.check_file()
            except errors.DatabaseReplaced as exc:
                self._abandon(exc)
                return
            if time.monotonic() < next_sweep:
                continue
            next_sweep = time.monotonic() + SWEEP_EVERY_S
            await self._chore("sweep", self._sweep)
            await self._chore("heartbeat", self._heartbeats)
            for slot in list(self.slots.values()):
                if slot.unrecorded is not None:
                    await self._record(slot)

    async def _sweep(self) -> None:
        assert self.mailbox is not None
        swept = await self.mailbox.sweep()
        if swept.requeued or swept.expired or swept.dead:
            log.info("sweep", requeued=swept.requeued, expired=swept.expired, dead=swept.dead)

    async def _heartbeats(self) -> None:
        assert self.mailbox is not None
        try:
            await self.mailbox.update_agent(SUPERVISOR, heartbeat=True)
        except errors.RecipientUnknown:  # its row deleted under us: written again
            await self._register_self(self.mailbox)
        for slot in list(self.slots.values()):
            if slot.state in RUNNING and not slot.elsewhere:
                try:
                    await self.mailbox.update_agent(slot.name, heartbeat=True)
                except errors.RecipientUnknown:
                    await self._record(slot)

    async def _chore(self, name: str, chore: Callable[[], Awaitable[None]]) -> None:
        try:
            await chore()
        except errors.DatabaseReplaced as exc:
            self._abandon(exc)
        except errors.QueueError as exc:
            if name not in self._failing_chores:
                log.warning("chore_failed", chore=name, error=str(exc), retry_in_s=SWEEP_EVERY_S)
            self._failing_chores.add(name)
        else:
            if name in self._failing_chores:
                self._failing_chores.discard(name)
                log.info("chore_recovered", chore=name)

    async def _watch_roster(self) -> None:
        """Reload when agents.yaml or a prompt file it names changes (a stat() per poll)."""
        while True:
            await anyio.sleep(RELOAD_POLL_S)
            now = fingerprint(watched_paths(self.roster.path, self.roster))
            if now != self.watch_fingerprint:
                try:
                    await self.reload()
                except Exception as exc:  # a reload must never end the team
                    log.exception("reload_crashed", error=repr(exc))
                    self.watch_fingerprint = now

    def _abandon(self, exc: errors.DatabaseReplaced) -> None:
        """The database left its path (deleted, or a file moved over it): stop at once
        (no grace: nothing can be acked), writing nothing more, and say why."""
        if self.replaced is None:
            self.replaced = exc
            log.error("database_replaced", database=exc.path, reason=exc.reason)
        self.grace_s = 0.0
        self.stop()

    async def _serve_control(self) -> None:
        assert self.mailbox is not None
        await serve_control(self, self.mailbox, f"{self.instance}:control", self.leases)

    async def _shutdown(self) -> None:
        log.info("stopping", grace_s=self.grace_s)
        slots = list(self.slots.values())  # a reload may add or remove slots meanwhile
        for slot in slots:
            self._request_stop(slot, self.grace_s)
        deadline = self.grace_s + 20.0  # grace + interrupt + closing the processes
        with anyio.move_on_after(deadline):
            for slot in slots:
                await slot.done.wait()
        for slot in slots:
            if not slot.done.is_set() and slot.runner:
                slot.runner.force_stop()

    def _request_stop(self, slot: Slot, grace_s: float) -> None:
        slot.want_running = False
        slot.wake.set()
        if slot.runner is not None:
            slot.runner.request_stop(grace_s)

    # --- commands (operator commands on one agent: orchestrator/operations.py) -------------

    def add_slot(self, name: str) -> Slot:
        """The slot of an agent a reload added (not started), or the one it has."""
        return self.slots.setdefault(name, Slot(name, Lifecycle(name, want_running=False)))

    async def reload(self) -> ReloadResult:
        """Re-read agents.yaml and apply the difference; an invalid file changes nothing."""
        return await apply_reload(self)

    # --- what operator commands call (orchestrator/control.py's Team) -------------------

    def agent_names(self) -> list[str]:
        return list(self.slots)

    async def start_agent(self, name: str) -> str:
        return await operations.start_agent(self, name)

    async def stop_agent(self, name: str) -> str:
        return await operations.stop_agent(self, name)

    async def restart_agent(self, name: str) -> str:
        return await operations.restart_agent(self, name)

    async def resume_budgets(self, names: list[str]) -> list[dict[str, Any]]:
        return await self.budgets.resume(names)

    def shut_down(self, grace_s: float | None) -> float:
        if grace_s is not None:
            self.grace_s = grace_s
        self.stop()
        return self.grace_s

    def abandon(self, exc: errors.DatabaseReplaced) -> None:
        self._abandon(exc)


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _replaced_in(exc: BaseException) -> errors.DatabaseReplaced | None:
    """The DatabaseReplaced that ``exc`` is or holds (task groups wrap errors)."""
    if isinstance(exc, errors.DatabaseReplaced):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _replaced_in(inner)
            if found is not None:
                return found
    return None


def _kill_stale_cli(agent: str, pid: int, recorded_start: object) -> None:
    """A claude process left by a supervisor that died without the parent-death signal:
    killed only if it is provably that process (procid), never on the pid alone."""
    why_not = procid.is_leftover_cli(pid, recorded_start, bundled_cli())
    if why_not is not None:
        # Gone (killed with its supervisor): its sandbox's proxies may live on (procid).
        helpers = procid.kill_orphaned_helpers(pid, shutil.which("socat"))
        if helpers:
            log.warning("killed_stale_sandbox_helpers", agent=agent, pid=pid, helpers=helpers)
        log.info("stale_pid_left_alone", agent=agent, pid=pid, reason=why_not)
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return
    log.warning("killed_stale_cli", agent=agent, pid=pid)
