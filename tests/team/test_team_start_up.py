"""A team still starting up, operated (review F: H1, H2): a reload, `stop` and `down`
while a claude hangs before its handshake (SIGSTOPped as it launches). Real supervisor,
real CLI, scripted model."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule, stop_claude_as_it_starts

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def alive(pid: int) -> bool:
    """Running, and not a zombie (a zombie is gone for our purposes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_reload_removing_agents_while_up_starts_the_team_leaves_it_running(
    team: TeamFactory,
) -> None:
    """`up` starts x and z (one layer), then y (depends on x) once x is ready; x's claude
    hangs before its handshake. A reload removes z (in the layer being waited on) and y
    (in the layer to come). The start-up looked both up by name afterwards and the whole
    team died on a KeyError; now it skips them, and x, once its claude goes on, is ready."""
    agents = {
        "x": {"connect_timeout": "300s"},  # never reached: the test lets the claude go on
        "z": {},
        "y": {"depends_on": ["x"]},
    }
    t = team([{"agent": agent_rule("x"), "text": "x is up"}], agents)
    t.up()
    stuck = stop_claude_as_it_starts("x", t.env["HOME"])
    try:
        t.wait_ready("z")
        t.write_roster({"x": agents["x"]})
        t.octy("reload")  # applied when it answers (by it, or by the watcher before it)
        removed = [e.get("removed") for e in t.log_events("reload")]
        assert ["z", "y"] in removed or ["y", "z"] in removed, removed
        # The reload was applied while the start-up still waited for x's layer.
        assert t.states().get("x") == "starting", t.states()
    finally:
        os.kill(stuck, signal.SIGCONT)
    # Both wait_for raise if the supervisor exited meanwhile.
    t.wait_ready("x")
    done = t.wait_for(lambda: t.log_events("start_up_done"), what="the start-up over")
    assert done[0]["started"] == ["x"], done  # z started, then removed
    assert t.ask("x", "up?") == "x is up"
    assert set(t.states()) == {"supervisor", "x"}, t.states()
    assert "Traceback" not in t.output(), t.output()[-3000:]


def test_stop_and_down_end_a_session_still_connecting(team: TeamFactory) -> None:
    """A claude hung before its handshake used to stop only at connect_timeout: `stop a`
    timed out with `a` left `stopping`, and `down` took the whole shutdown deadline and left
    `starting` in the registry. A stop during the connect kills that claude (nothing to
    save yet) and ends the session as stopped, recorded."""
    t = team(
        [{"agent": agent_rule("b"), "text": "b is up"}],
        {"a": {"connect_timeout": "600s"}, "b": {}},
    )
    # The SDK gives up on a silent handshake after max(this, 60 s): not the stop's doing.
    t.env["CLAUDE_CODE_STREAM_CLOSE_TIMEOUT"] = "900000"
    t.up()
    first = stop_claude_as_it_starts("a", t.env["HOME"])
    t.wait_ready("b")
    assert t.states()["a"] == "starting"
    done = t.octy("stop", "a", "--timeout", "60")  # far below the connect timeout
    assert "stopped" in done.stdout, done
    assert t.states()["a"] == "stopped"
    t.wait_for(lambda: not alive(first), timeout=30, what="the hung claude killed")
    assert t.ask("b", "still there?") == "b is up"

    t.octy("start", "a")
    second = stop_claude_as_it_starts("a", t.env["HOME"], besides=[first])
    t.wait_for(lambda: t.states().get("a") == "starting", what="a starting again")
    t.octy("down", "--timeout", "30")
    assert t.wait_exit(120) == 0
    assert t.states()["a"] == "stopped", t.states()
    assert not alive(second)
    assert "Traceback" not in t.output(), t.output()[-3000:]


def test_an_agent_stopped_before_its_layer_began_stays_stopped(team: TeamFactory) -> None:
    """`stop y` while `up` still waits for what y depends on answered `already stopped`,
    and then the start-up started y all the same when its layer came. y is `waiting`
    until then: the stop abandons its start."""
    agents = {"x": {"connect_timeout": "300s"}, "y": {"depends_on": ["x"]}}
    t = team([{"agent": agent_rule("x"), "text": "x is up"}], agents)
    t.up()
    stuck = stop_claude_as_it_starts("x", t.env["HOME"])
    try:
        t.wait_for(lambda: t.states().get("x") == "starting", what="x starting")
        assert t.states()["y"] == "waiting"
        assert t.octy("stop", "y").stdout.strip() == "stop: y stopped"
        assert t.states().get("x") == "starting", t.states()
    finally:
        os.kill(stuck, signal.SIGCONT)
    done = t.wait_for(lambda: t.log_events("start_up_done"), what="the start-up over")
    assert done[0]["started"] == ["x"], done
    assert t.states()["y"] == "stopped"
    assert "started" in t.octy("start", "y").stdout  # the operator's start still works
    t.wait_ready("x", "y")
