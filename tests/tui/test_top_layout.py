"""`top`'s table in a real terminal (tmux) of any size: rows are cut on the right, never
wrapped, and the number of rows follows the terminal's height as it shrinks and grows.
A database written by hand: the layout does not need a running team."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from rich.cells import cell_len
from tmux_screen import Terminal

from orchestrator.mailbox import Mailbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

NAMES = [f"agent-{i:02d}" for i in range(1, 13)]
ROWS = ("al", "bb", "漢字", "zz")  # how each row of the wide and long names starts
NAMES_AT_20 = ("alpha", "bbbbb", "zz-xx")


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


def test_columns_align_in_cells_names_are_capped_and_the_team_line_is_one_line(
    tmp_path: Path,
) -> None:
    """A wide-character name takes two cells a character and the columns after it stay
    in place; a 300-character name (plain SQL) is cut at 24 cells with `…`, as is a legal
    63-character one, and MEM stays on a 120-column screen; at 20x5 the team line keeps
    to one line and an agent's row is still there."""
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("alpha", pid=None, state="ready")
        mb.register("b" * 63, pid=None, state="ready")
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO agents(name, state, meta) VALUES (?, 'ready', '{}')",
            [("漢字漢字漢字",), ("zz-" + "x" * 300,)],
        )
    conn.close()
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(tmp_path, env, width=120, height=24)
    try:
        screen = term.wait(lambda s: "漢字漢字漢字" in s and "zz-xxx" in s, "every row")
        lines = screen.splitlines()
        header = next(line for line in lines if line.startswith("AGENT "))
        assert header.split()[-1] == "MEM"
        drawn = [line for line in lines if line.split()[:1] and line.split()[0][:2] in ROWS]
        assert len(drawn) == 4, screen
        state_at = cell_len(header[: header.index("STATE")])
        mem_at = cell_len(header[: header.index("MEM")])
        for line in drawn:
            cells = line.split()
            assert cells[0] in ("alpha", "b" * 23 + "…", "漢字漢字漢字", "zz-" + "x" * 20 + "…")
            # where the second and the last column start, counted in terminal cells
            assert cell_len(line[: line.index(cells[1], len(cells[0]))]) == state_at, line
            assert cell_len(line[: line.rindex(cells[-1])]) == mem_at, line

        term.resize(20, 5)
        screen = term.wait(lambda s: s.splitlines()[2][:5] in NAMES_AT_20, "a row at 20x5")
        first, second = screen.splitlines()[:2]
        assert "supervisor" in first  # the team line, cut on the right, on its one line
        assert second.startswith("AGENT")
    finally:
        term.close()
