"""How big and how deep a roster may be, and reading its files safely.

A roster is re-read by a running supervisor whenever it (or a prompt file)
changes, so whatever is in those files must not be able to hang or exhaust
the supervisor: a FIFO or a device given as a path is refused (its open or
read would block, or never end), a file is read only up to a limit, and the
nesting that the parsers handle by recursion is bounded well below Python's
recursion limit (issue 16, A.3 and A.5).
"""

from __future__ import annotations

import os
from typing import Final

from orchestrator.regularfile import FileRefused, read_regular_file

MAX_ROSTER_BYTES: Final = 256 * 1024  # PyYAML (pure Python) reads ~200 KiB/s: about 1 s
MAX_PROMPT_BYTES: Final = 256 * 1024  # ~64k tokens of instructions
MAX_DEPTH: Final = 32  # nested mappings/lists; a real roster uses 5 (agents.a.env.KEY)
MAX_INTERPOLATION_DEPTH: Final = 8  # ${A:-${B:-...}} inside defaults
MAX_ERRORS: Final = 100  # problems listed for one file; the rest are counted
# Agents in one roster. Each runs a claude process (~200 MiB resident, capacity.py) and
# every agent's system prompt lists the others: 10,000 agents validated and `up` tried them.
MAX_AGENTS: Final = 100
# Numbers a roster may hold. Beyond them a value is a typo, and a harmful one: a size of
# 10**400 bytes ended the parse in OverflowError (a traceback in `config`, `ps` locked out,
# the reload dropped); a budget window of 10**400 days became inf and every budget check
# failed; `log_backups: 100000000` hangs the supervisor's logging at each rotation (the
# stdlib handler renames backups one by one, checking every number down from the count).
MAX_DURATION_S: Final = 10 * 365 * 86400.0  # ten years; null says "never" where allowed
MAX_WHOLE_NUMBER: Final = 2**53  # exact as a float and in JSON, fits SQLite's integers
MAX_SIZE_BYTES: Final = 2**40  # 1 TiB
MAX_LOG_BACKUPS: Final = 1000


__all__ = [
    "MAX_AGENTS",
    "MAX_DEPTH",
    "MAX_DURATION_S",
    "MAX_ERRORS",
    "MAX_INTERPOLATION_DEPTH",
    "MAX_LOG_BACKUPS",
    "MAX_PROMPT_BYTES",
    "MAX_ROSTER_BYTES",
    "MAX_SIZE_BYTES",
    "MAX_WHOLE_NUMBER",
    "FileRefused",
    "read_regular_file",
]


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as an error shows it: as given when it is a plain path, else quoted as
    Python's repr (empty, spaces at its ends, a newline or another unprintable character):
    `-f '  '` said "  : file not found", the path unseen."""
    text = os.fspath(path)
    plain = text != "" and text == text.strip() and text.isprintable()
    return text if plain else repr(text)
