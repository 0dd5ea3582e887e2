"""The agent lifecycle alone (orchestrator/lifecycle.py): every edge of the state table, what
each runner event and session end moves, the restart policy and the intensity limit, driven
by plain doubles and a fake clock (no claude process, no event loop)."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.errors import IllegalTransition
from orchestrator.lifecycle import (
    _EDGES,
    RUNNING,
    Action,
    AgentState,
    EndReason,
    Lifecycle,
    RestartPolicy,
    RunnerEvent,
    SessionEnd,
    can_transition,
    transition,
)

S = AgentState

# The table as the README promises it, written out edge by edge (not read from _EDGES).
LEGAL = {
    (S.STOPPED, S.WAITING),
    (S.WAITING, S.STARTING),
    (S.WAITING, S.STOPPED),
    *((S.STARTING, t) for t in (S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED)),
    *((S.READY, t) for t in (S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED, S.PAUSED)),
    *((S.BUSY, t) for t in (S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.BLOCKED, S.PAUSED)),
    *((S.BLOCKED, t) for t in (S.BUSY, S.BACKOFF, S.FAILED, S.STOPPING)),
    *((S.BACKOFF, t) for t in (S.STARTING, S.STOPPED, S.STOPPING, S.FAILED, S.WAITING)),
    (S.FAILED, S.WAITING),
    (S.FAILED, S.STOPPED),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.BACKOFF),  # an operator's restart: the session closed, the next starts
    *((S.PAUSED, t) for t in (S.READY, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED)),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(restart: str = "always", **kw: float) -> RestartPolicy:
    values = {"max_restarts": 3, "window_s": 60.0, "initial_s": 1.0, "max_s": 8.0, **kw}
    return RestartPolicy(
        restart,
        int(values["max_restarts"]),
        values["window_s"],
        values["initial_s"],
        values["max_s"],
    )


def life_in(state: AgentState, clock: Clock | None = None) -> Lifecycle:
    life = Lifecycle("a", clock=clock or Clock(), jitter=lambda d: d)
    life.state = state
    return life


EXITED = SessionEnd(EndReason.EXITED, "claude process ended", 1)


def test_every_pair_of_states() -> None:
    for current, target in itertools.product(S, S):
        legal = (current, target) in LEGAL
        assert can_transition(current, target) is legal, (current, target)
        if legal:
            assert transition("a", current, target) is target
        else:
            with pytest.raises(IllegalTransition) as caught:
                transition("a", current, target)
            assert (caught.value.current, caught.value.target) == (current.value, target.value)


def test_the_table_has_no_other_edges() -> None:
    assert {(c, t) for c, ts in _EDGES.items() for t in ts} == LEGAL


def test_values_are_what_users_see() -> None:
    # Written to the registry and logs: renaming a member must not change them.
    assert [s.value for s in S] == [
        "waiting",
        "starting",
        "ready",
        "busy",
        "blocked",
        "backoff",
        "failed",
        "stopping",
        "stopped",
        "paused",
    ]
    assert {r.value for r in EndReason} == {
        "stopped",
        "exited",
        "turn_timeout",
        "connect_timeout",
        "connect_failed",
        "context_overflow",
        "error",
        "rewind",
    }
    assert RunnerEvent.TURN == "turn"
    assert f"{EndReason.EXITED}" == "exited"


# --- runner events ----------------------------------------------------------------------

MOVES = {
    (RunnerEvent.READY, S.STARTING): S.READY,
    (RunnerEvent.BUSY, S.READY): S.BUSY,
    (RunnerEvent.BLOCKED, S.BUSY): S.BLOCKED,
    (RunnerEvent.UNBLOCKED, S.BLOCKED): S.BUSY,
    (RunnerEvent.TURN, S.BUSY): S.READY,
}


def test_runner_event_in_every_state() -> None:
    for event, state in itertools.product(RunnerEvent, S):
        life = life_in(state)
        moves = life.on_runner_event(event)
        expected = MOVES.get((event, state))
        # Anything else moves nothing: a "turn" after a stop was asked leaves STOPPING
        # alone, a second "ready" (a rewind: a new process) leaves READY alone.
        assert moves == ([expected] if expected else []), (event, state)
        assert life.state == (expected or state)


def test_a_session_from_start_to_stop() -> None:
    life = Lifecycle("a", want_running=False)
    life.start()
    assert life.want_running
    assert life.session_starting() == [S.STARTING]
    assert life.on_runner_event(RunnerEvent.READY) == [S.READY]
    assert life.on_runner_event(RunnerEvent.BUSY) == [S.BUSY]
    assert life.on_runner_event(RunnerEvent.BLOCKED) == [S.BLOCKED]
    assert life.on_runner_event(RunnerEvent.UNBLOCKED) == [S.BUSY]
    assert life.on_runner_event(RunnerEvent.TURN) == [S.READY]
    assert life.stop_asked() == [S.STOPPING]
    assert not life.want_running
    end = SessionEnd(EndReason.STOPPED)
    assert life.session_ended(end, policy(), stopping=False).action == Action.STOP
    assert life.stop_moves() == [S.STOPPED]


def test_a_start_waits_shown_as_waiting_until_its_session_launches() -> None:
    """A start (or a place in a later layer) shows ``waiting``, from stopped or failed,
    not the state it was started from: `stopped` had its asks refused, and `failed` was
    taken as settled by its dependents. Its first session moves it on; an operator's
    restart that waits for its dependencies waits in ``waiting`` too."""
    for before in (S.STOPPED, S.FAILED):
        life = life_in(before)
        assert life.start() == [S.WAITING]
        assert not life.settled
        assert life.start() == []  # queued before its layer's turn: already waiting
        assert life.session_starting() == [S.STARTING]
    queued = life_in(S.STOPPED)
    assert queued.queue() == [S.WAITING]
    assert queued.stop_asked() == []  # nothing to interrupt: its end stops it
    assert queued.stop_moves() == [S.STOPPED]
    life = life_in(S.BACKOFF)
    assert life.wait_again() == [S.WAITING]
    assert life_in(S.READY).wait_again() == []
    for state in S:
        if state not in (S.STOPPED, S.FAILED):
            assert life_in(state).queue() == [], state


# --- asked from outside -----------------------------------------------------------------


def test_stop_asked_in_every_state() -> None:
    for state in S:
        life = life_in(state)
        moves = life.stop_asked()
        shown_at_once = state in RUNNING or state == S.STARTING
        assert moves == ([S.STOPPING] if shown_at_once else []), state
        assert life.state == (S.STOPPING if shown_at_once else state)
        assert not life.want_running


def test_restart_asked_in_every_state() -> None:
    """`restart AGENT` of a live session: `ps` shows `stopping` at once, as for a stop (it
    showed `ready` and the old pid until the new session was up, review F, L3), while the
    agent stays wanted; the session's end then restarts it."""
    for state in S:
        life = life_in(state)
        moves = life.ask_restart()
        shown_at_once = state in RUNNING or state == S.STARTING
        assert moves == ([S.STOPPING] if shown_at_once else []), state
        assert life.want_running
        if shown_at_once:
            decision = life.session_ended(SessionEnd(EndReason.STOPPED), policy(), stopping=False)
            assert decision == type(decision)(Action.RESTART, 0.0, "requested")
            assert life.state == S.BACKOFF


