"""How `top` ends, in a real terminal (tmux): `q`, Ctrl-C, SIGTERM and SIGHUP all leave
the terminal as it was (no alternate screen, no mouse reporting, the cursor shown, the
tty cooked) and end the process at once, whatever `--interval`. A shell around `top`
prints its exit status and the tty's modes after it ends."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from tmux_screen import Terminal

from orchestrator.mailbox import Mailbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

# An hour between reads: `q` used to wait for the reader thread's next tick to end.
INTERVAL = "3600"


def top_in_shell(folder: Path) -> Terminal:
    with Mailbox(folder / "queue" / "team.db") as mb:
        mb.register("solo", pid=None, state="ready")
    top = f"{sys.executable} -m orchestrator.cli top --interval {INTERVAL}"
    after = "echo rc=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon\\|-\\?echo'; sleep 600"
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(folder, env, width=100, height=20, command=("sh", "-c", f"{top}; {after}"))
    # The header, not the row: with an hour between reads, one read is all there is
    term.wait(lambda s: "AGENT" in s and "queue 0" in s, "the table")
    return term


def top_pid(term: Terminal) -> int:
    shell = term.pane_pid()
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def assert_restored(term: Terminal, rc: int) -> None:
    screen = term.wait(lambda s: "rc=" in s and "echo" in s, "the exit status and tty modes")
    assert f"rc={rc}" in screen
    modes = screen.split(f"rc={rc}", 1)[1].split()
    assert modes == ["icanon", "echo"], screen  # not -icanon -echo: the tty is cooked again
    assert term.flags() == {"alternate_on": "0", "mouse_any_flag": "0", "cursor_flag": "1"}


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "ctrl-c", "q"])
def test_top_ends_at_once_and_restores_the_terminal(tmp_path: Path, how: str) -> None:
    """Each way out, with an hour between reads: the shell gets the exit status well
    before the interval, and the terminal is back as it was."""
    term = top_in_shell(tmp_path)
    try:
        assert term.flags()["alternate_on"] == "1"
        if how.startswith("SIG"):
            signum = signal.Signals[how]
            os.kill(top_pid(term), signum)
            assert_restored(term, 128 + signum)  # the signal's status, as a shell reports it
        else:
            term.keys("C-c" if how == "ctrl-c" else "q")
            assert_restored(term, 0)
    finally:
        term.close()


def test_top_ends_when_its_terminal_closes(tmp_path: Path) -> None:
    """The window closed (tmux kill-pane: the terminal hangs up, SIGHUP and SIGCONT):
    `top` ends, where Textual's restore waited for ever on writes to a terminal that is
    gone (an hour between reads: nothing else would wake it)."""
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("solo", pid=None, state="ready")
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    top = (sys.executable, "-m", "orchestrator.cli", "top", "--interval", INTERVAL)
    term = Terminal(tmp_path, env, width=100, height=20, command=top)
    pid = 0
    try:
        term.wait(lambda s: "AGENT" in s and "queue 0" in s, "the table")
        pid = term.pane_pid()  # top itself: the window runs it directly
        term.tmux("kill-pane")
        deadline = time.monotonic() + 60
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid), "top still runs after its terminal closed"
    finally:
        if pid and _running(pid):
            os.kill(pid, signal.SIGKILL)
        term.close()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
