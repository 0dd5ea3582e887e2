"""The supervisor's writes to the registry, the rows ``ps`` reads: its own row, each
agent's state, pid, meta (totals, restarts, the model's trouble) and heartbeat.

The state in memory is what counts: a write the database refuses (another process
holding the write lock past the busy timeout) is logged and tried again by the
housekeeping (:mod:`orchestrator.supervision.chores`), never the end of an agent or the
team. A row deleted under us (``unregister``, SQL) is written again: a roster agent's
row is the supervisor's to keep.

On a shared NATS team an agent's row is the row of the supervisor that holds its lease
(:mod:`orchestrator.agent_leases`): :func:`record` writes nothing on a row another
supervisor keeps, whoever calls it (a ``stopped`` of ours over an agent running there
made `ps` and every asker take it for stopped).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import anyio
import structlog

from orchestrator import errors
from orchestrator.agent_leases import AgentLeases
from orchestrator.agent_meta import LAUNCHING, MODEL_NOTE, QUEUE_LOST, AgentMeta
from orchestrator.lifecycle import RUNNING, AgentState
from orchestrator.mailbox import SUPERVISOR, AsyncMailboxBackend
from orchestrator.roster import Roster
from orchestrator.supervision import refusals
from orchestrator.supervision.refusals import Outcome
from orchestrator.supervision.slot import Slot

log = structlog.get_logger()


class Team(refusals.Abandons, Protocol):
    """What the registry writes need of the supervisor."""

    roster: Roster
    mailbox: AsyncMailboxBackend | None
    instance: str
    launchable: anyio.Event  # set once agents may launch (shown in the supervisor's row)
    leases: AgentLeases  # whose each agent's row is (agent_leases.py)
    # The last time the NATS server lost the team's bucket (chores.check_store), for `ps`.
    queue_lost: dict[str, Any] | None

    @property
    def slots(self) -> dict[str, Slot]: ...


async def register_self(sup: Team, mailbox: AsyncMailboxBackend) -> None:
    """The supervisor's own row: its pid, and what `up -d` and the CLI read of it."""
    await mailbox.register_supervisor(
        os.getpid(),
        {
            "instance": sup.instance,
            "roster": str(sup.roster.path),
            "team": sup.roster.name,  # `top`'s team line, once the log has rotated
            LAUNCHING: sup.launchable.is_set(),
            **({QUEUE_LOST: sup.queue_lost} if sup.queue_lost else {}),
        },
    )


async def record(
    sup: Team, slot: Slot, state: AgentState | None = None, *, lost: bool = False, **fields: Any
) -> errors.AgentHeldElsewhere | None:
    """Write an agent's state (``state``, or its current one) to the registry; a write
    refused is kept in ``slot.unrecorded`` for the housekeeping to write later. Nothing is
    written on a row another supervisor keeps (:func:`kept_elsewhere`), asked in the
    same conditional write (``leases.write_row``; SQLite: one supervisor, nothing asked):
    that supervisor is returned (None: written, or refused, or stale), so a caller that
    must know whose the agent is asks the server once, not once more before. ``lost``:
    the row is known gone with the whole bucket (chores.check_store said so): written
    again without a `reregistered` line per agent."""
    assert sup.mailbox is not None
    meta = AgentMeta.record(
        slot.stats, restarts=slot.life.restart_count, started_at=slot.started_at
    )
    fields = {**(slot.unrecorded or {}), **fields}
    kept: errors.AgentHeldElsewhere | None = None
    stale = False
    asked_in = slot.state

    def still() -> bool:
        # Stale once the agent moved on: a `waiting` (keep_told's reason) tried again
        # after its start recorded `starting` put `waiting` back until the next move.
        return slot.state == asked_in

    async def write_state() -> None:
        nonlocal kept, stale
        assert sup.mailbox is not None
        try:
            holder = await sup.leases.write_row(
                sup.mailbox,
                slot.name,
                still=still,
                state=(state or slot.state).value,
                meta=meta,
                **fields,
            )
        except errors.RecipientUnknown:
            # Its row was deleted under us (`unregister`, SQL): the registry row of a
            # roster agent is the supervisor's to keep, so it is written again.
            kept = await _reregister(sup, slot, meta, fields.get("pid"), said=lost)
            return
        if holder is None and not still():
            stale = True  # nothing asked, nothing written: whose the row is, unknown
            return
        kept = holder if kept_elsewhere(slot, holder) else None

    # A refusal is logged once, until a record goes through.
    event = "state_not_recorded" if slot.unrecorded is None else None
    outcome = await refusals.attempt(sup, write_state(), event, agent=slot.name)
    if stale:
        # Only the state is stale: the newer move's record writes its own, but not these
        # fields (a `ready`'s pid lost to a `pause` recorded first left `paused`, pid None
        # for a live process). Owed, under whatever was owed since (newer).
        if fields:
            slot.unrecorded = {**fields, **(slot.unrecorded or {})}
    elif kept:
        slot.unrecorded = None  # kept elsewhere: the row is the holder's, nothing is owed
    elif outcome is Outcome.WRITTEN:
        # What was owed and is written now; not what a record that lost meanwhile (stale,
        # above) owed since this one read slot.unrecorded.
        owed = (slot.unrecorded or {}).items()
        left = {k: v for k, v in owed if k not in fields or fields[k] != v}
        slot.unrecorded = left or None
    elif outcome is Outcome.REFUSED:
        slot.unrecorded = {**(slot.unrecorded or {}), **fields}
    return kept


