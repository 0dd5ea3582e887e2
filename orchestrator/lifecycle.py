"""One agent's lifecycle, without I/O: its states and their legal moves, what a runner's
events and a session's end mean, and the restart policy (backoff, the intensity limit).

The async supervisor (:mod:`orchestrator.supervisor`) feeds a :class:`Lifecycle` the
events it sees and carries out what it answers: record a move, start a session, wait
``delay_s`` then start again, give the agent up, stop. Everything here is synchronous
and takes its clock as an argument, so the whole state table is tested with plain
doubles and a fake clock (tests/team/test_lifecycle.py), as Supervisor's
``Subprocess.transition()`` is.
"""

from __future__ import annotations

import enum
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import IllegalTransition

if TYPE_CHECKING:
    from orchestrator.roster import AgentSpec


class AgentState(enum.StrEnum):
    """Shown by ``ps`` and stored in the agent registry (the values are what users see)."""

    # Started (up, a reload, start/restart AGENT): its session launches once what it
    # depends on is ready and its layer's turn has come (depends_on). Asks are queued.
    WAITING = "waiting"
    STARTING = "starting"  # claude process launching / connecting
    READY = "ready"  # connected, idle, waiting for messages
    BUSY = "busy"  # a turn is running
    BLOCKED = "blocked"  # a turn waits for a person or an agent (an approval)
    BACKOFF = "backoff"  # the session died; waiting before the next start
    FAILED = "failed"  # too many restarts in the window (or restart=never): given up
    STOPPING = "stopping"  # asked to stop: finishing or interrupting the turn
    STOPPED = "stopped"  # not running, by request (or never started)
    PAUSED = "paused"  # over its budget (or the team's): session kept, nothing claimed


S = AgentState

_EDGES: dict[AgentState, frozenset[AgentState]] = {
    # a stopped agent is started (up, start AGENT, hot reload): it waits for its turn
    S.STOPPED: frozenset({S.WAITING}),
    # its dependencies are ready: its session launches; stopped (or the team stopped)
    # while it waited: its start is abandoned
    S.WAITING: frozenset({S.STARTING, S.STOPPED}),
    # connect done -> ready; connect failed -> backoff or failed; stop while connecting
    S.STARTING: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
    # messages claimed -> busy; session died while idle -> backoff/failed; stop requested
    S.READY: frozenset({S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
    # turn finished -> ready; session died mid-turn -> backoff/failed; stop requested mid-turn
    S.BUSY: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.BLOCKED}),
    # the approval was answered (or timed out) -> busy again; the session died or was
    # stopped while it waited
    S.BLOCKED: frozenset({S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING}),
    # backoff elapsed -> starting; stop requested while waiting -> stopped; an operator's
    # restart whose new session waits for its dependencies -> waiting
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.STOPPING, S.FAILED, S.WAITING}),
    # an operator may start a failed agent again (start/restart AGENT, reload)
    S.FAILED: frozenset({S.WAITING, S.STOPPED}),
    # turn done or interrupted, session closed; an operator's restart: the next starts
    S.STOPPING: frozenset({S.STOPPED, S.BACKOFF}),
    # budget: a finished turn (or another agent's, for a team budget) goes over -> paused;
    # the window rolls over, the budget is raised or `resume` -> ready. A paused session
    # can still die (backoff/failed) or be stopped.
    S.PAUSED: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
}
# Edges into PAUSED, kept apart from the table above so that the budget's moves read together.
for _source in (S.READY, S.BUSY):
    _EDGES[_source] = _EDGES[_source] | {S.PAUSED}

# A live session; for depends_on, a start has come to an end once in one of these, or failed.
RUNNING = frozenset({S.READY, S.BUSY, S.BLOCKED, S.PAUSED})
SETTLED = RUNNING | {S.FAILED}
# No claude process once here: the registry's pid is cleared with the move.
NO_PROCESS = frozenset({S.WAITING, S.BACKOFF, S.FAILED, S.STOPPED})


