"""``depends_on`` after start-up: an agent started while what it depends on is not ready.

`up` starts a team layer by layer (Supervisor.start_in_layers), each layer once the one
before it is ready. Agents are also started later, one by one: by a reload (an added or
changed agent), by ``start``/``restart``, by the start-up of a layer whose dependency an
operator restarted meanwhile. Those started at once, whatever their dependencies were
doing: a reload that restarted a changed agent did not wait for an unchanged agent it
depends on that was still connecting or restarting after a crash.

The rule, as docker compose has it for `up` and its restarts: before an agent's first
session of a run (and before the new session of an operator's ``restart``), it waits
for each dependency that is on its way (its task runs and it is not ready yet:
starting, in its backoff after a crash, stopping for a restart), up to
:data:`START_WAIT_S` as `up` waits for a layer; a dependency that is stopped or failed is
not waited for (nothing would bring it up) and is named in the log
(``dependency_not_running``). A reload starts such dependencies itself, as
``docker compose up`` does (reload.py); ``start``/``restart`` do not (compose's
``restart`` neither) and say so in their answer. A dependency that crashes and is
restarted by its restart policy changes nothing for its dependents (compose neither).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import structlog

from orchestrator.agent_leases import AgentLeases
from orchestrator.errors import AgentHeldElsewhere
from orchestrator.lifecycle import RUNNING, AgentState
from orchestrator.roster import Roster
from orchestrator.supervision.slot import Slot

log = structlog.get_logger()

START_WAIT_S = 120.0  # how long a start waits for its dependencies before it goes on


class Team(Protocol):
    """What waiting for dependencies needs of the supervisor."""

    roster: Roster
    leases: AgentLeases  # which agents are ours to run (agent_leases.py)

    @property
    def slots(self) -> dict[str, Slot]: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def state_changed(self) -> anyio.Event: ...

    launchable: anyio.Event  # set once agents may launch (the SDK imported: launch.py)

    async def record_moves(
        self, slot: Slot, moves: list[AgentState], **fields: Any
    ) -> AgentHeldElsewhere | None: ...


def on_its_way(slot: Slot) -> bool:
    """Being started (or restarted) and not ready yet: worth waiting for. One queued in a
    later layer of `up` or of a reload (``waiting``, no task yet) is on its way too."""
    if slot.state == AgentState.WAITING:
        return True
    return not slot.done.is_set() and not slot.life.settled


def dependencies(sup: Team, name: str) -> list[Slot]:
    """The slots of what ``name`` depends on in the running roster."""
    spec = sup.roster.agents.get(name)
    if spec is None:
        return []
    return [s for d in spec.depends_on if (s := sup.slots.get(d)) is not None]


def waits_for(sup: Team, slot: Slot) -> str | None:
    """What ``slot``'s ``waiting`` agent waits for now, as `ps` says it (``waiting (for
    …)``): the agents it depends on that are on their way, by name; queued in a later
    layer of `up` or of a reload with those ready, its turn after the agents of the layer
    being started (``its turn after x``); started, the SDK's import (``the SDK import``);
    added by a reload that still stops the agents it changes (``the reload that adds it``);
    None once nothing holds it (its session is launching). Recomputed at every change of
    an agent's state (:func:`keep_told`): `ps` said `waiting (for a)`, its depends_on as
    of the move, while a was long ready and it waited for something else."""
    if slot.name not in sup.roster.agents:  # added by a reload still stopping agents
        return "the reload that adds it"
    ahead = [s.name for s in dependencies(sup, slot.name) if on_its_way(s)]
    if ahead and slot.life.waited_s() < START_WAIT_S:  # past that, not waited for any more
        return ", ".join(ahead)
    if slot.done.is_set():  # queued: no task yet, its layer's turn to come
        layer = [s.name for s in slot.behind if not s.life.settled and not s.done.is_set()]
        return f"its turn after {', '.join(layer)}" if layer else None
    if not sup.launchable.is_set():
        return "the SDK import"
    return None


async def keep_told(sup: Team, record: Callable[[Slot], Awaitable[None]]) -> None:
    """Keep what each ``waiting`` agent waits for (:func:`waits_for`) up to date in its
    row, through ``record``, at every change of an agent's state, until the team stops."""
    while not sup.stopping:
        changed = sup.state_changed  # before the look: a change during it is seen next
        for slot in list(sup.slots.values()):
            if slot.state != AgentState.WAITING or slot.elsewhere or not slot.shown_waiting:
                continue
            now = waits_for(sup, slot)
            if slot.stats.get("waiting_for") == now:
                continue
            # Queued here and taken meanwhile by another supervisor of a shared NATS team:
            # its row is that one's. The record asks so in its own conditional write
            # (registry.record: nothing written, slot.elsewhere set), and a question the
            # queue cannot answer is a refused write there, owed to the housekeeping:
            # asked here first, a NATS outage raised into the task group ended the team.
            slot.stats["waiting_for"] = now
            await record(slot)
        await changed.wait()


async def not_running(sup: Team, name: str) -> dict[str, str]:
    """What ``name`` depends on that nothing is starting: stopped or failed, by name. An
    agent another supervisor of a shared NATS team runs is not ours to judge (our slot
    of it stays `stopped`)."""
    return {
        s.name: s.state.value
        for s in dependencies(sup, name)
        if s.done.is_set()
        and s.state not in RUNNING
        and s.state != AgentState.WAITING
        and await sup.leases.held_elsewhere(s.name) is None
    }


async def wait_for_dependencies(sup: Team, slot: Slot) -> None:
    """Wait until every dependency of ``slot``'s agent that is on its way is ready (or
    failed), at most START_WAIT_S since it became ``waiting``; then it starts, as `up`
    starts a layer. Counted once: queued in a later layer of `up` or of a reload, it has
    waited already, while the layer before it was waited for (up to START_WAIT_S): it
    waited as much again once started, `ps` saying `waiting (for a)` all along."""
    waiting = [s.name for s in dependencies(sup, slot.name) if on_its_way(s)]
    if waiting:
        # An operator's restart between sessions is in `backoff`: `waiting` says why.
        await sup.record_moves(slot, slot.life.wait_again())
    left = START_WAIT_S - slot.life.waited_s()
    if waiting and left > 0:
        log.info("waiting_for_dependencies", agent=slot.name, dependencies=waiting)
    with anyio.move_on_after(max(left, 0.0)) as scope:
        while True:
            # A new wake each round, before the checks: a stop (or `restart`) that sets
            # it after them ends this round's wait; one before them is seen by them.
            slot.wake = anyio.Event()
            if not slot.want_running or sup.stopping:
                return
            # One a reload adds is known (and may be started by an operator) while the
            # reload stops the agents it changes; its roster entry comes after those.
            added = slot.name in sup.roster.agents
            if added and not any(on_its_way(s) for s in dependencies(sup, slot.name)):
                break
            await _first_of(sup.state_changed, slot.wake)
    if scope.cancelled_caught:
        late = {s.name: s.state.value for s in dependencies(sup, slot.name) if on_its_way(s)}
        log.warning(
            "dependency_not_ready", agent=slot.name, dependencies=late, waited_s=START_WAIT_S
        )
    down = await not_running(sup, slot.name)
    if down:
        log.warning(
            "dependency_not_running",
            agent=slot.name,
            dependencies=down,
            hint="started anyway; start them with `octy-orchestrate start NAME`",
        )


async def _first_of(*events: anyio.Event) -> None:
    """Return once any of ``events`` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)


__all__ = [
    "START_WAIT_S",
    "keep_told",
    "not_running",
    "on_its_way",
    "wait_for_dependencies",
    "waits_for",
]
