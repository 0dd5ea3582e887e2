"""Start the team, watch it, restart what dies, apply roster edits, shut down.

One task per agent (:meth:`Supervisor._supervise`) owns that agent's runners
in turn; signal handlers only set flags, the loop does the work. The CLI talks
to a running supervisor through the database (:mod:`orchestrator.control`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from orchestrator import errors, preflight, procid
from orchestrator.budget_watch import BudgetWatch
from orchestrator.control import serve_control
from orchestrator.lockfile import SupervisorLock
from orchestrator.mailbox import SUPERVISOR, SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend
from orchestrator.mailbox.opening import open_queue
from orchestrator.roster import Roster, diff_rosters, load_roster
from orchestrator.runner import AgentRunner, SessionEnd
from orchestrator.session_options import bundled_cli, make_launcher
from orchestrator.states import AgentState, transition
from orchestrator.usage import TOTAL_KEYS

log = structlog.get_logger()

# Every commit wakes every waiter, so the chores that write (sweep, heartbeats) run rarely;
# the roster check is a stat() and runs often. Leases are also reclaimed by claims.
SWEEP_EVERY_S = 5.0
RELOAD_POLL_S = 1.0
DEFAULT_GRACE_S = 10.0
RESUME_AT = "resume_at"  # registry meta key: the end of the agent's last good turn
MODEL_NOTE = "model_error"  # registry meta key: the model's last trouble, shown by `ps`
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
    """Everything the supervisor tracks for one agent."""

    name: str
    state: AgentState = AgentState.STOPPED
    want_running: bool = True
    runner: AgentRunner | None = None
    restarts: deque[float] = field(default_factory=deque)  # monotonic times, within the window
    restart_count: int = 0
    started_at: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    wake: anyio.Event = field(default_factory=anyio.Event)  # cuts a backoff short
    done: anyio.Event = field(default_factory=_set_event)  # no task running for this agent
    restart_now: bool = False
    handover: str | None = None  # after a context overflow: told to the fresh session
    model_note: str | None = None  # what `ps` shows of the model's trouble (MODEL_NOTE)


class Supervisor:
    def __init__(
        self,
        roster: Roster,
        *,
        only: list[str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        watch_roster: bool = True,
        check_model: bool = False,
    ) -> None:
        self.roster = roster
        self.only = only
        self.grace_s = grace_s
        self.watch_roster = watch_roster
        self.check_model = check_model  # `up` checks the model once before any agent starts
        # Every lease this supervisor takes is owned by "<instance>:...": `up` recovers
        # the leases of dead supervisors by this prefix (SUPERVISOR_OWNER_PREFIX).
        self.instance = f"{SUPERVISOR_OWNER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.slots: dict[str, Slot] = {}
        self.mailbox: AsyncMailboxBackend | None = None
        self._lock = SupervisorLock(roster.database)
        self._stopping = anyio.Event()
        self._state_changed = anyio.Event()  # set (and replaced) on every agent state change
        self._forced = False
        self._tg: Any = None
        self._cli_path: str | None = None
        self._roster_mtime = _mtime(roster.path)
        self.budgets = BudgetWatch(roster.database, lambda: self.roster, self)
        self.replaced: errors.DatabaseReplaced | None = None  # why the team stopped itself

    # --- running --------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM or ``down``; return after a graceful stop."""
        self._lock.acquire()
        # Each waiting agent and each ask holds a worker thread while SQLite waits.
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(
            64, 8 * len(self.roster.agents)
        )
        try:
            async with open_queue(self.roster, holder=self.instance) as mailbox:
                self.mailbox = mailbox
                if self.check_model:  # after the local checks (lock, database, logs)
                    await self._check_model()
                self._cli_path = await anyio.to_thread.run_sync(make_launcher)
                await self._prepare(mailbox)
                await self.budgets.open(mailbox)
                try:
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
                        tg.start_soon(self.budgets.run)
                        tg.start_soon(self._signals)
                        tg.start_soon(self._housekeeping)
                        tg.start_soon(self._serve_control)
                        await self._start_layers()
                        await self._stopping.wait()
                        await self._shutdown()
                        tg.cancel_scope.cancel()
                except BaseExceptionGroup as group:  # a write met the replaced file first
                    if group.subgroup(errors.DatabaseReplaced) is not group:
                        raise
                    self.replaced = self.replaced or _replaced_in(group)
                if self.replaced is None:
                    await mailbox.update_agent(SUPERVISOR, state="stopped", pid=None)
            if self.replaced is not None:
                raise self.replaced
        finally:
            self.budgets.close()
            if self._cli_path:
                _remove_launcher(self._cli_path)
            self._lock.release()
            log.info("supervisor_stopped")

    async def _check_model(self) -> None:
        wanted = [n for layer in self.roster.start_layers(self.only) for n in layer]
        problems = await anyio.to_thread.run_sync(preflight.check, self.roster, wanted)
        if problems:
            raise errors.ModelUnreachable([str(p) for p in problems])

    def stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM and ``down`` do)."""
        self._stopping.set()
        self._state_changed.set()  # whoever waits for a state stops waiting

    async def _prepare(self, mailbox: AsyncMailboxBackend) -> None:
        await mailbox.register(
            SUPERVISOR,
            "the team's supervisor",
            pid=os.getpid(),
            state="running",
            meta={"instance": self.instance, "roster": str(self.roster.path)},
        )
        # Leases held by a dead supervisor's sessions can never be acked: requeue them now.
        # Only those (we hold the team's lock, so no other supervisor lives); a live
        # external consumer's lease is its own, and runs out by itself if it died.
        for owner in {m.lease_owner for m in await mailbox.list(status="leased", limit=100_000)}:
            if owner and owner.startswith(SUPERVISOR_OWNER_PREFIX) and not owner.startswith(
                f"{self.instance}:"
            ):
                n = await mailbox.release(owner)
                log.info("recovered_leases", owner=owner, messages=n)
        # `up AGENT…` starts those agents and what they depend on.
        wanted = {n for layer in self.roster.start_layers(self.only) for n in layer}
        for name, spec in self.roster.agents.items():
            info = await mailbox.agent(name)
            if info is not None and info.pid:
                _kill_stale_cli(name, info.pid, info.meta.get("pid_start"))
            meta = dict(info.meta) if info else {}
            slot = Slot(name, stats={k: meta[k] for k in (*TOTAL_KEYS, RESUME_AT) if k in meta})
            slot.model_note = meta.get(MODEL_NOTE)
            slot.want_running = name in wanted
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
        """Start agents layer by layer: an agent starts once what it depends on is ready."""
        for layer in self.roster.start_layers():
            names = [n for n in layer if self.slots[n].want_running]
            for name in names:
                self._spawn(name)
            for name in names:
                slot = self.slots[name]
                with anyio.move_on_after(120):
                    while slot.state not in _STARTED:
                        if self._stopping.is_set():
                            return
                        await self._state_changed.wait()

    def _spawn(self, name: str) -> None:
        slot = self.slots[name]
        slot.want_running = True
        slot.done = anyio.Event()
        self._tg.start_soon(self._supervise, slot)

    # --- one agent -------------------------------------------------------------------

    async def _set_state(self, slot: Slot, target: AgentState, **fields: Any) -> None:
        slot.state = transition(slot.name, slot.state, target)
        self._state_changed.set()
        self._state_changed = anyio.Event()
        assert self.mailbox is not None
        meta = {**slot.stats, "restarts": slot.restart_count, "started_at": slot.started_at}
        try:
            await self.mailbox.update_agent(slot.name, state=target.value, meta=meta, **fields)
        except errors.DatabaseReplaced as exc:  # housekeeping stops the team; agents stop
            self._abandon(exc)
        log.info(
            "state", agent=slot.name, state=target.value, **{k: v for k, v in fields.items() if v}
        )

    async def _supervise(self, slot: Slot) -> None:
        try:
            while slot.want_running and not self._stopping.is_set():
                end = await self._one_session(slot)
                if (
                    not slot.want_running
                    or self._stopping.is_set()
                    or slot.state == AgentState.STOPPING
                ):
                    break
                if end.reason == "context_overflow":  # a fresh session, not toward failing
                    await self._context_reset(slot, end)
                    continue
                if slot.restart_now:  # an operator's restart: counted, but not toward failing
                    slot.restart_now = False
                    slot.restart_count += 1
                    await self._set_state(slot, AgentState.BACKOFF)
                    log.info("restarting", agent=slot.name, reason="requested")
                    continue
                delay = self._restart_delay(slot, end)
                if delay is None:
                    return
                await self._set_state(slot, AgentState.BACKOFF, pid=None)
                log.warning(
                    "restarting",
                    agent=slot.name,
                    reason=end.reason,
                    detail=end.detail,
                    exit_code=end.exit_code,
                    backoff_s=round(delay, 3),
                )
                with anyio.move_on_after(delay):
                    await slot.wake.wait()
                slot.wake = anyio.Event()
            if slot.state not in (AgentState.STOPPED, AgentState.FAILED):
                if slot.state != AgentState.STOPPING:
                    await self._set_state(slot, AgentState.STOPPING)
                await self._set_state(slot, AgentState.STOPPED, pid=None)
        finally:
            slot.done.set()

    async def _one_session(self, slot: Slot) -> SessionEnd:
        assert self.mailbox is not None
        await self._set_state(slot, AgentState.STARTING)
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
                return SessionEnd("error", replaced.reason)
            # A supervision boundary: one agent's bug must not take the team down; it counts
            # as a failed session and follows the restart policy.
            log.exception("session_crashed", agent=slot.name, error=repr(exc))
            end = SessionEnd("error", repr(exc))
        finally:
            slot.runner = None
        log.info(
            "session_ended",
            agent=slot.name,
            reason=end.reason,
            detail=end.detail,
            exit_code=end.exit_code,
        )
        return end

    def _peer_state(self, name: str) -> str | None:
        slot = self.slots.get(name)
        return slot.state.value if slot else None

    async def _on_runner_event(self, slot: Slot, event: str, data: dict[str, Any]) -> None:
        if event == "ready":
            slot.stats["session_id"] = data.get("session_id") or slot.stats.get("session_id")
            pid = data.get("pid")  # its start time tells a later `up` it is still this process
            slot.stats["pid_start"] = procid.start_ticks(pid) if isinstance(pid, int) else None
            if slot.state == AgentState.STARTING:
                await self._set_state(slot, AgentState.READY, pid=data.get("pid"))
                await self.budgets.evaluate("start")
            elif self.mailbox is not None:  # a new process (a rewind after a failed turn)
                await self.mailbox.update_agent(slot.name, pid=data.get("pid"))
        elif event == "context":  # context in use against the window (context.py)
            assert self.mailbox is not None
            await self.mailbox.update_agent(slot.name, meta={"context": data}, heartbeat=False)
        elif event == "busy" and slot.state == AgentState.READY:
            await self._set_state(slot, AgentState.BUSY)
        elif event == "model_error":
            await self._note_model(slot, str(data.get("reason") or ""))
        elif event == "blocked" and slot.state == AgentState.BUSY:  # issue 11: approvals
            slot.stats["blocked_reason"] = data.get("reason")
            await self._set_state(slot, AgentState.BLOCKED)
        elif event == "unblocked" and slot.state == AgentState.BLOCKED:
            slot.stats.pop("blocked_reason", None)
            await self._set_state(slot, AgentState.BUSY)
        elif event == "turn":
            # The runner keeps the totals (orchestrator.usage); _set_state persists them.
            slot.stats.update({k: v for k, v in data["totals"].items() if k in TOTAL_KEYS})
            if data.get("resume_at"):
                slot.stats[RESUME_AT] = data["resume_at"]
            failure = data.get("failure")
            if failure is None:
                await self._note_model(slot, None)  # the model answered: nothing to show
            else:
                await self._note_model(slot, f"{_FAILURE_WORDS[failure.kind]}: {failure.reason}")
            if slot.state == AgentState.BUSY:
                await self._set_state(slot, AgentState.READY)
            await self.budgets.after_turn(slot.name, data)

    async def _context_reset(self, slot: Slot, end: SessionEnd) -> None:
        """The prompt outgrew the model's window: the next session starts afresh (no
        resume) and is told where it was; the message in flight was requeued."""
        slot.stats["session_id"] = None
        slot.stats[RESUME_AT] = None  # a point in the old conversation: nothing to go back to
        slot.handover = end.handover
        slot.restart_count += 1
        await self._set_state(slot, AgentState.BACKOFF, pid=None)
        log.warning("context_reset", agent=slot.name, detail=end.detail)

    # --- budgets (orchestrator/budget_watch.py decides; these move the state) ---------------

    def agent_state(self, name: str) -> AgentState | None:
        slot = self.slots.get(name)
        return slot.state if slot else None

    async def pause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None and slot.state == AgentState.READY:
            await self._set_state(slot, AgentState.PAUSED)

    async def unpause_agent(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is not None and slot.state == AgentState.PAUSED:
            await self._set_state(slot, AgentState.READY)

    async def _note_model(self, slot: Slot, note: str | None) -> None:
        """What `ps` shows beside the state: the model's last trouble, until it answers."""
        assert self.mailbox is not None
        note = note and note[:200]
        if note != slot.model_note:  # one write per change, not one per turn
            slot.model_note = note
            await self.mailbox.update_agent(slot.name, meta={MODEL_NOTE: note})

    def _restart_delay(self, slot: Slot, end: SessionEnd) -> float | None:
        """Seconds to wait before the next start, or None if the agent is done for."""
        spec = self.roster.agents.get(slot.name)
        if (
            spec is None
            or spec.restart == "never"
            or (spec.restart == "on-failure" and not end.failed)
        ):
            self._tg.start_soon(
                self._fail,
                slot,
                f"session ended ({end.reason}) and restart is "
                f"'{spec.restart if spec else 'removed'}'",
            )
            return None
        now = time.monotonic()
        slot.restarts.append(now)
        while slot.restarts and now - slot.restarts[0] > spec.restart_window_s:
            slot.restarts.popleft()
        if len(slot.restarts) > spec.max_restarts:
            self._tg.start_soon(
                self._fail,
                slot,
                f"{len(slot.restarts)} restarts within {spec.restart_window_s:g}s (max_restarts "
                f"{spec.max_restarts})",
            )
            return None
        slot.restart_count += 1
        n = len(slot.restarts)
        delay = min(spec.backoff.max_s, spec.backoff.initial_s * 2.0 ** (n - 1))
        return delay * random.uniform(0.5, 1.0)  # jitter: restarts of several agents spread out

    async def _fail(self, slot: Slot, why: str) -> None:
        assert self.mailbox is not None
        await self._set_state(slot, AgentState.FAILED, pid=None)
        log.error("failed", agent=slot.name, reason=why)
        await self._fail_requests(
            slot.name, errors.RecipientFailed.code, f"'{slot.name}' failed: {why}"
        )

    async def _fail_requests(self, name: str, code: str, detail: str) -> None:
        """Answer every request still waiting for ``name`` with an error ``code``, so its
        askers stop waiting now (notices stay queued for the agent's return)."""
        assert self.mailbox is not None
        answered = 0
        for status in ("pending", "leased"):
            for m in await self.mailbox.list(status=status, recipient=name, limit=100_000):
                if m.kind == "request" and await self.mailbox.fail_request(m.id, code, detail):
                    answered += 1
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
        assert self.mailbox is not None
        next_sweep = time.monotonic() + SWEEP_EVERY_S
        while True:
            await anyio.sleep(RELOAD_POLL_S)
            try:
                self.mailbox.check_file()
            except errors.DatabaseReplaced as exc:
                self._abandon(exc)
                return
            if self.watch_roster and _mtime(self.roster.path) != self._roster_mtime:
                await self.reload()
            if time.monotonic() < next_sweep:
                continue
            next_sweep = time.monotonic() + SWEEP_EVERY_S
            swept = await self.mailbox.sweep()
            if swept.requeued or swept.expired or swept.dead:
                log.info("sweep", requeued=swept.requeued, expired=swept.expired, dead=swept.dead)
            await self.mailbox.update_agent(SUPERVISOR, heartbeat=True)
            for slot in self.slots.values():
                if slot.state in (AgentState.READY, AgentState.BUSY, AgentState.PAUSED):
                    await self.mailbox.update_agent(slot.name, heartbeat=True)

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
        await serve_control(self, self.mailbox, f"{self.instance}:control")

    async def _shutdown(self) -> None:
        log.info("stopping", grace_s=self.grace_s)
        for slot in self.slots.values():
            self._request_stop(slot, self.grace_s)
        deadline = self.grace_s + 20.0  # grace + interrupt + closing the processes
        with anyio.move_on_after(deadline):
            for slot in self.slots.values():
                await slot.done.wait()
        for slot in self.slots.values():
            if not slot.done.is_set() and slot.runner:
                slot.runner.force_stop()

    def _request_stop(self, slot: Slot, grace_s: float) -> None:
        slot.want_running = False
        slot.wake.set()
        if slot.runner is not None:
            slot.runner.request_stop(grace_s)

    # --- operator commands (also used by hot reload) ---------------------------------------

    async def stop_agent(self, name: str, grace_s: float | None = None) -> None:
        slot = self.slots[name]
        self._request_stop(slot, self.grace_s if grace_s is None else grace_s)
        await slot.done.wait()

    async def start_agent(self, name: str) -> None:
        slot = self.slots[name]
        if not slot.done.is_set() and slot.state != AgentState.STOPPED and slot.want_running:
            return  # already running
        if slot.state == AgentState.FAILED:
            slot.restarts.clear()
        self._spawn(name)

    async def restart_agent(self, name: str) -> None:
        slot = self.slots[name]
        if slot.runner is not None and slot.want_running:
            slot.restart_now = True
            slot.runner.request_stop(self.grace_s)
            return
        if not slot.done.is_set():
            slot.wake.set()  # in backoff: start now
            return
        await self.start_agent(name)

    async def reload(self) -> bool:
        """Re-read agents.yaml; apply the difference. An invalid file changes nothing."""
        self._roster_mtime = _mtime(self.roster.path)
        try:
            new = await anyio.to_thread.run_sync(load_roster, self.roster.path)
        except errors.RosterErrors as exc:
            log.error("reload_rejected", errors=[str(e) for e in exc.errors])
            return False
        diff = diff_rosters(self.roster, new)
        log.info("reload", added=diff.added, removed=diff.removed, changed=diff.changed)
        if diff.team_changed:
            log.warning(
                "reload_partial",
                reason="team settings (name, database, logs, log sizes) "
                "take effect at the next `up`; agent changes are applied now",
            )
        assert self.mailbox is not None
        old_slots = self.slots
        for name in (*diff.removed, *diff.changed):
            await self.stop_agent(name)
        self.roster = new
        for name in diff.removed:
            del self.slots[name]
            await self.mailbox.unregister(name)  # from now on a send to it is refused
            await self._fail_requests(
                name, errors.RecipientRemoved.code,
                f"'{name}' was removed from {new.path.name} before it answered",
            )
        for name in (*diff.added, *diff.changed):
            spec = new.agents[name]
            if name not in old_slots:
                self.slots[name] = Slot(name)
            await self.mailbox.register(name, spec.description, state=self.slots[name].state.value)
            self._spawn(name)
        await self.budgets.evaluate("reload")
        return True


# An agent counts as started for depends_on once it is ready (or busy, or paused by a budget).
_STARTED = (AgentState.READY, AgentState.BUSY, AgentState.PAUSED, AgentState.FAILED)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return math.nan


def _remove_launcher(path: str) -> None:
    p = Path(path)
    p.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        p.parent.rmdir()


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
        log.info("stale_pid_left_alone", agent=agent, pid=pid, reason=why_not)
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return
    log.warning("killed_stale_cli", agent=agent, pid=pid)
