"""Whether to colour what a person reads."""

from __future__ import annotations

import os
from typing import Any


def wanted(stream: Any) -> bool:
    """A terminal, and no NO_COLOR with a value (no-color.org: set and not empty; an
    empty ``NO_COLOR=`` left colour off, against the convention other tools follow), and
    a terminal type other than ``TERM=dumb``: one that shows escape sequences as they are
    (Emacs's shell, an editor's output pane), where git, systemctl and less write none;
    `ps` printed ``^[[33mstarting^[[39m`` there."""
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # None, a closed stream
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
