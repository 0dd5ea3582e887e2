"""The async shell of a team: start it, watch it, apply roster edits, shut it down.

It owns the task group: one task per agent (:mod:`orchestrator.supervision.restarts`)
runs that agent's sessions in turn and restarts them; the chores on a timer, the
control loop and the signal receiver run beside them. Signal handlers only set flags,
the loop does the work. The CLI talks to a running supervisor through the database
(:mod:`orchestrator.control`). The machinery is in :mod:`orchestrator.supervision`.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskGroup

from orchestrator import errors, operations, preflight, workspaces
from orchestrator.agent_leases import AgentLeases, LocalLeases, agent_leases
from orchestrator.agent_meta import AgentMeta
from orchestrator.budget_watch import BudgetWatch
from orchestrator.control import serve_control
from orchestrator.lifecycle import NO_PROCESS, AgentState, Lifecycle
from orchestrator.lockfile import SupervisorLock
from orchestrator.mailbox import SUPERVISOR, SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend
from orchestrator.mailbox.opening import open_queue
from orchestrator.reload import (
    Applied,
    ReloadResult,
    apply_reload,
    fingerprint,
    watched_paths,
)
from orchestrator.roster import Roster
from orchestrator.sdk_import import SdkImport
from orchestrator.supervision import chores, depends, launch, registry, restarts
from orchestrator.supervision.depends import START_WAIT_S
from orchestrator.supervision.leftovers import kill_stale_cli, recover_leases
from orchestrator.supervision.retired import forget_retired
from orchestrator.supervision.slot import Slot
from orchestrator.watchman import Watchman
from orchestrator.write_hold import Hold

log = structlog.get_logger()

DEFAULT_GRACE_S = 10.0


def _reason(exc: BaseException) -> str:
    """What ended a supervisor, for its `supervisor_stopped` line."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _reason(exc.exceptions[0])
    return str(exc) or type(exc).__name__


