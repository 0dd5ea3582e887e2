"""Operator commands on one agent of a running team: start, stop, restart.

Each takes the agent's ``ops`` lock (a reload touching the agent holds it too),
so commands on one agent apply one after the other: two control paths on one
agent used to start a second session task for it, and the supervisor died on
``IllegalTransition`` (issue 16, A.1). A command that does not apply in the
agent's state says so (``already running``) or is refused with the reason
(:class:`~orchestrator.errors.OperationRefused`), never half-applied.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import structlog

from orchestrator import errors
from orchestrator.lifecycle import AgentState, Lifecycle

if TYPE_CHECKING:
    from orchestrator.agent_leases import AgentLeases
    from orchestrator.mailbox import AsyncMailboxBackend
    from orchestrator.runner import AgentRunner


class AgentSlot(Protocol):
    """What an operation reads and sets of one agent's slot (the supervisor's ``Slot``)."""

    name: str
    ops: anyio.Lock
    done: anyio.Event
    wake: anyio.Event
    want_running: bool
    life: Lifecycle  # its state and restart history (orchestrator/lifecycle.py)
    elsewhere: bool  # its row kept by another supervisor of a shared NATS team

    @property
    def state(self) -> AgentState: ...

    @property
    def runner(self) -> AgentRunner | None: ...

    def unqueue(self) -> None: ...  # a queued start the row's holder refused, undone


SlotT = TypeVar("SlotT", bound=AgentSlot)

log = structlog.get_logger()


class Team(Protocol[SlotT]):
    """What the operations need of the supervisor: typed here (not by importing it) so
    the arrows run one way, from the supervisor to its helpers."""

    grace_s: float
    leases: AgentLeases  # which agents this supervisor may run (agent_leases.py)
    mailbox: AsyncMailboxBackend | None

    @property
    def slots(self) -> dict[str, SlotT]: ...

    @property
    def stopping(self) -> bool: ...

    def request_stop(self, slot: SlotT, grace_s: float) -> None: ...

    async def record_moves(
        self, slot: SlotT, moves: list[AgentState], **fields: Any
    ) -> errors.AgentHeldElsewhere | None: ...

    async def spawn(self, name: str) -> bool: ...


async def _locked(sup: Team[SlotT], name: str) -> tuple[SlotT, contextlib.AsyncExitStack]:
    """The agent's slot with its ops lock held (released by closing the stack); the agent
    may have been removed by a reload while the command waited for the lock."""
    slot = sup.slots.get(name)
    if slot is None:
        raise errors.AgentNotFound(name, list(sup.slots))
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(slot.ops)
    if sup.slots.get(name) is not slot:
        await stack.aclose()
        raise errors.AgentNotFound(name, list(sup.slots))
    return slot, stack


def _refuse_while_stopping(sup: Team[SlotT], command: str, name: str) -> None:
    if sup.stopping:
        raise errors.OperationRefused(command, name, "the team is stopping")


async def _refuse_held_elsewhere(sup: Team[SlotT], name: str) -> None:
    """Another supervisor of a shared NATS team runs this agent: say which."""
    elsewhere = await sup.leases.held_elsewhere(name)
    if elsewhere is not None:
        raise elsewhere


async def stop_and_wait(sup: Team[SlotT], name: str, grace_s: float | None = None) -> None:
    """Stop an agent's sessions and wait until its task is gone (the caller holds ops)."""
    slot = sup.slots[name]
    sup.request_stop(slot, sup.grace_s if grace_s is None else grace_s)
    await sup.record_moves(slot, slot.life.stop_asked())  # shown at once, not when the turn ends
    await slot.done.wait()


async def stop_agent(sup: Team[SlotT], name: str, grace_s: float | None = None) -> str:
    slot, held = await _locked(sup, name)
    async with held:
        if slot.done.is_set():
            slot.want_running = False
            if slot.state == AgentState.WAITING:  # queued in a layer of `up`: not started
                # Whose it is: asked once, in the record's own conditional write.
                elsewhere = await sup.record_moves(slot, slot.life.abandon_start())
                if elsewhere is not None:
                    # Queued here, and run meanwhile by another supervisor of a shared
                    # NATS team: its row and its askers are that one's. Our queued start
                    # ends unwritten (registry.record); the stop is refused, naming the
                    # supervisor, as a `start` is (it wrote `stopped`, pid None, over the
                    # running agent's row and answered its askers recipient_stopped).
                    raise elsewhere
                await _answer_waiters(sup, name)
                return "stopped"
            if slot.state == AgentState.STOPPED:
                # A shared NATS team's agent another one runs: it said 'already stopped'.
                await _refuse_held_elsewhere(sup, name)
                return "already stopped"
            return f"not running ({slot.state.value})"
        await stop_and_wait(sup, name, grace_s)
        await _answer_waiters(sup, name)
        return "stopped"


async def _answer_waiters(sup: Team[SlotT], name: str) -> None:
    """Answer ``recipient_stopped`` to the requests someone waits on for the agent just
    stopped (a live wait-for edge: an agent's or the CLI's `ask`), as a new ask to it is
    refused: the asker waited out its whole timeout, its turn and inbox with it (review
    I.1). Notices and requests nobody waits on stay queued for the next `start`. A queue
    that refuses the writes leaves those asks to their timeout: logged, not fatal."""
    if sup.mailbox is None:
        return
    detail = (
        f"'{name}' was stopped by the operator before it answered; it answers only once "
        "someone starts it: send it a notice instead (it waits in its inbox), or ask "
        "another agent"
    )
    code = errors.RecipientStopped.code
    answered = 0
    try:
        for request_id in await sup.mailbox.waited_requests(name):
            try:
                request = await sup.mailbox.get(request_id)
                if (request.kind, request.recipient) != ("request", name):
                    continue  # a plain-SQL writer's edge that names another message
                if request.status in ("pending", "leased") and await sup.mailbox.fail_request(
                    request_id, code, detail
                ):
                    answered += 1
            except errors.MessageNotFound:  # an edge left behind a purged request
                continue
    except errors.QueueError as exc:
        log.error("requests_not_failed", agent=name, code=code, error=str(exc))
    if answered:
        log.warning("requests_failed", agent=name, requests=answered, code=code)


async def start_agent(sup: Team[SlotT], name: str) -> str:
    slot, held = await _locked(sup, name)
    async with held:
        _refuse_while_stopping(sup, "start", name)
        await _refuse_held_elsewhere(sup, name)
        if not slot.done.is_set():
            if slot.want_running:
                return "already running"
            await slot.done.wait()  # a stop nobody holds the lock for (shutdown)
        if not await sup.spawn(name):
            raise errors.OperationRefused("start", name, "the team is stopping")
        return "started"


async def restart_agent(sup: Team[SlotT], name: str) -> str:
    slot, held = await _locked(sup, name)
    async with held:
        _refuse_while_stopping(sup, "restart", name)
        await _refuse_held_elsewhere(sup, name)
        if slot.runner is not None and slot.want_running:
            slot.runner.request_stop(sup.grace_s)
            await sup.record_moves(slot, slot.life.ask_restart())  # `stopping`, shown at once
            return "restarting"
        if not slot.done.is_set():
            slot.life.restart_now()
            slot.wake.set()  # in backoff: start now
            return "restarting"
        if not await sup.spawn(name):
            raise errors.OperationRefused("restart", name, "the team is stopping")
        return "started"


__all__ = ["AgentSlot", "Team", "restart_agent", "start_agent", "stop_agent", "stop_and_wait"]
