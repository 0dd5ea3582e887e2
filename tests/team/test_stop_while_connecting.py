"""`stop` (as `down` and Ctrl-C) while an agent's claude is still starting kills that
claude on purpose: the session ends `stopped while connecting`, and nothing reports it as a
failure. Before, the SDK's reader logged the kill it did not expect as an error, and the
team's events (`up`'s console, `logs`) showed `library_log message=Fatal error in message
reader: Command failed with exit code -9` for a stop the user asked for (found running
`up -d` then `down` at once; pm2 or compose print no error for that). A claude that hangs
before its handshake (connect_timeout) keeps its logged complaint:
test_team_supervision.py pins it."""

from __future__ import annotations

import os
import signal
from typing import Any

from team_harness import agent_rule, stop_claude_as_it_starts


def test_a_stop_while_claude_starts_is_no_error_in_the_logs(team: Any) -> None:
    t = team(
        [{"agent": agent_rule("a"), "text": "a is up"}],
        {"a": {"connect_timeout": "60s"}},
    )
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    t.wait_for(lambda: t.states().get("a") == "starting", what="a starting")
    t.octy("stop", "a")
    # The SDK's reader logs the kill before connect() ends, so before the session's end.
    t.wait_for(lambda: "stopped while connecting" in t.output(), what="the stop")
    assert "Fatal error in message reader" not in t.output()
    assert "library_log" not in t.output()
    assert stuck not in t.cli_pids()


def test_a_crash_after_a_stop_while_connecting_is_still_logged(team: Any) -> None:
    """The flag that hides the kill of a stop is one connect's own: the same agent started
    again after it, connected, then killed -9 by someone else (a real crash) has the SDK's
    complaint logged, as any session's crash."""
    t = team(
        [{"agent": agent_rule("a"), "text": "a is up"}],
        {"a": {"connect_timeout": "60s", "restart": "never"}},
    )
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    t.wait_for(lambda: t.states().get("a") == "starting", what="a starting")
    t.octy("stop", "a")
    t.wait_for(lambda: "stopped while connecting" in t.output(), what="the stop")
    t.octy("start", "a")
    t.wait_ready("a")
    pid = t.agent_pid("a")
    assert pid is not None
    assert pid != stuck
    os.kill(pid, signal.SIGKILL)
    t.wait_for(lambda: "Fatal error in message reader" in t.output(), what="the crash, logged")
