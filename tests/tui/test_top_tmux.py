"""`octy-orchestrate top` in a real terminal: tmux runs it, `send-keys` types, and
`capture-pane` reads the screen a person would see. A real team underneath (real claude
CLI, scripted model)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule
from tmux_screen import Terminal, hues, row_of

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    # CI installs tmux (.ci/run): there a missing tmux fails the test instead of skipping it.
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

TeamFactory = Callable[..., Team]


def test_top_in_tmux(team: TeamFactory) -> None:
    """What a person sees: the team line and a row per agent, an answer arriving in the
    event pane, the help screen, a restart asked for with `r`, confirmed with `y`, the
    agent back with a new pid; `q` quits. Colour at 100x30; at 80x24 under NO_COLOR every
    column fits and nothing is coloured."""
    t = team([{"agent": agent_rule("a"), "match": "ping", "text": "pong"}], {"a": {}, "b": {}})
    t.up()
    t.wait_ready("a", "b")
    env = {**t.env, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("NO_COLOR", None)
    term = Terminal(t.folder, env, width=100, height=30)
    try:
        screen = term.wait(lambda s: row_of(s, "a")[1:2] == ["ready"], "a ready on screen")
        assert "testteam" in screen
        assert f"supervisor {t.proc.pid if t.proc else '?'} up" in screen
        assert row_of(screen, "b")[1] == "ready"
        old_pid = row_of(screen, "a")[2]
        assert old_pid == str(t.agent_pid("a"))
        assert hues(term.screen(escapes=True)), "colour expected on a colour terminal"

        assert t.ask("a", "ping") == "pong"
        term.wait(lambda s: "replied" in s and "pong" in s, "the reply in the event pane")

        term.keys("?")
        term.wait(lambda s: "Keys" in s and "restart / stop / start" in s, "the help")
        term.keys("q")
        term.wait(lambda s: row_of(s, "a"), "back to the table")

        term.keys("r")  # the cursor starts on the first row: a
        term.wait(lambda s: "Restart agent 'a'?" in s, "the confirmation")
        term.keys("y")
        screen = term.wait(
            lambda s: (r := row_of(s, "a"))[1:2] == ["ready"] and r[2] not in (old_pid, "-"),
            "a restarted with a new pid",
        )
        assert row_of(screen, "a")[4] != "0"  # restarts counted

        term.keys("q")
        deadline = time.monotonic() + 30
        while not term.dead() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert term.dead(), "top did not quit on q"
    finally:
        term.close()

    plain = Terminal(t.folder, {**env, "NO_COLOR": "1"}, width=80, height=24)
    try:
        screen = plain.wait(
            lambda s: row_of(s, "b")[1:2] == ["ready"] and "? help" in s, "b on an 80x24 screen"
        )
        header = next(line for line in screen.splitlines() if line.startswith("AGENT"))
        assert header.split() == [
            "AGENT", "STATE", "PID", "UP", "RST", "PEND", "IN-FLIGHT", "TURNS", "TOKENS",
            "COST", "BUD%", "CTX%", "CPU%", "MEM",
        ]  # fmt: skip
        assert not hues(plain.screen(escapes=True))
    finally:
        plain.close()
