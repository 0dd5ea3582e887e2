"""One session of one agent: its runner built and run, and what the runner's events
mean for the agent (state moves, stats, the model's note, budgets).

A session that raises is one agent's bug, not the team's: it ends as a failed session
and follows the restart policy (:mod:`orchestrator.supervision.restarts`). Only a
database gone from its path ends everything.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from orchestrator import errors, procid
from orchestrator.agent_leases import AgentLeases
from orchestrator.agent_meta import RESUME_AT, TOTAL_KEYS
from orchestrator.budget_watch import BudgetWatch
from orchestrator.lifecycle import AgentState, EndReason, RunnerEvent, SessionEnd
from orchestrator.supervision import registry
from orchestrator.supervision.slot import Slot
from orchestrator.write_hold import Hold

log = structlog.get_logger()

_FAILURE_WORDS = {
    "unavailable": "model unavailable",
    "deterministic": "turn failed",
    "transient": "model error",
}


class Team(registry.Team, Protocol):
    """What a session needs of the supervisor, beyond what the registry writes need."""

    client: Callable[[Any], Any] | None  # the SDK's ClaudeSDKClient unless a test's double
    leases: AgentLeases  # which agents this supervisor holds (a shared NATS team)
    budgets: BudgetWatch
    cli_path: str | None
    write_hold: Hold  # the team's (write_hold.py): each of its agents' policies holds with it

    @property
    def stopping(self) -> bool: ...

    async def record_moves(
        self, slot: Slot, moves: list[AgentState], **fields: Any
    ) -> errors.AgentHeldElsewhere | None: ...


async def one_session(sup: Team, slot: Slot) -> SessionEnd:
    """Run one session of ``slot``'s agent to its end; how it ended."""
    assert sup.mailbox is not None
    # Not imported at the top: `up` would wait for the SDK before the team is operable.
    # The SDK import imported it (sdk_import.py); launch.until_launchable waited for that.
    from orchestrator.runner import AgentRunner  # noqa: PLC0415 - lazy on purpose

    # Before the move is recorded: `ps` showed a restarted agent `starting` with the
    # uptime of the session before.
    slot.started_at = time.time()
    await sup.record_moves(slot, slot.life.session_starting())
    runner = AgentRunner(
        slot.name,
        sup.mailbox,
        lambda: sup.roster,
        owner=f"{sup.instance}:{slot.name}:{uuid.uuid4().hex[:6]}",
        cli_path=sup.cli_path,
        on_event=lambda event, data: on_runner_event(sup, slot, event, data),
        session_id=slot.stats.get("session_id"),
        peer_state=lambda name: _peer_state(sup, name),
        totals=slot.stats,
        resume_at=slot.stats.get(RESUME_AT),
        hold=sup.budgets.hold,
        budgets=sup.budgets,
        write_hold=sup.write_hold,
        **({"client": sup.client} if sup.client is not None else {}),
    )
    runner.context.handover = slot.handover
    slot.handover = None
    slot.runner = runner
    if sup.stopping or not slot.want_running:
        runner.request_stop(0)
    try:
        end = await runner.run()
    except Exception as exc:
        replaced = errors.DatabaseReplaced.found_in(exc)
        if replaced is not None:  # not this agent's bug: the whole team stops
            sup.abandon(replaced)
            return SessionEnd(EndReason.ERROR, replaced.reason)
        # A supervision boundary: one agent's bug must not take the team down; it counts
        # as a failed session and follows the restart policy.
        log.exception("session_crashed", agent=slot.name, error=repr(exc))
        end = SessionEnd(EndReason.ERROR, repr(exc))
    finally:
        slot.runner = None
        # The totals as the session left them (its CLI closed: spend.Spend.closed), for the
        # end's record and the next session.
        slot.stats.update({k: v for k, v in runner.spend.totals.items() if k in TOTAL_KEYS})
    log.info(
        "session_ended",
        agent=slot.name,
        reason=end.reason.value,
        detail=end.detail,
        exit_code=end.exit_code,
    )
    return end