def test_a_start_forgets_a_restart_asked_before_a_stop() -> None:
    life = life_in(S.READY)
    life.ask_restart()
    life.stop_asked()
    assert life.session_ended(SessionEnd(EndReason.STOPPED), policy(), stopping=False).action == (
        Action.STOP
    )
    for target in life.stop_moves():
        life.move(target)
    life.start()
    life.session_starting()
    life.on_runner_event(RunnerEvent.READY)
    assert life.session_ended(EXITED, policy("never"), stopping=False).action == Action.FAIL


def test_pause_and_unpause_in_every_state() -> None:
    for state in S:
        assert life_in(state).pause() == ([S.PAUSED] if state == S.READY else []), state
        assert life_in(state).unpause() == ([S.READY] if state == S.PAUSED else []), state


@pytest.mark.parametrize(
    ("state", "moves"),
    [
        (S.STOPPED, []),
        (S.FAILED, []),
        (S.STOPPING, [S.STOPPED]),
        (S.WAITING, [S.STOPPED]),
        *((s, [S.STOPPING, S.STOPPED]) for s in (S.STARTING, S.BACKOFF, *sorted(RUNNING))),
    ],
)
def test_stop_moves_are_legal_and_end_stopped(state: AgentState, moves: list[AgentState]) -> None:
    life = life_in(state)
    assert life.stop_moves() == moves
    for target in moves:
        life.move(target)  # raises if the path is not in the table
    assert life.state in (S.STOPPED, S.FAILED)


