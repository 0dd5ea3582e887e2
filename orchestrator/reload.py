"""Hot reload: notice roster edits, and apply one edit at a time in dependency order.

What is watched: ``agents.yaml`` and every ``prompt_file`` of the running roster
(issue 9, point 4), by ``stat()``: a change of modification time, size or inode
is an edit. A missing file is a stable state, not a change on every poll (its
mtime used to be NaN, which never equals itself: issue 15). ``reload`` applies
the file whatever the watcher saw (an edit that kept mtime and size, as
``touch -r`` or ``rsync -t`` can leave it).

Applying an edit (:func:`apply_reload`), under the supervisor's reload lock, so a
watcher reload and an operator's ``reload`` run one after the other (issue 16,
A.1): load the file (an invalid file changes nothing); stop removed and changed
agents, dependents first (an agent whose tool rules change counts as changed: a prompt
file added or removed changes every agent's read-only list); start added and changed
agents layer by layer, each layer once the one before it is ready, as ``up`` does;
what they depend on that is stopped or failed is started too (``docker compose up``
does), and what is still on its way (connecting, restarting after a crash) is waited
for (supervision/depends.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import structlog

from orchestrator import capacity, errors, sandbox
from orchestrator.cli.common import unusable_for_agents
from orchestrator.lifecycle import AgentState
from orchestrator.operations import SlotT, stop_and_wait
from orchestrator.operations import Team as OperationsTeam
from orchestrator.roster import AgentSpec, Roster, RosterDiff, diff_rosters, load_roster
from orchestrator.supervision import refusals, registry
from orchestrator.supervision.restarts import fail_requests

if TYPE_CHECKING:
    from orchestrator.budget_watch import BudgetWatch
    from orchestrator.mailbox import AgentInfo, AsyncMailboxBackend

log = structlog.get_logger()

Fingerprint = tuple[tuple[str, tuple[int, int, int, int] | None], ...]


class Team(OperationsTeam[SlotT], Protocol[SlotT]):
    """What a reload needs of the supervisor, beyond what the operations need."""

    roster: Roster
    reload_lock: anyio.Lock
    watch_fingerprint: Fingerprint
    mailbox: AsyncMailboxBackend | None
    budgets: BudgetWatch
    last_reload: Applied | None  # the last reload that changed the team (review F, M3)

    def add_slot(self, name: str) -> SlotT: ...

    async def start_in_layers(self, names: list[str]) -> set[str]: ...

    def abandon(self, exc: errors.DatabaseReplaced) -> None: ...  # refusals.Abandons


def watched_paths(roster_path: Path, roster: Roster) -> list[Path]:
    """The roster file and the prompt files its agents read."""
    prompts = {spec.prompt_file for spec in roster.agents.values() if spec.prompt_file}
    return [roster_path, *sorted(prompts)]


def fingerprint(paths: list[Path]) -> Fingerprint:
    """What the watcher compares between polls: per path (mtime ns, size, inode, device),
    or None for a path that cannot be stat-ed (missing: equal to itself, unlike NaN)."""
    out: list[tuple[str, tuple[int, int, int, int] | None]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((str(path), None))
        else:
            out.append((str(path), (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)))
    return tuple(out)


@dataclass
class ReloadResult:
    """What one reload did; ``ok`` False means the file was rejected and nothing changed."""

    ok: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    changed_not_running: list[str] = field(default_factory=list)  # applied, left stopped
    # Stopped or failed agents it started because an added or restarted agent depends on them
    started: list[str] = field(default_factory=list)
    team_changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Set when this reload found nothing to do because an earlier one (the watcher's,
    # typically, a second before the operator's `reload`) applied these same files: that
    # one's changes above, and who applied them when.
    earlier: Applied | None = None

    def to_reply(self) -> dict[str, Any]:
        """The body of the answer to a ``reload`` command."""
        if not self.ok:
            return {
                "ok": False,
                "command": "reload",
                "error": errors.RosterErrors.code,
                "message": "agents.yaml was not applied; the team runs unchanged:\n"
                + "\n".join(self.errors),
            }
        reply: dict[str, Any] = {
            "ok": True,
            "command": "reload",
            "changes": {
                "added": self.added,
                "removed": self.removed,
                "restarted": self.restarted,
                "started": self.started,
            },
            "changed_not_running": self.changed_not_running,
            "team_changed": self.team_changed,
        }
        if self.earlier is not None:
            reply["already_applied"] = {"by": self.earlier.by, "at": self.earlier.at}
        return reply


@dataclass(frozen=True)
class Applied:
    """A reload that changed the team: the versions of the files it applied, when, by whom."""

    files: Fingerprint
    at: float  # wall-clock time, as shown to the operator
    by: str
    result: ReloadResult


# Review F, M3: the watcher polls every second and often applies an edit before the
# operator's `reload` arrives, which then found nothing to do and printed "no change".
# The team keeps its last applied reload (``Team.last_reload``) to answer with it.
_WATCHER = "the file watcher or SIGHUP"
_requested_by: contextvars.ContextVar[str] = contextvars.ContextVar(
    "reload_requested_by", default=_WATCHER
)


@contextlib.contextmanager
def requested_by(who: str) -> Iterator[None]:
    """Reloads run inside this block are told as done by ``who`` (the `reload` command)."""
    token = _requested_by.set(who)
    try:
        yield
    finally:
        _requested_by.reset(token)


def _remember(sup: Team[SlotT], result: ReloadResult, files: Fingerprint) -> ReloadResult:
    """Record a reload that changed something; one that found nothing to do for the same
    files as the last one that did is answered with that one's result."""
    last = sup.last_reload
    nothing = not (result.added or result.removed or result.restarted or result.started)
    if nothing and not result.changed_not_running:
        # Only the watcher's (or SIGHUP's) changes are told again: the operator who ran
        # `reload` saw its own answer, and a second `reload` of them is "no change".
        if (
            last is not None
            and last.files == files
            and last.by == _WATCHER
            and _requested_by.get() != _WATCHER
        ):
            return replace(last.result, team_changed=result.team_changed, earlier=last)
        return result
    sup.last_reload = Applied(files, time.time(), _requested_by.get(), result)
    return result