def _peer_state(sup: Team, name: str) -> str | None:
    """``name``'s state for an agent's ask. One started whose session waits for its
    dependencies or its layer is ``waiting``: its asks are taken, not refused as stopped.
    None when the registry says (the relay reads it then): an agent another supervisor of
    a shared NATS team took over, and one queued here whose lease is not ours yet
    (queued in a later layer: another machine may run it, and it may have failed there;
    our `waiting` hid its row, and asks of it were queued for nobody to answer)."""
    slot = sup.slots.get(name)
    if slot is None or slot.elsewhere:
        return None
    if slot.state == AgentState.WAITING and not sup.leases.holds(name):
        return None
    return slot.state.value


async def _tally_counted(sup: Team, slot: Slot) -> None:
    """The turn's requests are about to reach the ledger: off the registry first (a
    supervisor killed between the two loses them rather than charging them twice)."""
    if slot.stats.get("turn_tally") is None:
        return
    slot.stats["turn_tally"] = None
    if not slot.elsewhere:
        await registry.write(sup, slot, meta={"turn_tally": None}, heartbeat=False)


async def on_runner_event(sup: Team, slot: Slot, event: RunnerEvent, data: dict[str, Any]) -> None:
    """What a runner's event means: the state's move is the lifecycle's (a pair it does
    not know moves nothing); what goes with it (stats, notes, budgets) is here."""
    if event == RunnerEvent.READY:
        slot.stats["session_id"] = data.get("session_id") or slot.stats.get("session_id")
        pid = data.get("pid")  # its start time tells a later `up` it is still this process
        slot.stats["pid_start"] = procid.start_ticks(pid) if isinstance(pid, int) else None
        # With the pid: `ps` on another machine of a NATS team shows no figures for it.
        slot.stats["host"] = socket.gethostname()
        moves = slot.life.on_runner_event(event)
        if moves:
            await sup.record_moves(slot, moves, pid=pid)
            await sup.budgets.evaluate("start")
        elif (
            sup.mailbox is not None
            and not slot.elsewhere
            and not await registry.write(sup, slot, pid=pid)  # a new process (a rewind)
        ):
            slot.unrecorded = {**(slot.unrecorded or {}), "pid": pid}  # the next record's
    elif event == RunnerEvent.CONTEXT:  # context in use against the window (context.py)
        if not slot.elsewhere:  # refused: the next turn's figures replace these anyway
            await registry.write(sup, slot, meta={"context": data}, heartbeat=False)
    elif event == RunnerEvent.TALLY:  # the turn's requests so far (spend.py)
        slot.stats["turn_tally"] = data["tally"]
        if not slot.elsewhere:
            await registry.write(sup, slot, meta={"turn_tally": data["tally"]}, heartbeat=False)
    elif event == RunnerEvent.SPEND:  # counted like a turn's; the state does not move
        await _tally_counted(sup, slot)
        slot.stats.update({k: v for k, v in data["totals"].items() if k in TOTAL_KEYS})
        await sup.budgets.after_turn(slot.name, data)
    elif event == RunnerEvent.MODEL_ERROR:
        await registry.note_model(sup, slot, str(data.get("reason") or ""))
    elif event == RunnerEvent.TURN:
        await _tally_counted(sup, slot)
        # The runner keeps the totals (orchestrator.usage); the state's record persists them.
        slot.stats.update({k: v for k, v in data["totals"].items() if k in TOTAL_KEYS})
        if data.get("resume_at"):
            slot.stats[RESUME_AT] = data["resume_at"]
        failure = data.get("failure")
        if failure is None:
            await registry.note_model(sup, slot, None)  # the model answered: nothing to show
        else:
            await registry.note_model(
                sup, slot, f"{_FAILURE_WORDS[failure.kind]}: {failure.reason}"
            )
        await sup.record_moves(slot, slot.life.on_runner_event(event))
        await sup.budgets.after_turn(slot.name, data)
    else:  # busy, blocked (issue 11: approvals), unblocked
        moves = slot.life.on_runner_event(event)
        if event == RunnerEvent.BLOCKED and moves:
            slot.stats["blocked_reason"] = data.get("reason")
        elif event == RunnerEvent.UNBLOCKED and moves:
            slot.stats.pop("blocked_reason", None)
        await sup.record_moves(slot, moves)
