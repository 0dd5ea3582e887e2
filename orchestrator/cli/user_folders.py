"""The per-user folders a team depends on outside its own folder, found from HOME.

The claude CLI keeps its login and every agent's conversation in ``~/.claude`` (or
``$CLAUDE_CONFIG_DIR``). Measured with the bundled CLI: with a HOME it cannot write
(``HOME=/dev/null``) agents run and answer, but no conversation is saved, so an agent
restarted (by `restart`, a crash, a reload, the next `up`) fails to resume
("No conversation found with session ID", logged ``resume_failed``) and starts afresh.
Without HOME, for a user with no home directory, Python's ``Path.home()`` raised
RuntimeError: a traceback in `up`. `up` says so instead (a warning: the team works).
The team record's folder (team_record.py) follows the same HOME.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path

CLAUDE_CONFIG_ENV = "CLAUDE_CONFIG_DIR"


def home() -> Path | None:
    """$HOME, else (unset or empty) the user's home in the password database, as the
    claude CLI finds it; None if that names no absolute path (a user without a home, a
    relative HOME). Not Path.home(): it raised RuntimeError for a user without a home,
    and read HOME="" as "/"."""
    value = os.environ.get("HOME", "")
    if not value:
        try:
            value = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            return None
    found = Path(value)
    return found if found.is_absolute() else None


def settle_home() -> None:
    """HOME set for the supervisor and its claudes to :func:`home` where it was unset or
    empty (`env -i`, a systemd unit, `sudo` without -H…): the team record and the CLIs'
    folder are then one folder, whichever way a program looks for it."""
    if not os.environ.get("HOME") and (found := home()) is not None:
        os.environ["HOME"] = str(found)


def settle_path() -> None:
    """PATH set for the supervisor and its claudes to the system's standard one (POSIX
    ``confstr CS_PATH``, ``/bin:/usr/bin``, as a shell uses) where it was unset or empty
    (`env -i HOME=… octy-orchestrate up`, a bare exec from a service manager).

    Python's shutil.which searches that default by itself, so `up`'s sandbox check found
    bwrap; the claude CLI searches no default: every agent with a tool refused to start
    ("sandbox required but unavailable: … bubblewrap (bwrap) not installed") and the team
    crash-looped to `failed` after `up -d` had said it started."""
    if not os.environ.get("PATH"):
        try:
            standard = os.confstr("CS_PATH") or os.defpath
        except (ValueError, OSError):
            standard = os.defpath
        os.environ["PATH"] = standard


def claude_config_dir(environ: Mapping[str, str]) -> Path | None:
    """Where the claude CLIs started with ``environ`` keep their login and sessions."""
    if environ.get(CLAUDE_CONFIG_ENV):
        return Path(environ[CLAUDE_CONFIG_ENV])
    # An agent's own `env` may set HOME; unset or empty, the CLI finds it as home() does.
    given = environ.get("HOME", "")
    base = (Path(given) if Path(given).is_absolute() else None) if given else home()
    return None if base is None else base / ".claude"


def claude_folder_problem(environ: Mapping[str, str]) -> str | None:
    """Why the claude CLIs could not keep their sessions, with what to do; None if they can
    (the folder exists and is writable, or can be made: its nearest existing parent is a
    writable folder)."""
    folder = claude_config_dir(environ)
    fix = (
        "agents run, but no conversation is saved, so a restarted agent starts afresh; set "
        "HOME (or CLAUDE_CONFIG_DIR) to a folder this user can write"
    )
    if folder is None:
        return f"HOME is unset, empty or relative and this user has no home directory: {fix}"
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = (
            "is not a folder" if existing == folder else f"cannot be made ({existing} is no folder)"
        )
    elif not os.access(existing, os.W_OK | os.X_OK):
        why = "is not writable" if existing == folder else f"cannot be made in {existing}"
    else:
        return None
    return f"the claude CLI's folder {folder} {why}: {fix}"
