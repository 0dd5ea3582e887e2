"""Participant names: one rule for the roster and the queue's registry.

A name becomes a log file name (``logs/<name>.jsonl``), a mermaid participant and
a word in a prompt, so it is kept plain; ``user`` (the person at the CLI) and
``supervisor`` are rows the team owns and nobody may register as.
"""

from __future__ import annotations

import re

RESERVED_NAMES: tuple[str, ...] = ("user", "supervisor")
# At most 63 characters (a DNS label's limit): a name is also a file name, a NATS key
# and a column in `ps`; a longer one would fail at the log file (ENAMETOOLONG), not here.
MAX_NAME_LEN = 63
AGENT_NAME_RE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_NAME_LEN - 1}}}")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an agent's name, or None if it can."""
    if name in RESERVED_NAMES:
        return f"'{name}' is reserved (the names {' and '.join(RESERVED_NAMES)} are the team's own)"
    if not AGENT_NAME_RE.fullmatch(name):
        return (
            f"a name is 1-{MAX_NAME_LEN} lower-case letters, digits, '-' and '_', starting "
            "with a letter or digit (as in agents.yaml)"
        )
    return None


MAX_DESCRIPTION_CHARS = 1000
"""What a participant handles, in a few sentences. Every agent's `agents` tool lists every
description: ten registrations of 120 KB made that tool's result too big for any agent."""


def clip_description(text: str) -> str:
    """A description as the `agents` tool shows it: at most MAX_DESCRIPTION_CHARS, saying
    how much was left out (plain SQL, an older version or a roster may have stored more)."""
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    left_out = len(text) - MAX_DESCRIPTION_CHARS
    return f"{text[:MAX_DESCRIPTION_CHARS]}… ({left_out:,} characters left out)"