async def apply_reload(sup: Team[SlotT]) -> ReloadResult:
    """Re-read the roster and apply the difference (see the module's docstring)."""
    async with sup.reload_lock:
        path = sup.roster.path
        seen = fingerprint([path])  # taken before reading: an edit during the read is seen
        try:
            new = await anyio.to_thread.run_sync(load_roster, path)
        except errors.RosterErrors as exc:
            sup.watch_fingerprint = seen + fingerprint(watched_paths(path, sup.roster)[1:])
            log.error("reload_rejected", errors=[str(e) for e in exc.errors])
            return ReloadResult(False, errors=[str(e) for e in exc.errors])
        sup.watch_fingerprint = seen + fingerprint(watched_paths(path, new)[1:])
        # Team settings (name, database, logs, log sizes, queue) take effect at the next
        # `up`: the running team keeps its own. Taken from the file, a restarted agent's
        # sandbox hid the new folders while the team's database stayed in the old one,
        # which its shell could then write (speak for anyone, command the supervisor).
        team_changed = diff_rosters(sup.roster, new).team_changed
        new = replace(new, **{k: getattr(sup.roster, k) for k in team_changed})
        diff = with_new_rules(
            replace(diff_rosters(sup.roster, new), team_changed=team_changed), sup.roster, new
        )
        room = capacity.fit(len(diff.added))  # as `up` checks: ~200 MiB per claude
        if not room.fits:
            # Started anyway, the OOM killer would end agents (or the supervisor) mid-turn.
            problem = (
                f"{path}: not enough memory for the agents this edit adds: {room.describe()}; "
                "the team runs on unchanged: add fewer, or free memory, and reload again"
            )
            log.error("reload_rejected", errors=[problem])
            return ReloadResult(False, errors=[problem])
        unusable = await anyio.to_thread.run_sync(
            unusable_for_agents, new, [*diff.added, *diff.changed]
        )
        if unusable:
            # As `up` refuses them (cli/common.undecodable_paths): started, such an agent
            # restarted until it failed, or could rewrite its prompt (found by review).
            problems = [f"{path}: {p}" for p in unusable]
            log.error("reload_rejected", errors=problems)
            return ReloadResult(False, errors=problems)
        result = ReloadResult(True, team_changed=list(diff.team_changed))
        if diff.empty:
            sup.roster = new  # the same agents; settings beside them (budgets) may differ
            await sup.budgets.evaluate("reload")
            log.info("reload", change="none")
            return _remember(sup, result, sup.watch_fingerprint)
        if diff.team_changed:
            log.warning(
                "reload_partial",
                settings=list(diff.team_changed),
                reason="team settings (name, database, logs, log sizes) "
                "take effect at the next `up`; agent changes are applied now",
            )
        touched = [*diff.removed, *diff.changed, *diff.added]
        # What the agents it may start depend on: started by it when stopped (see below).
        # Only those stopped now: one that runs (or restarts) is waited for, not held, so
        # an operator's `restart` of it is not kept waiting by this reload's wait for it.
        needed = [
            n
            for n in new.dependencies([*diff.added, *diff.changed])
            if n not in touched and (slot := sup.slots.get(n)) is not None and slot.done.is_set()
        ]
        async with contextlib.AsyncExitStack() as held:
            # Hold each affected agent's operation lock for the whole edit, so an operator's
            # start/stop of one of them waits for the reload instead of racing it.
            locked = sorted(n for n in [*touched, *needed] if n in sup.slots)
            for name in locked:
                await held.enter_async_context(sup.slots[name].ops)
            was_wanted = {n: sup.slots[n].want_running for n in diff.changed if n in sup.slots}
            # The added agents are known from now on, `waiting`: their asks and sends from
            # agents and terminals are taken (see _register_agent). Registered after the
            # changed agents' stops, an ask or send to one was refused as unknown for as
            # long as those took (up to their grace period, a turn finishing). Their locks
            # are not held: an operator's `stop` of one while the reload waits for its
            # start goes through (a `start` meanwhile waits for its roster entry: depends).
            # Ended before its start in layers (`down` cancels it meanwhile): the added
            # agents stayed `waiting` for good, asks of them queued (found by review6). Set
            # up before their registration: one that raised (or a `down` meanwhile) left
            # those registered before it `waiting` for good (found by review8); one not
            # registered yet has no slot, and is passed over.
            # A row already under an added name (a participant's `register`), as it was:
            # given back if the reload fails before its swap (found by review8).
            rows_before: dict[str, AgentInfo] = {}
            held.push_async_callback(_give_up_added, sup, diff.added, new, rows_before)
            for name in diff.added:
                if (row := await _row_of(sup, name)) is not None:
                    rows_before[name] = row
                await _register_agent(sup, name, new.agents[name], queued=True)
            restarting = {n for n in diff.changed if was_wanted.get(n, True)}
            await _stop_in_order(sup, sup.roster, [*diff.removed, *diff.changed], restarting)
            sup.roster = new
            for name in diff.changed:
                await _register_agent(sup, name, new.agents[name], queued=False)
            for name in diff.removed:
                await _forget_agent(sup, name)
            result.removed = list(diff.removed)
            # Not one an operator stopped meanwhile (its lock is not held): `stop b`
            # answered `b stopped`, and this start queued it again (found by review6).
            to_start = [n for n in diff.added if _still_queued(sup, n)]
            for name in diff.changed:
                if was_wanted.get(name, True):
                    to_start.append(name)
                else:  # stopped by the operator, or not started by `up AGENT…`: stays so
                    result.changed_not_running.append(name)
            dependencies = [
                n
                for n in _stopped_dependencies(sup, new, to_start)
                # Run by another supervisor of a shared NATS team: not ours to start.
                if n in locked and await _ours_to_move(sup, n)
            ]
            result.changed_not_running = [
                n for n in result.changed_not_running if n not in dependencies
            ]
            started = await sup.start_in_layers([*to_start, *dependencies])
        await sup.budgets.evaluate("reload")  # budgets may have changed with the roster
        result.added = [n for n in new.agents if n in diff.added]
        result.restarted = [
            n for n in new.agents if n in diff.changed and n in started and n not in dependencies
        ]
        result.started = [n for n in new.agents if n in dependencies and n in started]
        log.info(
            "reload",
            added=result.added,
            removed=result.removed,
            restarted=result.restarted,
            started=result.started,
            left_stopped=result.changed_not_running,
        )
        return _remember(sup, result, sup.watch_fingerprint)


