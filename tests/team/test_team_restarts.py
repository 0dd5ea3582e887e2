"""`restart AGENT` on a real team (review F: M2, L3): what `ps` shows while it happens,
and the crash-loop history it forgets. Real supervisor, real CLI, scripted model."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_restart_of_a_live_agent_shows_stopping_at_once(team: TeamFactory) -> None:
    """Its claude slow to close (SIGSTOPped): `ps` showed `ready` and the old pid until
    the new session was up. It shows `stopping` as soon as `restart` has answered."""
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    old = t.agent_pid("a")
    assert old
    os.kill(old, signal.SIGSTOP)
    try:
        assert "restarting" in t.octy("restart", "a").stdout
        assert t.states()["a"] == "stopping"
    finally:
        os.kill(old, signal.SIGCONT)
    t.wait_for(
        lambda: t.states()["a"] == "ready" and t.agent_pid("a") not in (None, old),
        what="a new session of a",
    )
    assert t.ask("a", "up?") == "a is up"
    moves = [e["state"] for e in t.log_events("state") if e.get("agent") == "a"]
    at = moves.index("stopping")
    assert moves[at : at + 4] == ["stopping", "backoff", "starting", "ready"], moves


def test_a_restart_after_fixing_a_crash_loop_forgets_its_failures(team: TeamFactory) -> None:
    """An agent crash-looping (its cwd removed under it) is fixed (the folder made again)
    and restarted from its backoff. Its failures were kept: the first ordinary crash after
    the fix went over max_restarts and failed it for good. Now that crash is restarted."""
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {})
    later = t.folder / "work"
    later.mkdir()
    spec = {
        "cwd": str(later),
        "restart": "always",
        "max_restarts": 2,
        "restart_window": "10m",
        # Long enough to act in the backoff after the second failure (4-8 s).
        "backoff": {"initial": "4s", "max": "60s"},
    }
    t.write_roster({"a": spec})
    t.up()
    t.wait_ready("a")
    shutil.rmtree(later)
    first = t.agent_pid("a")
    assert first
    os.kill(first, signal.SIGKILL)  # and each restart fails: no cwd
    t.wait_for(
        lambda: (
            len([e for e in t.log_events("restarting") if e.get("agent") == "a"]) >= 2
            and t.states().get("a") == "backoff"
        ),
        timeout=90,
        what="a crash-looping, in its second backoff",
    )
    later.mkdir()
    assert "restarting" in t.octy("restart", "a").stdout
    t.wait_ready("a")
    pid = t.agent_pid("a")
    assert pid
    os.kill(pid, signal.SIGKILL)  # one ordinary crash after the fix
    t.wait_for(
        lambda: t.states().get("a") == "ready" and t.agent_pid("a") not in (None, pid),
        timeout=90,
        what="a restarted after its crash",
    )
    assert not [e for e in t.log_events("failed") if e.get("agent") == "a"]
    assert t.ask("a", "up?") == "a is up"
