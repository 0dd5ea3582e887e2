"""Agent lifecycle: the states a supervised agent can be in and the legal moves.

One function, :func:`transition`, changes state; every edge has a reason.
Shown by ``ps`` and stored in the agent registry.
"""

from __future__ import annotations

import enum

from orchestrator.errors import IllegalTransition


class AgentState(enum.StrEnum):
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
    # a stopped agent is started (up, start AGENT, hot reload)
    S.STOPPED: frozenset({S.STARTING}),
    # connect done -> ready; connect failed -> backoff or failed; stop while connecting
    S.STARTING: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
    # messages claimed -> busy; session died while idle -> backoff/failed; stop requested
    S.READY: frozenset({S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
    # turn finished -> ready; session died mid-turn -> backoff/failed; stop requested mid-turn
    S.BUSY: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.BLOCKED}),
    # the approval was answered (or timed out) -> busy again; the session died or was
    # stopped while it waited
    S.BLOCKED: frozenset({S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING}),
    # backoff elapsed -> starting; stop requested while waiting -> stopped
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.STOPPING, S.FAILED}),
    # an operator may start a failed agent again (start/restart AGENT, reload)
    S.FAILED: frozenset({S.STARTING, S.STOPPED}),
    # turn done or interrupted, session closed
    S.STOPPING: frozenset({S.STOPPED}),
    # budget: a finished turn (or another agent's, for a team budget) goes over -> paused;
    # the window rolls over, the budget is raised or `resume` -> ready. A paused session
    # can still die (backoff/failed) or be stopped.
    S.PAUSED: frozenset({S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED}),
}
# Edges into PAUSED, kept apart from the table above so that the budget's moves read together.
for _source in (S.READY, S.BUSY):
    _EDGES[_source] = _EDGES[_source] | {S.PAUSED}


def can_transition(current: AgentState, target: AgentState) -> bool:
    return target in _EDGES[current]


def transition(agent: str, current: AgentState, target: AgentState) -> AgentState:
    """Return ``target`` if the move is legal, else raise :class:`IllegalTransition`."""
    if not can_transition(current, target):
        raise IllegalTransition(agent, current.value, target.value)
    return target