def with_new_rules(diff: RosterDiff, old: Roster, new: Roster) -> RosterDiff:
    """``diff`` with every agent whose tool rules (:func:`sandbox.settings`) differ
    counted as changed. The CLI reads its sandbox and deny rules once, at connect: a prompt
    file added by this reload was writable by the running agents' shells until they
    restarted (found by review: agent a rewrote the new agent c's prompt before c read it).
    Those agents stop before the added ones start (:func:`apply_reload`)."""
    stale = tuple(
        n
        for n in diff.unchanged
        if sandbox.settings(old.agents[n], old) != sandbox.settings(new.agents[n], new)
    )
    if not stale:
        return diff
    unchanged = tuple(n for n in diff.unchanged if n not in stale)
    changed = tuple(n for n in new.agents if n in diff.changed or n in stale)
    return replace(diff, changed=changed, unchanged=unchanged)


def _stopped_dependencies(sup: Team[SlotT], new: Roster, to_start: list[str]) -> list[str]:
    """What the agents a reload starts depend on (directly or not) that nothing runs:
    stopped (by `stop`, not started by `up AGENT…`, a changed agent left stopped) or
    failed. The reload starts them first, as ``docker compose up`` starts the
    dependencies of what it recreates; started blind, a dependent ran beside a dependency
    that was not there (supervision/depends.py)."""
    return [
        n
        for n in new.dependencies(to_start)
        if n not in to_start and (slot := sup.slots.get(n)) is not None and slot.done.is_set()
    ]


