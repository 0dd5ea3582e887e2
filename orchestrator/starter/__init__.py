"""The starter roster ``octy-orchestrate init`` writes: a commented agents.yaml and its prompts.

The files live beside this module as package data. The roster's
``prompt_file`` paths are relative to its own folder, so the prompts are
written under ``prompts/`` next to wherever the roster goes.
"""

from __future__ import annotations

import errno
import os
from importlib import resources
from pathlib import Path

from orchestrator.roster import DEFAULT_FILE

PROMPTS = ("prompts/lead.md", "prompts/researcher.md")


def roster_target(path: Path) -> Path:
    """Where the roster goes: ``path`` itself, or ``path/agents.yaml`` for a folder."""
    return path / DEFAULT_FILE if path.is_dir() else path


def starter_files(roster_path: Path) -> dict[Path, str]:
    """Each file the starter consists of (the roster first), with its text."""
    data = resources.files("orchestrator.starter")
    files = {roster_path: (data / "agents.yaml").read_text(encoding="utf-8")}
    for relative in PROMPTS:
        files[roster_path.parent / relative] = (data / relative).read_text(encoding="utf-8")
    return files


def existing_files(roster_path: Path) -> list[Path]:
    """The starter's files that already exist (and that writing would overwrite); a symlink
    counts, dangling or not (exists() follows it, and a dangling one read as "free")."""
    return [path for path in starter_files(roster_path) if os.path.lexists(path)]


def write_starter(roster_path: Path) -> list[Path]:
    """Write the starter roster and its prompts, overwriting; return the paths written.

    The roster is written 0600: it is where an operator puts an agent's ``env`` (tokens
    included) and it decides what the team runs, so other users may neither read nor edit
    it. The prompts are plain role texts and keep the usual mode.

    No file is written through a symlink, nor into a prompts/ folder that is one: in a folder
    others can write, a planted prompts/lead.md -> ~/.bashrc had init overwrite the target
    (and, dangling, create it even without --force). Such a path raises OSError (ELOOP).
    """
    files = starter_files(roster_path)
    for path in files:  # all checked before any is written: nothing half done
        for link in (path, path.parent if path != roster_path else path):
            if link.is_symlink():
                raise OSError(errno.ELOOP, "is a symbolic link", str(link))
    written = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path != roster_path and path.parent.is_symlink():  # made meanwhile
            raise OSError(errno.ELOOP, "is a symbolic link", str(path.parent))
        mode = 0o600 if path == roster_path else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        if path == roster_path:
            os.fchmod(fd, 0o600)  # an existing file (--force) keeps its old mode otherwise
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written
