"""`top` over a registry that plain SQL wrote: names with terminal escapes, markup and
NUL bytes are drawn as text, and the keys that act on an agent (l, t, r, s, S) refuse
them with a message instead of retitling the terminal or ending `top` with a traceback.
A real terminal (tmux) and a real database, no team: the registry is all that matters."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from tmux_screen import Terminal

from orchestrator.mailbox import Mailbox
from orchestrator.tui.data import clean
from orchestrator.tui.widgets import NAME_CELLS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]

HOSTILE = (
    "ext\x1b]0;PWNED\x07x\x1b[31mred\u202erev",  # retitles the terminal, colours, reorders
    "m[/]x[bold]",  # Textual markup: a MarkupError in a toast
    "nul\x00x",  # a NUL: no path can hold it
    "../../etc/passwd",  # a path: `l` would follow another file
)


def registry(folder: Path) -> None:
    db = folder / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("alpha", pid=None, state="ready")
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO agents(name, state) VALUES (?, 'registered')", [(n,) for n in HOSTILE]
        )
    conn.close()


def test_hostile_registry_names_are_refused_not_obeyed(tmp_path: Path) -> None:
    registry(tmp_path)
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(tmp_path, env, width=160, height=30)
    try:
        # escaped, and cut at the AGENT column's 24 cells (the escapes make one longer)
        shown = [
            c if len(c := clean(n)) <= NAME_CELLS else c[: NAME_CELLS - 1] + "…" for n in HOSTILE
        ]
        screen = term.wait(lambda s: all(n in s for n in shown), "every name, escaped")
        first_title = term.title()
        order = [line.split(" ")[0] for line in screen.splitlines()[2:] if line and line[0] != "─"]
        at = 0  # the cursor starts on the first row
        for name in shown:
            goal = order.index(name)
            term.keys(*(["Down"] * (goal - at) if goal > at else ["Up"] * (at - goal)))
            at = goal
            verbs = {"t": "trace", "l": "log", "r": "restart", "s": "stop", "S": "start"}
            for key, verb in verbs.items():
                term.keys(key)
                screen = term.wait(
                    lambda s, v=verb: (
                        f"{v} refused, not an agent" in s
                        or term.title() != first_title
                        or "[y/N]" in s
                        or "(q closes)" in s  # a log or a trace opened
                    ),
                    f"{key} refused for {name}",
                )
                assert term.title() == first_title, f"{key} on {name} retitled the terminal"
                assert "[y/N]" not in screen, f"{key} asked to act on {name}"
                assert "log of" not in screen
                assert "trace of" not in screen
                assert f"{verb} refused, not an agent" in screen
                assert "\u202e" not in screen
            # the same messages come for the next name: these go first (5 s each)
            term.wait(lambda s: "not an agent name" not in s, "the messages gone")
        assert not term.dead()
    finally:
        term.close()