async def _stop_in_order(
    sup: Team[SlotT], old: Roster, names: list[str], restarting: set[str]
) -> None:
    """Stop ``names``, dependents before what they depend on (the reverse of start-up);
    the agents of one layer stop together. Those ``restarting`` are ``waiting`` from their
    stop on: they were `stopped` while the layers after them stopped and the layers
    before them started again, and asks of them were refused (recipient_stopped)."""
    wanted = set(names)

    async def stop(name: str) -> None:
        await stop_and_wait(sup, name)
        slot = sup.slots[name]
        # Whose it is, asked once: in the record's own conditional write. Another
        # supervisor's (a shared NATS team): nothing written, not queued here.
        if name in restarting and await sup.record_moves(slot, slot.life.queue()):
            slot.unqueue()  # in memory: the row is the other's

    for layer in reversed(old.start_layers()):
        async with anyio.create_task_group() as tg:
            for name in layer:
                if name in wanted:
                    tg.start_soon(stop, name)


def _still_queued(sup: Team[SlotT], name: str) -> bool:
    """An agent this reload added is still its to start: `waiting`, with no session task
    (or one an operator's `start` began, which the start in layers leaves alone)."""
    slot = sup.slots.get(name)
    return slot is not None and (slot.state == AgentState.WAITING or not slot.done.is_set())


async def _give_up_added(
    sup: Team[SlotT], added: tuple[str, ...], new: Roster, rows_before: dict[str, AgentInfo]
) -> None:
    """At the reload's end, its added agents still queued with no session task (the start
    in layers gives up those it queued; this, those it never reached): ``stopped``. Shielded:
    run as a `down` cancels the reload.

    A reload that failed before its roster swap (an error in a stop, say) also stops the
    added agents an operator's `start` began meanwhile: their tasks wait for a roster
    entry that will not come (supervision/depends.py), and waited on, `waiting (for the
    reload that adds it)`, until the team's end (found by review)."""
    with anyio.CancelScope(shield=True):
        failed = sup.roster is not new
        if failed:
            for name in added:
                slot = sup.slots.get(name)
                if slot is not None and not slot.done.is_set() and name not in sup.roster.agents:
                    log.warning("reload_failed_start_ended", agent=name)
                    sup.request_stop(slot, 0.0)  # ends its wait; its task records `stopped`
                    await slot.done.wait()
        for name in added:
            slot = sup.slots.get(name)
            if slot is None or not slot.done.is_set() or slot.state != AgentState.WAITING:
                continue
            try:
                await sup.record_moves(slot, slot.life.abandon_start())
            except Exception:  # the cause of the reload's end is what is raised
                log.exception("reload_give_up_failed", agent=name)
        if failed:
            # Not in the running roster: kept, a later `start` of one waited again for
            # its entry (then launched without one). Gone, as before the reload; the next
            # reload of the file adds it again. A `down` that ended the reload keeps it
            # `stopped` (its asks queued: the file the next `up` reads has it), but a
            # participant's row it took over is given back all the same: kept, the
            # participant's row was gone after the `down` (found by the last session).
            for name in added:
                before = rows_before.get(name)
                if sup.stopping and before is None:
                    continue
                try:
                    await _forget_unadded(sup, name, before)
                except Exception:
                    log.exception("reload_give_up_failed", agent=name)


async def _row_of(sup: Team[SlotT], name: str) -> AgentInfo | None:
    """``name``'s registry row; None if there is none, or the queue cannot say."""
    assert sup.mailbox is not None
    try:
        return await sup.mailbox.agent(name)
    except errors.QueueError:
        return None


