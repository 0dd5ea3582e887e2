"""`top`'s event pane in a real terminal (tmux): it keeps showing the newest events when
the terminal shrinks (a tmux split, a zoom undone), as `logs -f` does."""

from __future__ import annotations

import json
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


def test_event_pane_follows_the_newest_event_after_a_shrink(tmp_path: Path) -> None:
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("solo", pid=None, state="ready")
    (tmp_path / "logs").mkdir()
    events = [
        {"timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "event": "tick", "n": i}
        for i in range(60)
    ]
    (tmp_path / "logs" / "supervisor.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events)
    )
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(tmp_path, env, width=120, height=40)
    try:
        term.wait(lambda s: "tick n=59" in s and "tick n=40" in s, "the newest events at 120x40")
        term.resize(100, 14)
        screen = term.wait(lambda s: "AGENT" in s and "tick n=" in s, "events at 100x14")
        term.wait(lambda s: "tick n=59" in s, f"the newest event after the shrink:\n{screen}")
    finally:
        term.close()
