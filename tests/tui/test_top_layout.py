"""`top`'s table in a real terminal (tmux) of any size: rows are cut on the right, never
wrapped, and the number of rows follows the terminal's height as it shrinks and grows.
A database written by hand: the layout does not need a running team."""

from __future__ import annotations

import os
import shutil
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

NAMES = [f"agent-{i:02d}" for i in range(1, 13)]


def table(screen: str) -> list[str]:
    """The table's lines as drawn: its header and every line after it up to the first
    line that is not a row (the event pane's border, the footer)."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("AGENT "))
    out = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("agent-"):
            break
        out.append(line)
    return out


def rows(screen: str) -> list[str]:
    return [line.split()[0] for line in table(screen)[1:]] if "AGENT " in screen else []


def test_rows_are_cut_not_wrapped_and_follow_the_height(tmp_path: Path) -> None:
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        for name in NAMES:
            mb.register(name, pid=None, state="ready")
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(tmp_path, env, width=40, height=10)
    try:
        # 10 lines: half of them but the footer's for the table, its header and rows,
        # each on one line
        screen = term.wait(lambda s: "agent-01" in s, "the first row at 40x10")
        drawn = table(screen)
        assert drawn[0].split()[:3] == ["AGENT", "STATE", "PID"]
        few = rows(screen)
        assert few == NAMES[:3], screen  # (10 - the footer) / 2, less the header
        assert all(line.split()[1] == "ready" for line in drawn[1:])

        # Taller, same width: the table's own width does not change, its rows must
        term.resize(40, 40)
        screen = term.wait(lambda s: rows(s) == NAMES, "every row at 40x40")
        term.resize(40, 10)
        term.wait(lambda s: rows(s) == few, "as few rows at 40x10 again")
        term.resize(40, 40)
        term.wait(lambda s: rows(s) == NAMES, "every row back at 40x40")

        # 80x24: a header and 10 rows; with a filter, one line per row, every column on it
        term.resize(80, 24)
        term.wait(lambda s: rows(s) == NAMES[:10], "10 rows at 80x24")
        term.keys(*["Down"] * 11)  # the cursor on the last row scrolls the table
        term.wait(lambda s: rows(s) == NAMES[2:], "rows 3 to 12")
        term.keys("Home")
        term.wait(lambda s: rows(s) == NAMES[:10], "back at the top")
        term.keys("/")
        term.wait(lambda s: "filter by agent name" in s, "the filter box")
        term.keys("agent-1")
        term.wait(lambda s: "agent-1 " in s.splitlines()[-2], "the filter typed")
        term.keys("Enter")
        screen = term.wait(
            lambda s: rows(s) == ["agent-10", "agent-11", "agent-12"], "the filtered rows"
        )
        assert table(screen)[0].split()[-1] == "MEM"
        assert all(line.split()[-1] == "-" for line in table(screen)[1:])  # MEM on its line
        assert not term.dead()
    finally:
        term.close()