async def _forget_unadded(sup: Team[SlotT], name: str, before: AgentInfo | None) -> None:
    """An agent a failed reload added, stopped: out of the registry, its askers answered;
    or, where a row was there ``before`` (a participant's `register`), that row given back
    as it was (its asks stay its own to answer)."""
    slot = sup.slots.get(name)
    if slot is None or name in sup.roster.agents:
        return
    async with slot.ops:  # not under an operator's start or stop of it
        if sup.slots.get(name) is not slot or not slot.done.is_set():
            return
        if slot.elsewhere or not await _ours_to_move(sup, name):
            del sup.slots[name]  # another supervisor's row (a shared NATS team): left alone
            return
        if before is not None:
            assert sup.mailbox is not None
            del sup.slots[name]
            give_back = sup.mailbox.register(
                name, before.description, pid=before.pid, state=before.state, meta=before.meta
            )
            await refusals.attempt(sup, give_back, "register_failed", level="error", agent=name)
            return
        await _forget_agent(
            sup,
            name,
            f"the reload that added '{name}' failed before it started it; "
            f"it is not in the team (a reload of {sup.roster.path.name} adds it again)",
            errors.RecipientNotAdded.code,
        )


async def _ours_to_move(sup: Team[SlotT], name: str) -> bool:
    """Not run by another supervisor of a shared NATS team, as far as the queue can tell.
    With the server out of reach, ours: the record of the move asks the lease again in
    its own write (refused and owed while the server is away), and so does the start's
    take. Raised here, the reload ended half done: the agents it had stopped in a layer
    were never queued again (found by review4)."""
    try:
        return await sup.leases.held_elsewhere(name) is None
    except errors.QueueError:
        return True


async def _forget_agent(
    sup: Team[SlotT],
    name: str,
    why: str | None = None,
    code: str = errors.RecipientRemoved.code,
) -> None:
    """A removed agent (already stopped): out of the registry, its askers answered
    ``code`` (told ``why``, by default that it was removed from the roster)."""
    assert sup.mailbox is not None
    slot = sup.slots.pop(name)
    if slot.elsewhere or not await _ours_to_move(sup, name):
        # Run by another supervisor of a shared NATS team, whose roster keeps it (the
        # two differ): its row and its requests are that one's (they were unregistered
        # and failed `recipient_removed` under the agent working on them).
        log.warning("removed_agent_runs_elsewhere", agent=name)
        return
    # force: the row is supervised (refused to others while the team runs); from now on
    # a send to it is refused.
    unregister = sup.mailbox.unregister(name, force=True)
    await refusals.attempt(sup, unregister, "unregister_failed", level="error", agent=name)
    await fail_requests(
        sup,
        name,
        code,
        why or f"'{name}' was removed from {sup.roster.path.name} before it answered",
    )


async def _register_agent(sup: Team[SlotT], name: str, spec: AgentSpec, *, queued: bool) -> None:
    """An added or changed agent: its slot and its registry row (description). One
    ``queued`` (added: this reload starts it) is ``waiting`` from its first row on: it was
    registered ``stopped`` and marked supervised, then queued a few writes later, and a
    terminal's `ask` in between was refused (recipient_stopped) as of a stopped agent."""
    assert sup.mailbox is not None
    mailbox = sup.mailbox
    slot = sup.add_slot(name)
    if not await _ours_to_move(sup, name):
        return  # a shared NATS team's agent another supervisor runs: its row is that one's
    moves = slot.life.queue() if queued else []  # in memory; recorded below, with its log

    async def register() -> None:
        # Asked of the lease again in each write's own conditional write: another
        # supervisor that took the agent since the question above keeps its row (our
        # `stopped`/`waiting` and pid None landed on it, as up's registration did).
        holder = await sup.leases.register_row(
            mailbox, name, spec.description, pid=None, state=slot.state.value, meta=None
        )
        if holder is None:
            # supervised: `unregister` refuses this row while the team runs (as at `up`)
            holder = await sup.leases.write_row(
                mailbox, name, meta={"supervised": True}, heartbeat=False
            )
        registry.kept_elsewhere(slot, holder)  # None: written, the row is ours

    await refusals.attempt(sup, register(), "register_failed", level="error", agent=name)
    await sup.record_moves(slot, moves)


__all__ = [
    "Applied",
    "Fingerprint",
    "ReloadResult",
    "Team",
    "apply_reload",
    "fingerprint",
    "requested_by",
    "watched_paths",
]
