"""Settings that name files and folders, resolved against the roster's folder.

``~`` is expanded; a relative path is taken from the folder holding
agents.yaml (not the current directory), so a team runs the same from
anywhere. Errors show the absolute path that was looked at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.roster._coerce import INVALID, Where, wrong_type
from orchestrator.roster._limits import (
    MAX_PROMPT_BYTES,
    FileRefused,
    read_regular_file,
    shown_path,
)


@dataclass(frozen=True)
class PromptSource:
    path: Path
    text: str


def _resolve(value: Any, where: Where) -> Any:
    if not isinstance(value, str) or not value.strip():
        return wrong_type("a path", value, where)
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = where.base / path
    return Path(os.path.normpath(path))


def _relative_note(value: str, where: Where) -> str:
    expanded = os.path.expanduser(value)
    return "" if os.path.isabs(expanded) else f" (relative paths start from {where.base})"


def prompt_file(value: Any, where: Where) -> Any:
    """A UTF-8 text file, read now: a missing file fails validation, not the agent's start.

    Only a regular file of at most MAX_PROMPT_BYTES is read (a FIFO would hang the
    reload, /dev/zero would fill memory)."""
    path = _resolve(value, where)
    if path is INVALID:
        return INVALID
    if not path.exists():
        return where.error(
            f"prompt file not found: {shown_path(path)}{_relative_note(value, where)}; "
            "create it or fix the path"
        )
    if path.is_dir():
        return where.error(
            f"prompt file {shown_path(path)} is a folder; give the path of a text file"
        )
    try:
        text = read_regular_file(path, MAX_PROMPT_BYTES).decode("utf-8")
    except FileRefused as exc:
        return where.error(
            f"prompt file refused: {exc.reason}; a prompt file is a UTF-8 text file of at "
            f"most {MAX_PROMPT_BYTES // 1024} KiB"
        )
    except UnicodeDecodeError:
        return where.error(f"prompt file {shown_path(path)} is not UTF-8 text")
    except OSError as exc:
        return where.error(f"cannot read prompt file {shown_path(path)}: {exc.strerror}")
    if not text.strip():
        return where.error(
            f"prompt file {shown_path(path)} is empty; write the agent's instructions in it"
        )
    return PromptSource(path, text)


def existing_directory(value: Any, where: Where) -> Any:
    """``cwd``: it must exist now, or the claude process could not start in it."""
    path = _resolve(value, where)
    if path is INVALID:
        return INVALID
    if not path.exists():
        return where.error(
            f"working directory does not exist: {shown_path(path)}{_relative_note(value, where)}; "
            "create it or fix the path"
        )
    if not path.is_dir():
        return where.error(f"working directory {shown_path(path)} is a file, not a folder")
    return path


def folder_path(value: Any, where: Where) -> Any:
    """``logs``: created at start-up if missing, but it cannot be an existing file."""
    path = _resolve(value, where)
    if path is not INVALID and path.exists() and not path.is_dir():
        return where.error(
            f"{shown_path(path)} is a file; 'logs' names the folder the logs are written to"
        )
    return path


def file_path(value: Any, where: Where) -> Any:
    """``database``: created at start-up if missing, but it cannot be an existing folder."""
    path = _resolve(value, where)
    if path is not INVALID and path.is_dir():
        return where.error(
            f"{shown_path(path)} is a folder; 'database' names the queue's database file, "
            "like queue/team.db"
        )
    return path
