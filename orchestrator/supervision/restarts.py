"""One agent's task: its lease taken, then its sessions one after another, each end
restarted (after a backoff), failed or stopped as its lifecycle's restart policy decides
(:meth:`orchestrator.lifecycle.Lifecycle.session_ended`).

A failed agent's askers are answered with an error before its task ends, so whoever
waits for them stops waiting. The task is the supervisor's boundary per agent: an error
nobody expected fails this agent, never the team (issue 16, A.6).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import anyio
import structlog

from orchestrator import errors
from orchestrator.agent_leases import AgentLeases
from orchestrator.agent_meta import RESUME_AT
from orchestrator.lifecycle import Action, AgentState, RestartPolicy, SessionEnd
from orchestrator.mailbox import AsyncMailboxBackend
from orchestrator.mailbox.backend import fail_waiting
from orchestrator.supervision import depends, launch, refusals, registry, sessions
from orchestrator.supervision.slot import Slot

log = structlog.get_logger()


class Team(sessions.Team, launch.Team, depends.Team, Protocol):
    """What an agent's task needs of the supervisor."""

    leases: AgentLeases  # which agents are ours to run (agent_leases.py)

    def notify_changed(self) -> None: ...

    async def move_to(self, slot: Slot, target: AgentState) -> None: ...


async def supervise(sup: Team, slot: Slot) -> None:
    """Run ``slot``'s agent until it is stopped or fails; ``slot.done`` is set at the end."""
    try:
        try:
            await sup.leases.take(slot.name)
        except errors.AgentHeldElsewhere as exc:  # refused; the other agents run on
            slot.want_running = False
            for target in slot.life.stop_moves():  # its row is the holder's: not written
                await sup.move_to(slot, target)
            log.error("agent_held_elsewhere", agent=slot.name, error=str(exc))
            return
        if slot.elsewhere:  # ours again: its row says what it does now (was left alone)
            await sup.record_moves(slot, [slot.state])
        await _sessions(sup, slot)
    except Exception as exc:
        # The supervisor's own boundary per agent: a bug here (or an error nobody
        # expected) fails this agent, never the team (issue 16, A.6).
        log.exception("supervise_crashed", agent=slot.name, error=repr(exc))
        slot.life.crashed()
        with contextlib.suppress(Exception):
            await registry.record(sup, slot, pid=None)
            await fail_requests(
                sup, slot.name, errors.RecipientFailed.code, f"'{slot.name}' failed: {exc!r}"
            )
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(errors.QueueError):
            await sup.leases.release(slot.name)
        slot.done.set()
        sup.notify_changed()


async def _sessions(sup: Team, slot: Slot) -> None:
    launchable = await launch.until_launchable(sup, slot)  # no claude before the SDK is there
    if launchable:  # started by up, a reload or an operator: what it depends on first
        await depends.wait_for_dependencies(sup, slot)
    while launchable and slot.want_running and not sup.stopping:
        end = await sessions.one_session(sup, slot)
        decision = slot.life.session_ended(
            end,
            RestartPolicy.of(sup.roster.agents.get(slot.name)),
            stopping=sup.stopping,
        )
        if decision.action == Action.STOP:
            break
        if decision.action == Action.FAIL:
            # Recorded, and its askers answered, before slot.done is set (in
            # supervise): whoever waits for the task sees the agent failed.
            await sup.record_moves(slot, [slot.state])
            log.error("failed", agent=slot.name, reason=decision.why)
            await fail_requests(
                sup, slot.name, errors.RecipientFailed.code, f"'{slot.name}' failed: {decision.why}"
            )
            return
        if decision.fresh:  # the prompt outgrew the model's window
            await _context_reset(sup, slot, end)
            continue
        await sup.record_moves(slot, [slot.state])
        if decision.why == "requested":  # `restart AGENT`: a start asked, as above
            log.info("restarting", agent=slot.name, reason="requested")
            await depends.wait_for_dependencies(sup, slot)
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
        await sup.move_to(slot, target)


async def _context_reset(sup: Team, slot: Slot, end: SessionEnd) -> None:
    """The prompt outgrew the model's window: the next session starts afresh (no
    resume) and is told where it was; the message in flight was requeued."""
    slot.stats["session_id"] = None
    slot.stats[RESUME_AT] = None  # a point in the old conversation: nothing to go back to
    slot.handover = end.handover
    await sup.record_moves(slot, [slot.state])  # BACKOFF, counted as a restart
    log.warning("context_reset", agent=slot.name, detail=end.detail)


class Answering(refusals.Abandons, Protocol):
    """What answering an agent's waiting requests needs (a reload removing it too)."""

    mailbox: AsyncMailboxBackend | None


async def fail_requests(sup: Answering, name: str, code: str, detail: str) -> None:
    """Answer every request still waiting for ``name`` with an error ``code``, so its
    askers stop waiting now (notices stay queued for the agent's return). A database
    that refuses the writes leaves them to their TTL: logged, not fatal."""
    assert sup.mailbox is not None
    mailbox = sup.mailbox
    answered = 0

    async def answer() -> None:
        nonlocal answered
        statuses = ("pending", "leased")
        answered = len(await fail_waiting(mailbox, name, code, detail, log, statuses=statuses))

    await refusals.attempt(
        sup, answer(), "requests_not_failed", level="error", agent=name, code=code
    )
    if answered:
        log.warning("requests_failed", agent=name, requests=answered, code=code)
