"""What a command hands to an interpreter (:class:`Handoff`), shared by
:mod:`orchestrator.handoffs`, :mod:`orchestrator.option_commands` and
:mod:`orchestrator.command_runners`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True)
class Handoff:
    """What a command hands over: code that cannot be read (``why``), shell lines that
    can (``lines``), commands given as words (``argv``)."""

    why: str | None = None
    lines: tuple[str, ...] = ()
    argv: tuple[tuple[str, ...], ...] = field(default=())
    # Code on the line or its input (not in a file): the word that gives it (`-c`,
    # `--eval`, `-`), or INPUT. An allow rule exempts it only if it names that word.
    code: str = ""
    # The folder its lines and commands run in, when the command names one (`tmux new -c
    # DIR`, `bwrap --chdir DIR`), as written: UNKNOWN marks one known only at run time.
    folder: str = ""
    # Variables it sets for what it runs (`tmux new -e NAME=VALUE`), read as set before it.
    environment: tuple[str, ...] = ()
    # A module Python runs with the call's folder first on its path (`python3 -m mod`):
    # one of that folder named as it, or as a module it imports, runs (load_paths).
    module: str = ""
    # javac's class path (`-cp`, the call's folder by default), whose folders' annotation
    # processors, listed in META-INF/services, it runs as it compiles (load_paths).
    classpath: str = ""


INPUT: Final = "<input>"  # code read from a pipe or a here-document, no option giving it
# Code read from the input only when the line gives the command one (a pipe, `<`, `<<`,
# `<<<`): typed keys vim reads with no terminal. Asks as INPUT does, where the line has any.
INPUT_IF_FED: Final = "<input if the line gives one>"