def can_transition(current: AgentState, target: AgentState) -> bool:
    return target in _EDGES[current]


def transition(agent: str, current: AgentState, target: AgentState) -> AgentState:
    """Return ``target`` if the move is legal, else raise :class:`IllegalTransition`."""
    if not can_transition(current, target):
        raise IllegalTransition(agent, current.value, target.value)
    return target


# --- what comes in: a runner's events, a session's end ---------------------------------


class RunnerEvent(enum.StrEnum):
    """What a runner tells the supervisor (its ``on_event`` hook)."""

    READY = "ready"  # connected: {"pid", "session_id"} (again after a rewind: a new pid)
    BUSY = "busy"  # a turn began: {"messages"}
    BLOCKED = "blocked"  # the turn waits for an approval: {"reason", "request_id"}
    UNBLOCKED = "unblocked"  # ... and goes on: {"request_id"}
    TURN = "turn"  # a turn ended: its stats, {"totals"}, {"failure"} or {"resume_at"}
    CONTEXT = "context"  # context in use against the window (context.py)
    MODEL_ERROR = "model_error"  # the CLI retries a failed API call: {"reason"}
    # Spend outside a delivered turn's end (a compaction, an overflowed or interrupted turn,
    # a turn the CLI started by itself): its figures, {"cause"}, {"totals"}; moves nothing
    SPEND = "spend"
    # A turn's model requests answered so far ({"tally"}; None once the turn is counted):
    # kept in the registry, so that a supervisor killed mid-turn has them charged by the
    # next `up` (orchestrator/spend.py); moves nothing
    TALLY = "tally"


# The runner's hook into the supervisor (and into what the runner hands it: context,
# approvals): an event and its data.
OnEvent = Callable[[RunnerEvent, dict[str, Any]], Awaitable[None]]

# The moves a runner event makes, by the state it finds; any other pair moves nothing
# (a late "turn" after a stop asked, a "ready" after a rewind).
_EVENT_MOVES: dict[tuple[RunnerEvent, AgentState], AgentState] = {
    (RunnerEvent.READY, S.STARTING): S.READY,
    (RunnerEvent.BUSY, S.READY): S.BUSY,
    (RunnerEvent.BLOCKED, S.BUSY): S.BLOCKED,
    (RunnerEvent.UNBLOCKED, S.BLOCKED): S.BUSY,
    (RunnerEvent.TURN, S.BUSY): S.READY,
}


class EndReason(enum.StrEnum):
    """Why a session ended (logged as ``session_ended reason=...``)."""

    STOPPED = "stopped"  # by request: the only one that is not a failure
    EXITED = "exited"  # the claude process ended
    TURN_TIMEOUT = "turn_timeout"  # no output within turn_timeout (or a compaction gone silent)
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_FAILED = "connect_failed"
    CONTEXT_OVERFLOW = "context_overflow"  # the prompt outgrew the window: start afresh
    ERROR = "error"  # the runner crashed (a bug): a failed session like any other
    REWIND = "rewind"  # internal to the runner: a new process resumes before a failed turn


@dataclass(frozen=True)
class SessionEnd:
    reason: EndReason
    detail: str = ""
    exit_code: int | None = None
    handover: str = ""  # context_overflow: what the fresh session is told (context.py)

    @property
    def failed(self) -> bool:
        return self.reason != EndReason.STOPPED


# --- what goes out: the decision after a session ---------------------------------------


class Action(enum.StrEnum):
    RESTART = "restart"  # back off ``delay_s`` (cut short by a wake), then start again
    FAIL = "fail"  # given up: answer its waiting askers
    STOP = "stop"  # asked to stop: make the moves of stop_moves()


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    why: str = ""  # FAIL: why the agent was given up; RESTART: what caused it
    fresh: bool = False  # RESTART after a context overflow: no resume, a handover instead


