"""One agent's place in the team: what the supervisor tracks for it between sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator.lifecycle import AgentState, Lifecycle

# The runner (and through it the SDK) is imported in the background (sdk_import.py).
if TYPE_CHECKING:
    from orchestrator.runner import AgentRunner


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
    # Queued in a later layer of `up` or of a reload: the agents of the layer being started,
    # whose start it waits for (what `ps` says it waits for: depends.waits_for).
    behind: list[Slot] = field(default_factory=list)
    # Its row says `waiting`, written by us (record_moves): what it waits for may be
    # rewritten there (depends.keep_told). Not before: a start moves it to waiting in
    # memory before it learns whether another supervisor of a shared team runs it.
    shown_waiting: bool = False

    @property
    def state(self) -> AgentState:
        return self.life.state

    def unqueue(self) -> None:
        """Undo a queued start whose record another supervisor's row refused (a shared
        NATS team): back to ``stopped`` in memory, unwritten, with nothing of the
        ``waiting`` the record made left behind. Only the lifecycle was undone by a
        reload's stop (the refusal in up's layers undid all three): what it said it
        waited for stayed in ``stats``, the meta of the slot's next record."""
        self.life.abandon_start()
        self.shown_waiting = False
        self.stats["waiting_for"] = None

    @property
    def want_running(self) -> bool:
        return self.life.want_running

    @want_running.setter
    def want_running(self, value: bool) -> None:
        self.life.want_running = value
