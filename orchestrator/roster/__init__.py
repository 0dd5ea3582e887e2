"""``agents.yaml`` -> frozen, validated objects.

The whole file is checked before anything starts; every problem is reported
at once as :class:`~orchestrator.errors.RosterErrors`, each a ``RosterError``
naming the file, the 1-based line, the dotted key (``agents.coder.modle``) and
what to do.

Layout: ``_yaml`` (YAML with line numbers and duplicate keys), ``_interpolate``
(``${VAR}``), ``_coerce`` / ``_files`` (one value each), ``_schema`` (the keys,
built-in defaults, inheritance), ``_refs`` (names across agents, cycles),
``_build`` (the whole file), ``model`` (the objects), ``diff`` (what an edit changes),
``_limits`` (size and depth bounds, reading only regular files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.errors import RosterError, RosterErrors
from orchestrator.roster._build import parse_roster
from orchestrator.roster._coerce import parse_duration, parse_size
from orchestrator.roster._limits import (
    MAX_AGENTS,
    MAX_DEPTH,
    MAX_INTERPOLATION_DEPTH,
    MAX_PROMPT_BYTES,
    MAX_ROSTER_BYTES,
    FileRefused,
    read_regular_file,
    shown_path,
)
from orchestrator.roster._schema import AGENT_KEYS, TOP_KEYS
from orchestrator.roster._yaml import YamlSyntaxError, load_tree
from orchestrator.roster.diff import RosterDiff, diff_rosters
from orchestrator.roster.model import (
    AGENT_NAME_RE,
    PERMISSION_MODES,
    RESERVED_NAMES,
    RESTART_POLICIES,
    AgentSpec,
    Backoff,
    FrozenDict,
    Roster,
    is_secret_key,
)

DEFAULT_FILE = "agents.yaml"


def load_roster(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Roster:
    """Read and validate a roster file (a folder means its ``agents.yaml``).

    ``environ`` feeds ``${VAR}`` interpolation (default: ``os.environ``).
    Raises RosterErrors listing every problem found.
    """
    target = Path(path)
    if target.is_dir():
        target = target / DEFAULT_FILE
    shown = shown_path(target)
    try:
        data = read_regular_file(target, MAX_ROSTER_BYTES)
        text = data.decode("utf-8-sig")  # a BOM from some editors is not YAML
    except FileRefused as exc:
        raise RosterErrors([RosterError(shown, None, None, _refused(exc))]) from None
    except FileNotFoundError:
        reason = (
            "file not found; run `octy-orchestrate init` to write a starter roster, or pass -f FILE"
        )
        raise RosterErrors([RosterError(shown, None, None, reason)]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise RosterErrors([RosterError(shown, line, None, "the file is not UTF-8 text")]) from None
    except OSError as exc:
        raise RosterErrors(
            [RosterError(shown, None, None, f"cannot read: {exc.strerror}")]
        ) from None
    return parse_roster(text, target, environ)


def load_plain(path: Path) -> object:
    """The YAML tree of a roster that may not validate, read within the same limits as
    :func:`load_roster` (size, depth, no FIFO or device); None when it cannot be read or
    parsed. For verbs that read a broken roster leniently (``logs``, ``trace``): plain
    ``yaml.safe_load`` ended a deep file in RecursionError and read a 1 GiB one whole."""
    try:
        text = read_regular_file(path, MAX_ROSTER_BYTES).decode("utf-8-sig")
        return load_tree(text)
    except (OSError, FileRefused, UnicodeDecodeError, YamlSyntaxError, RecursionError):
        return None


def _refused(exc: FileRefused) -> str:
    return (
        f"{exc.reason}; the roster must be a UTF-8 text file of at most "
        f"{MAX_ROSTER_BYTES // 1024} KiB (long prompts go in prompt files)"
    )


__all__ = [
    "AGENT_KEYS",
    "AGENT_NAME_RE",
    "DEFAULT_FILE",
    "MAX_AGENTS",
    "MAX_DEPTH",
    "MAX_INTERPOLATION_DEPTH",
    "MAX_PROMPT_BYTES",
    "MAX_ROSTER_BYTES",
    "PERMISSION_MODES",
    "RESERVED_NAMES",
    "RESTART_POLICIES",
    "TOP_KEYS",
    "AgentSpec",
    "Backoff",
    "FrozenDict",
    "Roster",
    "RosterDiff",
    "diff_rosters",
    "is_secret_key",
    "load_plain",
    "load_roster",
    "parse_duration",
    "parse_roster",
    "parse_size",
]
