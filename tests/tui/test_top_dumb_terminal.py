"""`top` on a terminal that cannot draw a screen (TERM=dumb: Emacs's shell, an editor's
output pane) refuses in one line instead of writing its screen as raw escape sequences.
The terminal is real (tmux); the shell in it says TERM=dumb, as such a terminal does."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from tmux_screen import Terminal

from orchestrator.mailbox import Mailbox

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
)


def test_top_on_a_dumb_terminal_says_it_cannot_draw_there(tmp_path: Path) -> None:
    """Regression: `TERM=dumb top` started Textual, which drew its full screen anyway (on a
    dumb terminal, a stream of `^[[?1049h^[[H…`). Now: exit 2, one line, nothing drawn."""
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("solo", pid=None, state="ready")
    (tmp_path / "agents.yaml").write_text("agents:\n  solo:\n    prompt: S.\n", encoding="utf-8")
    top = f"TERM=dumb {sys.executable} -m orchestrator.cli top --interval 0.3"
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    term = Terminal(
        tmp_path, env, width=100, height=20, command=("sh", "-c", f"{top}; echo rc=$?; sleep 600")
    )
    try:
        screen = term.wait(lambda s: "rc=" in s or "AGENT" in s, "top's answer or its screen")
        assert "AGENT" not in screen, screen
        assert "rc=2" in screen, screen
        assert "TERM=dumb is a terminal that cannot show one" in screen.replace("\n", "")
        assert "Traceback" not in screen
    finally:
        term.close()