def test_a_crash_of_the_supervisor_fails_the_agent_from_anywhere() -> None:
    for state in S:
        life = life_in(state)
        assert life.crashed() == [S.FAILED]
        assert life.state == S.FAILED


def test_starting_a_failed_agent_opens_a_new_restart_window() -> None:
    clock = Clock()
    life = life_in(S.BUSY, clock)
    p = policy(max_restarts=1)
    assert life.session_ended(EXITED, p, stopping=False).action == Action.RESTART
    life.move(S.STARTING)
    assert life.session_ended(EXITED, p, stopping=False).action == Action.FAIL
    life.start()  # `start AGENT`
    assert not life.restarts
    assert life.want_running
    life.session_starting()
    assert life.session_ended(EXITED, p, stopping=False).action == Action.RESTART


def crash_looping(clock: Clock, p: RestartPolicy) -> Lifecycle:
    """An agent that failed max_restarts times within the window, now in its backoff."""
    life = life_in(S.STARTING, clock)
    for _ in range(p.max_restarts):
        life.on_runner_event(RunnerEvent.READY)
        decision = life.session_ended(EXITED, p, stopping=False)
        assert decision.action == Action.RESTART
        clock.now += decision.delay_s + 0.5
        life.session_starting()
    assert len(life.restarts) == p.max_restarts
    return life


def one_more_crash(life: Lifecycle, clock: Clock, p: RestartPolicy) -> Action:
    clock.now += 10.0  # well within the window
    life.on_runner_event(RunnerEvent.READY)
    return life.session_ended(EXITED, p, stopping=False).action


def test_a_start_after_a_stop_opens_a_new_restart_window() -> None:
    """Review F, M2: a crash loop fixed by an edit (the reload stops and starts the agent)
    or by `stop` + `start` kept its failures: the first ordinary crash after the fix
    failed the agent for good. Every start by an operator or a reload forgets them, as
    supervisord does; only the automatic restarts of one run count toward the limit."""
    clock, p = Clock(), policy(max_restarts=5, window_s=60.0, initial_s=1.0, max_s=30.0)
    life = crash_looping(clock, p)
    life.want_running = False  # stop_asked() (a reload's, or `stop AGENT`)
    for target in life.stop_moves():
        life.move(target)
    life.start()
    assert not life.restarts
    life.session_starting()
    assert one_more_crash(life, clock, p) == Action.RESTART


def test_an_operators_restart_opens_a_new_restart_window() -> None:
    """`restart AGENT`, of a live session or of one in its backoff, forgets the failures."""
    clock, p = Clock(), policy(max_restarts=5, window_s=60.0, initial_s=1.0, max_s=30.0)
    live = crash_looping(clock, p)
    live.on_runner_event(RunnerEvent.READY)
    live.ask_restart()
    assert not live.restarts
    assert live.session_ended(SessionEnd(EndReason.STOPPED), p, stopping=False).action == (
        Action.RESTART
    )
    live.session_starting()
    assert one_more_crash(live, clock, p) == Action.RESTART

    waiting = crash_looping(clock, p)
    waiting.on_runner_event(RunnerEvent.READY)
    assert waiting.session_ended(EXITED, p, stopping=False).action == Action.FAIL  # 6th
    waiting = crash_looping(clock, p)
    waiting.move(S.BACKOFF)
    waiting.restart_now()  # `restart AGENT` in its backoff: woken at once
    assert not waiting.restarts
    waiting.session_starting()
    assert one_more_crash(waiting, clock, p) == Action.RESTART


# --- a session's end --------------------------------------------------------------------