def hangup_means() -> str | None:
    """What SIGHUP asks of this supervisor, decided as it starts (once the terminal has
    hung up it can no longer be looked at). With a controlling terminal (a foreground
    `up`) it is that terminal going away (a closed window, a dropped ssh): a graceful
    stop, as SIGTERM; the default action ended the process with no stop at all (leases
    held, the registry saying `ready`). Without one (`up -d`, a service) only `kill -HUP`
    sends it: reload agents.yaml, as supervisord and nginx do. Ignored when we started
    (`nohup`): left ignored, as asked."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return None
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:  # ENXIO: no controlling terminal
        return "reload"
    os.close(fd)
    return "stop"


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
        hangup_stops: bool = False,
    ) -> None:
        self.roster = roster
        # SIGHUP stops this supervisor even with no terminal, where it would reload: the
        # demo's, which promises SIGHUP ends it as Ctrl-C does (it ran on to its answer).
        self.hangup_stops = hangup_stops
        self.only = only
        self.grace_s = grace_s
        self.watch_roster = watch_roster
        self.check_model = check_model  # `up` checks the model once before any agent starts
        # What the runners connect with: the SDK's ClaudeSDKClient unless a test passes a double.
        self.client = client
        # The SDK's import, begun by `up` before anything else (issue 14.5); begun by run()
        # when not given. No agent is launched before it is over (launch.py).
        self._sdk = sdk
        self.launchable = anyio.Event()
        self.unavailable: errors.SdkUnavailable | None = None  # the SDK failed to import
        # `up`: the process is the supervisor's, which may freeze its start-up objects
        # (launch.launch_when_imported); not a test's process that runs one in passing.
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
        self._tg: TaskGroup | None = None  # run()'s: owns every agent's task
        self.cli_path: str | None = None
        self.watchman: Watchman | None = None  # cleans up if this process dies (launch.py)
        self.reload_lock = anyio.Lock()  # one reload at a time (watcher, `reload`)
        self.watch_fingerprint = fingerprint(watched_paths(roster.path, roster))
        self.last_reload: Applied | None = None  # what `reload` tells after the watcher's
        self.budgets = BudgetWatch(roster.database, lambda: self.roster, self)
        # This team's write hold (write_hold): its own, not another's in this process.
        self.write_hold = Hold()
        self.replaced: errors.DatabaseReplaced | None = None  # why the team stopped itself
        self.queue_lost: dict[str, Any] | None = None  # the NATS bucket lost (chores.py)
        self.announced = False  # `supervisor_started` logged: a stop is logged too
        self.registered = False  # our registry row is written: every exit marks it stopped

    # --- running --------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM or ``down``; return after a graceful stop."""
        sdk = self._sdk or SdkImport()
        self._lock.acquire()
        # Each waiting agent and each ask holds a worker thread while SQLite waits.
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(
            64, 8 * len(self.roster.agents)
        )
        failure: BaseException | None = None  # what ended a start-up or a run
        try:
            async with open_queue(self.roster, holder=self.instance) as mailbox:
                self.mailbox = mailbox
                self.leases = agent_leases(mailbox, self.instance, self.roster.queue)
                try:
                    await self._run_with(mailbox, sdk)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    # Every exit once our row is written, a start-up's failure included
                    # (it left the row `running`, and `ps` a supervisor that was not).
                    if self.registered and self.replaced is None:
                        with anyio.CancelScope(shield=True):
                            await self._record_stopped(mailbox)
            if self.replaced is not None:
                raise self.replaced
            if self.unavailable is not None:
                raise self.unavailable
        except BaseException as exc:
            failure = failure or exc
            raise
        finally:
            self.budgets.close()
            launch.release_launcher(self)
            self._lock.release()
            # Logged by one that wrote its row (a failed model check wrote none).
            if self.announced or self.registered:
                if failure is None or isinstance(failure, anyio.get_cancelled_exc_class()):
                    log.info("supervisor_stopped")
                else:
                    log.error("supervisor_stopped", reason=_reason(failure))

    async def _run_with(self, mailbox: AsyncMailboxBackend, sdk: SdkImport) -> None:
        # Shown in the team before commands are served: another supervisor hands
        # back a command naming us while we show ourselves (foreign_commands.py;
        # until now, our process on this host or the command's age did).
        await self.leases.announce()
        try:
            sdk.start()  # begun here, not sooner: see launch.launch_when_imported
            if self.check_model:  # after the local checks (lock, database, logs)
                await launch.check_model(self.roster, self.only, self._model_check)
            await self._prepare(mailbox)
            await self.budgets.open(mailbox)
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self.budgets.run)
                    tg.start_soon(self._signals)
                    tg.start_soon(self.leases.keep, self._lease_lost)
                    tg.start_soon(chores.housekeeping, self)
                    tg.start_soon(self._serve_control)
                    if self.watch_roster:
                        tg.start_soon(chores.watch_roster, self)
                    tg.start_soon(launch.launch_when_imported, self, sdk)
                    tg.start_soon(depends.keep_told, self, self._record)
                    await self._start_layers()
                    await self._stopping.wait()
                    await self._shutdown()
                    tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:  # a write met the replaced file first
                if group.subgroup(errors.DatabaseReplaced) is not group:
                    raise
                self.replaced = self.replaced or errors.DatabaseReplaced.found_in(group)
        finally:
            with anyio.CancelScope(shield=True):
                await self.leases.release_all()  # agents a forced stop left held
                await self.leases.leave()

    async def _record_stopped(self, mailbox: AsyncMailboxBackend) -> None:
        try:
            await mailbox.update_agent(SUPERVISOR, state="stopped", pid=None)
        except errors.QueueError as exc:  # the lock file says no supervisor runs
            log.warning("state_not_recorded", agent=SUPERVISOR, error=str(exc))

    @property
    def stopping(self) -> bool:
        """A graceful stop has begun: nothing starts any more."""
        return self._stopping.is_set()

    @property
    def state_changed(self) -> anyio.Event:
        """Set at the next change of an agent's state (or the team's stop); a new one then."""
        return self._state_changed

    def notify_changed(self) -> None:
        """Wake whoever waits on :attr:`state_changed`."""
        self._state_changed.set()
        self._state_changed = anyio.Event()

    def stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM and ``down`` do)."""
        self._stopping.set()
        self._state_changed.set()  # whoever waits for a state stops waiting

    async def _prepare(self, mailbox: AsyncMailboxBackend) -> None:
        # Whose rows the registry holds: the roster the last supervisor ran (our row
        # replaces its row). Another roster file sharing this database (two in one
        # folder: queue/team.db) did not remove this one's agents.
        last = await mailbox.agent(SUPERVISOR)
        await registry.register_self(self, mailbox)
        self.registered = True  # from here on every exit marks the row stopped (run)
        # The team is ours alone (the lock file): every dead supervisor's claims are free
        # now. A shared NATS team frees them per agent, as its lease is taken (agent_leases.py).
        if self.leases.exclusive:
            await recover_leases(mailbox, self.instance)
            # Agents removed from agents.yaml while the team was down (NATS: another
            # supervisor's roster may hold them; left alone there).
            await forget_retired(self, mailbox, self.roster, last)
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
                kill_stale_cli(name, info.pid, known.pid_start)
            # supervised: `unregister` refuses this row while the team runs.
            meta = {**(info.meta if info else {}), "supervised": True}
            slot = Slot(
                name, Lifecycle(name, want_running=name in wanted), stats=AgentMeta.carried(meta)
            )
            slot.model_note = known.model_error
            self.slots[name] = slot
            # Asked of the lease again in the row's own conditional write: another
            # supervisor that took the agent since the question keeps its row.
            holder = await self.leases.register_row(
                mailbox, name, spec.description, pid=None, state=AgentState.STOPPED.value, meta=meta
            )
            registry.kept_elsewhere(slot, holder)
        # Before any agent's CLI: a link made in .git while one runs is moved aside by it.
        await anyio.to_thread.run_sync(workspaces.prepare_links, self.roster)
        log.info(
            "supervisor_started",
            team=self.roster.name,
            agents=list(self.roster.agents),
            database=str(self.roster.database),
            pid=os.getpid(),
        )
        self.announced = True

    async def _start_layers(self) -> None:
        """Start the wanted agents layer by layer (see :meth:`start_in_layers`)."""
        wanted = [n for n, s in self.slots.items() if s.want_running]
        started = await self.start_in_layers(wanted, still_wanted=True)
        # Every layer started (each ready, failed or waited for): what `up` was asked is done.
        log.info("start_up_done", started=[n for n in self.slots if n in started])

    async def start_in_layers(self, names: list[str], *, still_wanted: bool = False) -> set[str]:
        """Start ``names`` in ``depends_on`` order: a layer starts once the agents started
        in the layers before it are ready (or failed, or START_WAIT_S passed). Returns the
        names started. A reload holds the agents' ``ops`` locks; `up`'s start-up holds
        none (``still_wanted``: an agent an operator stopped before its layer began is
        not started), so an agent may be removed or stopped while a layer waits."""
        wanted = set(names)
        started: set[str] = set()
        queued = await self._queue(list(dict.fromkeys(names)), still_wanted)
        try:
            for layer in self.roster.start_layers():
                # Looked up afresh per layer, and held as slots across the waits: a reload
                # may remove an agent meanwhile (its slot deleted), and `up`'s start-up
                # holds no lock; a KeyError here ended the whole team (found by review).
                now = [s for n in layer if n in wanted and (s := self.slots.get(n)) is not None]
                if still_wanted:  # stopped by an operator or a reload since: left stopped
                    now = [s for s in now if s.want_running]
                now = [s for s in now if await self.spawn(s.name)]
                started.update(s.name for s in now)
                for slot in queued:  # what those still queued wait for (`ps`)
                    slot.behind = now if slot.done.is_set() else []
                self.notify_changed()
                for slot in now:
                    with anyio.move_on_after(START_WAIT_S):
                        while not slot.life.settled and not slot.done.is_set():
                            if self._stopping.is_set():
                                return started
                            await self._state_changed.wait()
            return started
        finally:
            # Queued and not started (the team stops, a reload removed it): not waiting
            # for anything any more.
            with anyio.CancelScope(shield=True):
                for slot in queued:
                    slot.behind = []
                    mine = slot.done.is_set() and self.slots.get(slot.name) is slot
                    if mine and slot.state == AgentState.WAITING:
                        # Not written on its row if another supervisor of a shared NATS
                        # team took it meanwhile (registry.record).
                        await self.record_moves(slot, slot.life.abandon_start())

    async def _queue(self, names: list[str], still_wanted: bool) -> list[Slot]:
        """Show the agents a start in layers is to start as ``waiting`` from now on, not
        only once their layer's turn comes: they were ``stopped`` meanwhile, and an ask of
        one from a terminal was refused (recipient_stopped) though it was about to start.
        An agent another supervisor runs (a shared NATS team) is its row: left alone, and
        not queued here. Whose it is, is asked once, in the record's own conditional write
        (it was asked before it too: twice); the server out of reach, the write is refused
        and owed like any record and the agent queued (raised, it ended the team)."""
        queued = []
        for name in names:
            slot = self.slots.get(name)
            if slot is None or not slot.done.is_set() or (still_wanted and not slot.want_running):
                continue
            if await self.record_moves(slot, slot.life.queue()) is not None:
                # Nothing written: the row is the other's. Ours goes back to `stopped`,
                # in memory (as an agent run elsewhere stays here), unwritten.
                slot.unqueue()
                continue
            queued.append(slot)
        # What they wait for is told from here on (depends.keep_told): one queued at its
        # stop by a reload, with the roster before the edit, said `waiting (for a)` of
        # one the edit made wait for c.
        self.notify_changed()
        return queued

    async def spawn(self, name: str) -> bool:
        """Start the task that runs ``name``'s sessions, shown ``waiting`` (recorded
        before the task can move it on, and before a `start` is answered); False if it
        cannot start now."""
        slot = self.slots.get(name)
        if slot is None or self._stopping.is_set() or not slot.done.is_set():
            return False  # removed by a reload, the team is stopping, or a task runs it
        slot.done = anyio.Event()  # taken: no second task while the state is written
        # Before any wait: a `stop` meanwhile (up's layers hold no lock) wins over it.
        moves = slot.life.start()
        assert self._tg is not None
        try:
            # Run by another supervisor (a shared NATS team): its row is left to that one
            # (registry.record) and its task is refused the lease.
            await self.record_moves(slot, moves)
        finally:  # whatever happened, the task runs: it sets slot.done at its end
            self._tg.start_soon(restarts.supervise, self, slot)
        return True

    # --- an agent's state: moved by its lifecycle, announced here, recorded (registry.py) --

    async def move_to(self, slot: Slot, target: AgentState, **fields: Any) -> None:
        """Move the agent's lifecycle to ``target``, announced and recorded."""
        await self.record_moves(slot, slot.life.move(target), **fields)

    async def record_moves(
        self, slot: Slot, moves: list[AgentState], **fields: Any
    ) -> errors.AgentHeldElsewhere | None:
        """Record and announce the moves the agent's lifecycle made (none: nothing). The
        supervisor that keeps the row, found by the last record's write (a shared NATS
        team), or None; a move not written there is not logged as a ``state``."""
        holder = None
        for target in moves:
            self.notify_changed()
            if target == AgentState.WAITING:  # `ps` says what for (kept up to date)
                slot.stats["waiting_for"] = depends.waits_for(self, slot)
            elif slot.stats.get("waiting_for") is not None:  # waits no more: nothing to say
                slot.stats["waiting_for"] = None
            slot.shown_waiting = target == AgentState.WAITING and not slot.elsewhere
            said = {k: v for k, v in fields.items() if v}
            # One supervisor per team (SQLite): every row is ours, said as the move is
            # made (the log's order is the moves' order). A shared NATS team: said once
            # recorded (or owed), not on a row another supervisor keeps: nothing was
            # written there, and the row says that one's state.
            every_row_ours = self.leases.exclusive
            if every_row_ours:
                log.info("state", agent=slot.name, state=target.value, **said)
            if target in NO_PROCESS:
                fields = {**fields, "pid": None}
            holder = await registry.record(self, slot, target, **fields)
            if every_row_ours:
                continue
            if holder is None:
                log.info("state", agent=slot.name, state=target.value, **said)
            else:
                log.debug("state_not_written", agent=slot.name, state=target.value)
        return holder

    async def _record(self, slot: Slot) -> None:
        await registry.record(self, slot)

    async def _lease_lost(self, name: str, exc: errors.AgentHeldElsewhere) -> None:
        """Another supervisor took ``name`` over (ours ran out while the server was out of
        reach): stop our session of it at once, its messages are the other's now."""
        slot = self.slots.get(name)
        if slot is not None:
            log.error("agent_taken_elsewhere", agent=name, error=str(exc))
            slot.elsewhere = True
            self.request_stop(slot, 0)

    # --- budgets (orchestrator/budget_watch.py decides; these move the state) ---------------

    def agent_state(self, name: str) -> AgentState | None:
        slot = self.slots.get(name)
        return slot.state if slot else None

    async def pause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None:
            await self.record_moves(slot, slot.life.pause())

    async def unpause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None:
            await self.record_moves(slot, slot.life.unpause())

    # --- stopping: signals, a database gone, control's down, the shutdown ----------------

    async def _signals(self) -> None:
        hangup = hangup_means()
        if hangup and self.hangup_stops:
            hangup = "stop"
        wanted = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hangup else ())
        with anyio.open_signal_receiver(*wanted) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP and hangup == "reload":
                    log.info("signal", signal="SIGHUP", action="reload")
                    assert self._tg is not None
                    self._tg.start_soon(chores.reload_safely, self)
                    continue
                if self._stopping.is_set() and signum == signal.SIGINT:
                    log.warning("forced_stop")
                    for slot in self.slots.values():
                        if slot.runner:
                            slot.runner.force_stop()
                    continue
                log.info("signal", signal=signal.Signals(signum).name, grace_s=self.grace_s)
                self.stop()

    def abandon(self, exc: errors.DatabaseReplaced) -> None:
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
            self.request_stop(slot, self.grace_s)
        deadline = self.grace_s + 20.0  # grace + interrupt + closing the processes
        with anyio.move_on_after(deadline):
            for slot in slots:
                await slot.done.wait()
        for slot in slots:
            if not slot.done.is_set() and slot.runner:
                slot.runner.force_stop()

    def request_stop(self, slot: Slot, grace_s: float) -> None:
        """The agent is to stop: its backoff cut short, its session given ``grace_s``."""
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
        return await self._with_dependencies(name, await operations.start_agent(self, name))

    async def stop_agent(self, name: str) -> str:
        return await operations.stop_agent(self, name)

    async def restart_agent(self, name: str) -> str:
        return await self._with_dependencies(name, await operations.restart_agent(self, name))

    async def _with_dependencies(self, name: str, outcome: str) -> str:
        """``start``/``restart`` start the agent named, not what it depends on (as docker
        compose's ``restart``); a dependency left stopped or failed is said in the answer,
        not only in the log (supervision/depends.py)."""
        if outcome not in ("started", "restarting"):
            return outcome
        down = await depends.not_running(self, name)
        if not down:
            return outcome
        which = ", ".join(f"{d} ({state})" for d, state in down.items())
        return (
            f"{outcome}, but what it depends on is not running: {which}; "
            f"start it too: octy-orchestrate start {' '.join(down)}"
        )

    async def resume_budgets(self, names: list[str]) -> list[dict[str, Any]]:
        return await self.budgets.resume(names)

    def shut_down(self, grace_s: float | None) -> float:
        if grace_s is not None:
            self.grace_s = grace_s
        self.stop()
        return self.grace_s
