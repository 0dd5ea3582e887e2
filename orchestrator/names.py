"""Participant names: one rule for the roster and the queue's registry.

A name becomes a log file name (``logs/<name>.jsonl``), a mermaid participant and
a word in a prompt, so it is kept plain; ``user`` (the person at the CLI) and
``supervisor`` are rows the team owns and nobody may register as.
"""

from __future__ import annotations

import re

RESERVED_NAMES: tuple[str, ...] = ("user", "supervisor")
AGENT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an agent's name, or None if it can."""
    if name in RESERVED_NAMES:
        return f"'{name}' is reserved (the names {' and '.join(RESERVED_NAMES)} are the team's own)"
    if not AGENT_NAME_RE.fullmatch(name):
        return (
            "a name is lower-case letters, digits, '-' and '_', starting with a letter or "
            "digit (as in agents.yaml)"
        )
    return None