def test_a_stop_wins_over_everything() -> None:
    states = [S.STARTING, S.READY, S.BUSY, S.BLOCKED, S.PAUSED]
    for state, reason, how in itertools.product(states, EndReason, ("team", "agent", "stop")):
        life = life_in(state)
        life.want_running = how != "agent"
        life.ask_restart()
        if how == "stop":  # `stop AGENT` after the restart was asked
            life.stop_asked()
        decision = life.session_ended(SessionEnd(reason), policy(), stopping=how == "team")
        assert decision.action == Action.STOP, (state, reason, how)
        assert life.restart_count == 0
        assert not life.restarts


def test_context_overflow_restarts_afresh_at_once_not_toward_failing() -> None:
    end = SessionEnd(EndReason.CONTEXT_OVERFLOW, "prompt is too long", handover="where it was")
    for state in (S.STARTING, S.READY, S.BUSY, S.BLOCKED, S.PAUSED):
        life = life_in(state)
        for _ in range(10):  # never toward the intensity limit, whatever the policy
            life.state = state
            decision = life.session_ended(end, policy("never"), stopping=False)
            assert (decision.action, decision.delay_s, decision.fresh) == (
                Action.RESTART,
                0.0,
                True,
            )
            assert life.state == S.BACKOFF
        assert life.restart_count == 10
        assert not life.restarts


def test_an_operators_restart_is_counted_not_toward_failing() -> None:
    life = life_in(S.BUSY)
    assert life.ask_restart() == [S.STOPPING]  # shown at once (review F, L3)
    decision = life.session_ended(SessionEnd(EndReason.STOPPED), policy("never"), stopping=False)
    assert decision == type(decision)(Action.RESTART, 0.0, "requested")
    assert life.state == S.BACKOFF
    assert life.restart_count == 1
    assert not life.restarts
    assert not life.restart_asked  # once
    life.move(S.STARTING)
    decision = life.session_ended(SessionEnd(EndReason.STOPPED), policy("never"), stopping=False)
    assert decision.action == Action.FAIL


@pytest.mark.parametrize(
    ("restart", "reason", "action"),
    [
        ("always", EndReason.STOPPED, Action.RESTART),
        ("always", EndReason.EXITED, Action.RESTART),
        ("on-failure", EndReason.STOPPED, Action.FAIL),
        *(("on-failure", r, Action.RESTART) for r in EndReason if r != EndReason.STOPPED),
        ("never", EndReason.EXITED, Action.FAIL),
        ("never", EndReason.STOPPED, Action.FAIL),
        ("removed", EndReason.EXITED, Action.FAIL),
    ],
)
def test_restart_policy(restart: str, reason: EndReason, action: Action) -> None:
    if reason == EndReason.CONTEXT_OVERFLOW:
        return  # its own rule (above)
    life = life_in(S.READY)
    decision = life.session_ended(SessionEnd(reason), policy(restart), stopping=False)
    assert decision.action == action
    assert life.state == (S.BACKOFF if action == Action.RESTART else S.FAILED)
    if action == Action.FAIL:
        assert decision.why == f"session ended ({reason.value}) and restart is '{restart}'"
        assert life.restart_count == 0


def test_policy_of_a_spec_and_of_a_removed_agent() -> None:
    class Backoff:
        initial_s, max_s = 0.5, 30.0

    class Spec:
        restart, max_restarts, restart_window_s, backoff = "on-failure", 4, 90.0, Backoff()

    assert RestartPolicy.of(Spec()) == RestartPolicy("on-failure", 4, 90.0, 0.5, 30.0)  # type: ignore[arg-type]
    assert RestartPolicy.of(None).restart == "removed"