@dataclass(frozen=True)
class RestartPolicy:
    """The roster's restart settings for one agent (``removed``: gone from the roster)."""

    restart: str  # always | on-failure | never | removed
    max_restarts: int = 0
    window_s: float = 0.0
    initial_s: float = 0.0
    max_s: float = 0.0

    @classmethod
    def of(cls, spec: AgentSpec | None) -> RestartPolicy:
        if spec is None:
            return cls("removed")
        return cls(
            spec.restart,
            spec.max_restarts,
            spec.restart_window_s,
            spec.backoff.initial_s,
            spec.backoff.max_s,
        )


def _jitter(delay_s: float) -> float:
    return delay_s * random.uniform(0.5, 1.0)  # restarts of several agents spread out


class Lifecycle:
    """One agent's state and restart history. Each event method moves the state (through
    :func:`transition`) and returns the moves it made, for the caller to record."""

    def __init__(
        self,
        name: str,
        *,
        want_running: bool = True,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] = _jitter,
    ) -> None:
        self.name = name
        self.state = AgentState.STOPPED
        self.want_running = want_running
        self.restart_count = 0  # every restart, shown by `ps`
        self.restarts: deque[float] = deque()  # clock times of failures, within the window
        self.restart_asked = False  # an operator's restart: the session ends, then restarts
        self._clock = clock
        self._jitter = jitter
        self._waiting_since = 0.0  # clock time of its move into ``waiting``

    def move(self, target: AgentState) -> list[AgentState]:
        before = self.state
        self.state = transition(self.name, self.state, target)
        if target == AgentState.WAITING and before != AgentState.WAITING:
            self._waiting_since = self._clock()
        return [target]

    def waited_s(self) -> float:
        """How long it has been ``waiting`` (queued in a layer, then for its dependencies):
        what its start waits for its dependencies is counted from there, once (0 when not
        waiting)."""
        if self.state != AgentState.WAITING:
            return 0.0
        return max(0.0, self._clock() - self._waiting_since)

    # --- asked from outside ---------------------------------------------------------

    def start(self) -> list[AgentState]:
        """An operator, ``up`` or a reload starts the agent (its session task begins): it
        is ``waiting`` until its session launches (:meth:`session_starting`).

        The restart window begins again, whatever the state: an edit (the reload stops
        and starts the agent), ``stop`` + ``start`` or ``restart`` is how an operator
        fixes a crash loop, and the failures before it made the first ordinary crash
        after the fix fail the agent for good (review F, M2). supervisord resets too;
        only the automatic restarts of one run (restarts.py) count toward the limit."""
        self.restarts.clear()
        self.restart_asked = False  # asked before a stop that won: not this run's
        self.want_running = True
        return self.queue()

    def queue(self) -> list[AgentState]:
        """The agent is to be started (by :meth:`start` or, in a later layer of `up` or of
        a reload, once the layers before it are ready): ``waiting``, shown as such, so that
        `ps` and whoever asks it see it on its way, not ``stopped`` (a stopped agent's asks
        are refused) nor its old ``failed`` (taken as settled by its dependents, which then
        started at once beside it)."""
        if self.state in (AgentState.STOPPED, AgentState.FAILED):
            return self.move(AgentState.WAITING)
        return []

    @property
    def settled(self) -> bool:
        """For its dependents: this agent's start has come to an end (a live session, or
        failed); not while it waits to launch one (``waiting``)."""
        return self.state in SETTLED

    def session_starting(self) -> list[AgentState]:
        return self.move(AgentState.STARTING)

    def wait_again(self) -> list[AgentState]:
        """An operator's restart whose new session waits for its dependencies: ``waiting``
        instead of ``backoff`` (nothing failed)."""
        if self.state == AgentState.BACKOFF:
            return self.move(AgentState.WAITING)
        return []

    def stop_asked(self) -> list[AgentState]:
        """``stop AGENT`` (or a reload): ``ps`` shows the stop at once, not when the turn
        ends (up to the grace later)."""
        self.want_running = False
        if self.state in RUNNING or self.state == AgentState.STARTING:
            return self.move(AgentState.STOPPING)
        return []

    def ask_restart(self) -> list[AgentState]:
        """``restart AGENT`` of a live session: it ends, then starts again at once, with
        a new restart window (see :meth:`start`). ``ps`` shows ``stopping`` at once, as
        for a stop: it showed ``ready`` and the old pid until the new session was up."""
        self.restart_asked = True
        self.restarts.clear()
        if self.state in RUNNING or self.state == AgentState.STARTING:
            return self.move(AgentState.STOPPING)
        return []

    def restart_now(self) -> None:
        """``restart AGENT`` of an agent in its backoff: woken at once (by the caller),
        with a new restart window (see :meth:`start`)."""
        self.restarts.clear()

    def pause(self) -> list[AgentState]:
        """Over budget: only an idle session is paused (a busy one is, after its turn)."""
        return self.move(AgentState.PAUSED) if self.state == AgentState.READY else []

    def unpause(self) -> list[AgentState]:
        return self.move(AgentState.READY) if self.state == AgentState.PAUSED else []

    def crashed(self) -> list[AgentState]:
        """The supervisor's own code failed for this agent: FAILED from wherever it was
        (not through transition(): the table may be what failed)."""
        self.state = AgentState.FAILED
        return [AgentState.FAILED]

    # --- from the runner ------------------------------------------------------------------

    def on_runner_event(self, event: RunnerEvent) -> list[AgentState]:
        target = _EVENT_MOVES.get((event, self.state))
        return self.move(target) if target is not None else []

    def session_ended(self, end: SessionEnd, policy: RestartPolicy, *, stopping: bool) -> Decision:
        """What follows a session's end. ``stopping``: the whole team is stopping."""
        if not self.want_running or stopping:
            return Decision(Action.STOP)
        if self.state == AgentState.STOPPING and not self.restart_asked:
            return Decision(Action.STOP)
        if end.reason == EndReason.CONTEXT_OVERFLOW:  # a fresh session, not toward failing
            return self._restart(0.0, end.reason, fresh=True)
        if self.restart_asked:  # an operator's restart: counted, but not toward failing
            self.restart_asked = False
            return self._restart(0.0, "requested")
        if policy.restart in ("never", "removed") or (
            policy.restart == "on-failure" and not end.failed
        ):
            why = f"session ended ({end.reason}) and restart is '{policy.restart}'"
            return self._fail(why)
        now = self._clock()
        self.restarts.append(now)
        while self.restarts and now - self.restarts[0] > policy.window_s:
            self.restarts.popleft()
        n = len(self.restarts)
        if n > policy.max_restarts:
            return self._fail(
                f"{n} restarts within {policy.window_s:g}s (max_restarts {policy.max_restarts})"
            )
        delay = min(policy.max_s, policy.initial_s * 2.0 ** (n - 1))
        return self._restart(self._jitter(delay), end.reason)

    def abandon_start(self) -> list[AgentState]:
        """A start queued with no session task yet (``waiting`` for its layer of `up` or
        of a reload) is given up: by a ``stop``, or the layers ending before its turn.
        Made here, not only recorded: it stayed ``waiting`` in memory while the registry
        said ``stopped`` (asks of it taken, dependents waiting for it, a later start
        recording nothing)."""
        if self.state == AgentState.WAITING:
            return self.move(AgentState.STOPPED)
        return []

    def stop_moves(self) -> list[AgentState]:
        """The moves still to make to end up STOPPED (after Action.STOP, or when the
        session task ends for a stop, or a start is abandoned); FAILED stays FAILED."""
        if self.state in (AgentState.STOPPED, AgentState.FAILED):
            return []
        if self.state in (AgentState.STOPPING, AgentState.WAITING):
            return [AgentState.STOPPED]
        return [AgentState.STOPPING, AgentState.STOPPED]

    def _restart(self, delay_s: float, why: str, *, fresh: bool = False) -> Decision:
        self.restart_count += 1
        self.move(AgentState.BACKOFF)
        return Decision(Action.RESTART, delay_s, why, fresh)

    def _fail(self, why: str) -> Decision:
        self.move(AgentState.FAILED)
        return Decision(Action.FAIL, why=why)
