"""`down` on a supervisor that cannot act (review F, L2): a real team, the real claude CLI
against the scripted model, the supervisor frozen with a real SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import SUPERVISOR

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_down_on_a_stopped_supervisor_says_so_at_once_and_what_to_do(team: TeamFactory) -> None:
    """It took 72 s, exit 4, saying "the queue did not take the command" and SIGTERM was
    sent (which a stopped process never acts on). Now `down` sees the process stopped,
    sends nothing, and says how to resume or end it; resumed, `down` stops the team."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.proc is not None
    pid = t.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        done = t.octy("down", "--timeout", "1", check=False)
        assert done.returncode == 1, done.stderr
        assert f"the supervisor (pid {pid}) is not responding: it is stopped" in done.stderr
        assert "nothing was sent" in done.stderr
        assert f"`kill -CONT {pid}`" in done.stderr
        assert f"`kill -KILL {pid}`" in done.stderr
        assert "queue did not take" not in done.stderr
        assert not t.messages(recipient=SUPERVISOR)  # no command left to act on later
        as_json = json.loads(t.octy("down", "--json", check=False).stdout)
        assert as_json["error"] == "supervisor_not_responding"
        assert holder_pid(t.db_path) == pid
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "team stopped" in t.octy("down").stdout
    assert t.wait_exit() == 0
