"""`ps --color` / `--no-color`, as `logs` and `trace` take them (found walking the README:
`ps --no-color` was a usage error, and only NO_COLOR turned its colours off; `watch -c ps`
could not have them). The console script in a subprocess, on a pipe or a real pty."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from cli_runner import CLI, RUN_TIMEOUT_S, octy


def _on_a_terminal(*argv: str, cwd: Path, term: str = "xterm") -> tuple[int, bytes]:
    """Run the CLI with its stdout and stderr on a pty of type ``term``; its exit code and
    what it printed."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": term}
    proc = subprocess.Popen(
        [str(CLI), *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=RUN_TIMEOUT_S), out


def test_ps_colours_its_states_on_a_terminal_unless_told_not_to(folder: Path) -> None:
    code, out = _on_a_terminal("ps", cwd=folder)
    assert code == 0
    assert b"\x1b[" in out  # the premise: a terminal gets colours
    code, out = _on_a_terminal("ps", "--no-color", cwd=folder)
    assert code == 0, out
    assert b"\x1b[" not in out
    assert b"registered" in out


def test_a_dumb_terminal_gets_no_escape_sequences(folder: Path) -> None:
    """Regression: with TERM=dumb (Emacs's shell, an editor's output pane: escape sequences
    shown as they are) `ps` wrote `^[[33mstarting^[[39m`; git and systemctl write no colour
    there. `--color` still asks for it."""
    code, out = _on_a_terminal("ps", cwd=folder, term="dumb")
    assert code == 0, out
    assert b"registered" in out
    assert b"\x1b" not in out
    code, out = _on_a_terminal("ps", "--color", cwd=folder, term="dumb")
    assert code == 0, out
    assert b"\x1b[32mregistered" in out


def test_ps_color_colours_into_a_pipe(folder: Path) -> None:
    done = octy("ps", "--color", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "\x1b[32mregistered\x1b[0m" in done.stdout
    assert "\x1b[" not in octy("ps", cwd=folder).stdout


def test_color_and_no_color_together_are_a_usage_error(folder: Path) -> None:
    done = octy("ps", "--color", "--no-color", cwd=folder)
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