def test_backoff_doubles_up_to_its_cap_then_the_intensity_limit_fails() -> None:
    clock = Clock()
    life = life_in(S.READY, clock)
    p = policy(max_restarts=5, window_s=60.0, initial_s=1.0, max_s=8.0)
    delays = []
    for _ in range(5):
        decision = life.session_ended(EXITED, p, stopping=False)
        assert decision.action == Action.RESTART
        assert decision.why == "exited"
        delays.append(decision.delay_s)
        life.move(S.STARTING)
        clock.now += decision.delay_s + 1.0
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert life.restart_count == 5
    decision = life.session_ended(EXITED, p, stopping=False)
    assert decision.action == Action.FAIL
    assert decision.why == "6 restarts within 60s (max_restarts 5)"
    assert life.state == S.FAILED
    assert life.restart_count == 5


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    life = life_in(S.READY, clock)
    p = policy(max_restarts=2, window_s=10.0, initial_s=1.0, max_s=100.0)
    for _ in range(20):  # one failure every 6 s: never more than two within 10 s
        decision = life.session_ended(EXITED, p, stopping=False)
        assert decision.action == Action.RESTART
        assert decision.delay_s in (1.0, 2.0)  # the backoff restarts with the window
        life.move(S.STARTING)
        clock.now += 6.0
    life.session_ended(EXITED, p, stopping=False)  # two within 10 s: 6 s apart
    life.move(S.STARTING)
    clock.now += 1.0  # a third within 10 s
    assert life.session_ended(EXITED, p, stopping=False).action == Action.FAIL


def test_the_window_edge_is_inclusive() -> None:
    clock = Clock()
    life = life_in(S.READY, clock)
    p = policy(max_restarts=1, window_s=10.0)
    life.session_ended(EXITED, p, stopping=False)
    life.move(S.STARTING)
    clock.now += 10.0  # exactly window_s later: still within it
    assert life.session_ended(EXITED, p, stopping=False).action == Action.FAIL


def test_zero_max_restarts_fails_at_the_first_failure() -> None:
    life = life_in(S.STARTING)
    end = SessionEnd(EndReason.CONNECT_FAILED, "no such file")
    decision = life.session_ended(end, policy(max_restarts=0), stopping=False)
    assert decision.action == Action.FAIL
    assert decision.why == "1 restarts within 60s (max_restarts 0)"


def test_jitter_spreads_the_delay_below_the_backoff() -> None:
    life = Lifecycle("a", clock=Clock())  # the real jitter: between half and all of it
    life.state = S.READY
    delays = set()
    for _ in range(30):
        life.state = S.READY
        life.restarts.clear()
        delays.add(life.session_ended(EXITED, policy(initial_s=4.0), stopping=False).delay_s)
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(delays) > 1


def test_session_end_failed() -> None:
    assert not SessionEnd(EndReason.STOPPED).failed
    assert all(SessionEnd(r).failed for r in EndReason if r != EndReason.STOPPED)


def test_a_failed_agent_started_again_is_not_settled_until_its_session_is_up() -> None:
    """For its dependents (supervision/depends.py, Supervisor.start_in_layers): a failed
    agent started again was taken as settled (FAILED is) before its session launched,
    and what depends on it started at once."""
    life = Lifecycle("a")
    life.start()
    life.session_starting()
    life.move(S.FAILED)
    assert life.settled  # given up: nothing to wait for
    life.start()
    assert life.state == S.WAITING  # shown on its way, no longer `failed`
    assert not life.settled  # started again: on its way
    life.session_starting()
    assert not life.settled
    life.on_runner_event(RunnerEvent.READY)
    assert life.settled


def test_the_readme_lists_every_state() -> None:
    """The Supervision section's state list names every state the registry may hold (a
    new one, `waiting`, is what `ps` shows of an agent on its way)."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    listed = readme.split("\nStates: ", 1)[1].split("\n\n", 1)[0]
    assert [s.value for s in S if f"`{s.value}`" not in listed] == []


def test_what_a_start_has_waited_is_counted_from_its_move_into_waiting() -> None:
    """For the dependency time-out (supervision/depends.py): queued in a later layer, an
    agent has waited already when its start comes; a second wait of START_WAIT_S began
    there. The count runs from its move into `waiting`, through its start, and begins
    again with an operator's restart that waits (backoff -> waiting)."""
    clock = Clock()
    life = life_in(S.STOPPED, clock)
    assert life.waited_s() == 0.0
    life.queue()
    clock.now += 100.0
    life.start()  # its layer's turn: still waiting, the 100 s counted
    assert life.waited_s() == 100.0
    life.session_starting()
    assert life.waited_s() == 0.0  # launched: not waiting
    life.on_runner_event(RunnerEvent.READY)
    life.ask_restart()
    life.session_ended(SessionEnd(EndReason.STOPPED), policy(), stopping=False)
    clock.now += 5.0
    life.wait_again()
    clock.now += 1.0
    assert life.waited_s() == 1.0
