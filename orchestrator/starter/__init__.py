"""The starter roster ``octy-orchestrate init`` writes: a commented agents.yaml and its prompts.

The files live beside this module as package data. The roster's
``prompt_file`` paths are relative to its own folder, so the prompts are
written under ``prompts/`` next to wherever the roster goes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from importlib import resources
from pathlib import Path

from orchestrator.roster import DEFAULT_FILE

PROMPTS = ("prompts/lead.md", "prompts/researcher.md")


def roster_target(path: Path) -> Path:
    """Where the roster goes: ``path`` itself, or ``path/agents.yaml`` for a folder (one
    that is not there yet comes as ``myteam/agents.yaml``: see the CLI's ``-f``)."""
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


class StarterRefused(Exception):
    """A path init will not write to; ``reason`` says why and what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_LINK = "is a symbolic link, which init never follows (it could point at any file)"


def write_starter(roster_path: Path) -> list[Path]:
    """Write the starter roster and its prompts, overwriting; return the paths written.

    The roster is written 0600: it is where an operator puts an agent's ``env`` (tokens
    included) and it decides what the team runs, so other users may neither read nor edit
    it. The prompts are plain role texts and keep the usual mode.

    Only regular files are written, never through a symlink nor into a prompts/ folder that
    is one (StarterRefused, before anything is written): in a folder others can write, a
    planted prompts/lead.md -> ~/.bashrc had init overwrite the target (and, dangling,
    create it even without --force); `init -f /dev/zero --force` made the device 0600 and
    wrote prompts into /dev/prompts/; `-f FIFO` hung on the open.
    """
    files = starter_files(roster_path)
    for path in files:  # all checked before any is written: nothing half done
        for link in (path, path.parent if path != roster_path else path):
            if link.is_symlink():
                raise StarterRefused(link, _LINK)
        if path.exists() and not path.is_file():
            raise StarterRefused(path, "is not a regular file (a device, a FIFO, a folder)")
        _check_folders(path.parent)
    # The roster last: a prompt that cannot be written leaves no roster naming it behind
    # (which a retry would refuse to overwrite).
    order = [*(p for p in files if p != roster_path), roster_path]
    made: list[Path] = []  # files and folders this call created, removed should it fail
    try:
        for path in order:
            _make_folders(path.parent, made)
            if path != roster_path and path.parent.is_symlink():  # made meanwhile
                raise StarterRefused(path.parent, _LINK)
            new = not os.path.lexists(path)
            _write_regular(path, files[path], private=path == roster_path)
            if new:
                made.append(path)
    except BaseException:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        raise
    return [roster_path, *order[:-1]]


def _check_folders(folder: Path) -> None:
    """StarterRefused if ``folder`` or one of its parents is there but is no folder."""
    for part in (folder, *folder.parents):
        if os.path.lexists(part):
            if not part.is_dir():
                raise StarterRefused(part, "is a file where init makes a folder")
            return


def _make_folders(folder: Path, made: list[Path]) -> None:
    missing = []
    for part in (folder, *folder.parents):
        if os.path.lexists(part):
            break
        missing.append(part)
    for part in reversed(missing):
        try:
            part.mkdir()
        except FileExistsError:  # made meanwhile by another: as good, if a folder
            if not part.is_dir():
                raise StarterRefused(part, "is a file where init makes a folder") from None
            continue
        except OSError as exc:
            raise StarterRefused(part, f"cannot be made ({exc.strerror})") from None
        made.append(part)


def _write_regular(path: Path, text: str, *, private: bool) -> None:
    # Non-blocking and not truncating until it is known to be a regular file: a FIFO or a
    # device put there since the check is neither waited on nor changed.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StarterRefused(path, _LINK) from None
        raise StarterRefused(path, f"cannot be written ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StarterRefused(path, "is not a regular file (a device, a FIFO, a folder)")
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        if private:
            os.fchmod(fd, 0o600)  # an existing file (--force) keeps its old mode otherwise
    except OSError as exc:
        # Errors on the descriptor name no file (`init -f /proc/self/status --force` said
        # only "[Errno 1] Operation not permitted"): said with the path.
        os.close(fd)
        raise StarterRefused(path, f"cannot be written ({exc.strerror})") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:  # a full disk, a quota
        raise StarterRefused(path, f"cannot be written ({exc.strerror})") from None
