"""`octy-orchestrate top` in a real terminal: tmux runs it, `send-keys` types, and
`capture-pane` reads the screen a person would see. A real team underneath (real claude
CLI, scripted model)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from team_harness import Team, agent_rule

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    # CI installs tmux (.ci/run): there a missing tmux fails the test instead of skipping it.
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

TeamFactory = Callable[..., Team]


class Terminal:
    """One tmux server of our own (its socket in tmp_path), one window running `top`."""

    def __init__(self, folder: Path, env: dict[str, str], *, width: int, height: int) -> None:
        self.socket = folder / f"tmux-{width}x{height}.sock"
        self.env = env
        self.tmux(
            "new-session", "-d", "-x", str(width), "-y", str(height), "-c", str(folder),
            "--", sys.executable, "-m", "orchestrator.cli", "top", "--interval", "0.3",
        )  # fmt: skip
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def screen(self, *, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait(self, check: Callable[[str], object], what: str) -> str:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")

    def dead(self) -> bool:
        return self.tmux("list-panes", "-F", "#{pane_dead}").strip() == "1"

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", str(self.socket), "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=False,
        )


def row_of(screen: str, name: str) -> list[str]:
    for line in screen.splitlines():
        cells = line.split()
        if cells[:1] == [name] and len(cells) > 3:
            return cells
    return []


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def hues(text: str) -> set[str]:
    """Colours in the SGR sequences of a capture that are not greys: a 256-colour index
    outside 16 and 232-255 (and black/white), a truecolor with r, g, b not all equal, or
    one of the eight basic colours but black and white."""
    found = set()
    for params in _SGR.findall(text):
        p = [int(x) if x.isdigit() else 0 for x in params.split(";")]
        i = 0
        while i < len(p):
            code = p[i]
            if code in (38, 48) and p[i + 1 : i + 2] == [5]:
                n = p[i + 2] if i + 2 < len(p) else 0
                if not (n in (0, 7, 8, 15, 16) or n >= 232):
                    found.add(f"{code};5;{n}")
                i += 3
            elif code in (38, 48) and p[i + 1 : i + 2] == [2]:
                rgb = p[i + 2 : i + 5]
                if len(set(rgb)) > 1:
                    found.add(f"{code};2;{rgb}")
                i += 5
            else:
                if 31 <= code <= 36 or 41 <= code <= 46 or 91 <= code <= 96:
                    found.add(str(code))
                i += 1
    return found


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