class RowSlot(Protocol):
    """What :func:`kept_elsewhere` reads and sets of a slot (a reload's too)."""

    name: str
    elsewhere: bool


def kept_elsewhere(slot: RowSlot, holder: errors.AgentHeldElsewhere | None) -> bool:
    """Another supervisor of a shared NATS team holds the agent's lease (``holder``, the
    answer of the write, which asks it in the same conditional write: a lease taken
    between the question and the write refuses the write): its row is that supervisor's
    (our ``stopped`` or ``waiting`` on it would be a lie). ``slot.elsewhere`` says so from
    then on, logged once; cleared when the row is free again (the lease ran out or was
    released: nobody runs the agent, our state is its state)."""
    if holder is None:
        slot.elsewhere = False
        return False
    if not slot.elsewhere:
        slot.elsewhere = True
        log.info("row_held_elsewhere", agent=slot.name, host=holder.host, pid=holder.pid)
    return True


async def _reregister(
    sup: Team, slot: Slot, meta: dict[str, Any], pid: Any, *, said: bool = False
) -> errors.AgentHeldElsewhere | None:
    assert sup.mailbox is not None
    spec = sup.roster.agents.get(slot.name)
    if spec is None or sup.slots.get(slot.name) is not slot:
        return None  # removed by a reload: gone from the registry on purpose
    if not isinstance(pid, int):
        pid = slot.runner.pid if slot.runner is not None else None
    # Asked of the lease in the create's own conditional write: another supervisor that
    # took the agent since our record found the row gone keeps the row (its own).
    holder = await sup.leases.register_row(
        sup.mailbox,
        slot.name,
        spec.description,
        pid=pid,
        state=slot.state.value,
        meta={**meta, "supervised": True},
    )
    if kept_elsewhere(slot, holder):
        return holder
    if not said:
        log.warning("reregistered", agent=slot.name, reason="its registry row was deleted")
    return None


async def write(sup: Team, slot: Slot, **fields: Any) -> bool:
    """Write ``fields`` of an agent's row beside its state (a new pid, its context, the
    model's note): False if refused, which is logged, never raised into the session that
    reported them (it used to end it: session_crashed, a restart). On a row another
    supervisor holds nothing is written (:func:`kept_elsewhere`), and nothing is owed:
    True."""
    assert sup.mailbox is not None
    holder: errors.AgentHeldElsewhere | None = None

    async def write_fields() -> None:
        nonlocal holder
        assert sup.mailbox is not None
        holder = await sup.leases.write_row(sup.mailbox, slot.name, **fields)

    outcome = await refusals.attempt(
        sup, write_fields(), "state_not_recorded", agent=slot.name, fields=sorted(fields)
    )
    if outcome is Outcome.WRITTEN:
        kept_elsewhere(slot, holder)
    return outcome is Outcome.WRITTEN


async def note_model(sup: Team, slot: Slot, note: str | None) -> None:
    """What `ps` shows beside the state: the model's last trouble, until it answers."""
    note = note and note[:200]
    # One write per change; a write refused is tried again at the next event.
    if (
        note != slot.model_note
        and not slot.elsewhere
        and await write(sup, slot, meta={MODEL_NOTE: note})
    ):
        slot.model_note = note


async def heartbeats(sup: Team) -> None:
    """Beat the supervisor's heart and each running agent's; a row deleted is written again."""
    assert sup.mailbox is not None
    try:
        await sup.mailbox.update_agent(SUPERVISOR, heartbeat=True)
    except errors.RecipientUnknown:  # its row deleted under us: written again
        await register_self(sup, sup.mailbox)
    for slot in list(sup.slots.values()):
        if slot.state in RUNNING and not slot.elsewhere:
            try:
                # Asked of the lease in the same conditional write as every field of the
                # row: a supervisor that lost the agent and has not noticed yet beat the
                # new holder's heart. While our lease surely runs it costs no question.
                holder = await sup.leases.write_row(sup.mailbox, slot.name, heartbeat=True)
            except errors.RecipientUnknown:
                await record(sup, slot)
            else:
                kept_elsewhere(slot, holder)
