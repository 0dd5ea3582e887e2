"""Where a running team keeps its queue and logs, recorded when its supervisor starts.

A roster edited into an invalid state must not lock the operator out of the team that
still runs its last good version (issue 9): ``ps``, ``down``, ``ask``, ``logs``… find
the team's database through this record instead of the file on disk. The record is a
small JSON file per roster, keyed by the roster's path (its folder resolved), in the user's state
folder (``$XDG_STATE_HOME/octy-orchestrate/teams/``, else ``~/.local/state/…``),
created 0600 in a 0700 folder and replaced atomically, never through a symlink.
It holds paths only, no settings and no secrets.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cli import user_folders
from orchestrator.lockfile import holder_pid
from orchestrator.redact import for_people

STATE_ENV = "XDG_STATE_HOME"


@dataclass(frozen=True)
class TeamRecord:
    roster: Path
    database: Path
    logs: Path
    agents: tuple[str, ...]

    def running_pid(self) -> int | None:
        return holder_pid(self.database)


def record_dir() -> Path | None:
    """``$XDG_STATE_HOME/octy-orchestrate/teams``, else ``~/.local/state/…`` (``~`` is $HOME,
    else the user's home in the password database: a systemd unit without HOME). None
    where neither tells: HOME unset for a user with no home (a container's arbitrary uid;
    Path.home() raised RuntimeError there, a traceback in `up`), or relative. A relative
    XDG_STATE_HOME is ignored, as the XDG specification says: it would name another
    folder from every working folder."""
    state = os.environ.get(STATE_ENV, "")
    if os.path.isabs(state):
        return Path(state) / "octy-orchestrate" / "teams"
    base = user_folders.home()
    return None if base is None else base / ".local" / "state" / "octy-orchestrate" / "teams"


def state_dir() -> Path | None:
    """The user's octy-orchestrate state folder: the team records (``teams/``) and the
    roster cache (``rosters/``, cli/roster_cache.py). Both tell the operator's verbs which
    database to use, so agents may neither read nor write it (sandbox.py, confine.py)."""
    folder = record_dir()
    return None if folder is None else folder.parent


NO_PLACE = (
    "no folder to keep it in: HOME is unset, empty or relative, this user has no home "
    "directory, and XDG_STATE_HOME is not set; set HOME or XDG_STATE_HOME, the same for "
    "`up` and every terminal that operates the team"
)


def record_path(roster: Path) -> Path | None:
    """Where the record of the team started from ``roster`` is (None: see record_dir)."""
    folder = record_dir()
    return None if folder is None else folder / _file_name(roster)


def _file_name(roster: Path) -> str:
    """The record's file name for the team started from ``roster`` (a folder means its
    agents.yaml).

    Keyed by the roster's folder, resolved (one folder reached by two paths is one team),
    and its own name, not resolved: an agents.yaml that is a symlink, pointed at a broken
    file, was looked up under the new target's name, found no record, and locked the
    operator out of the running team."""
    import hashlib

    if roster.is_dir():
        roster = roster / "agents.yaml"
    where = roster.absolute().parent.resolve() / roster.name
    key = hashlib.sha256(str(where).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{key[:32]}.json"


def write(roster: Path, database: Path, logs: Path, agents: tuple[str, ...]) -> None:
    """Record the team (best effort: a team runs without it; only the lockout guard is lost)."""
    folder = record_dir()
    if folder is None:
        _warn_unrecorded(f"({NO_PLACE})")
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            # Another user could swap the record and point our verbs at their database.
            raise PermissionError(errno.EPERM, "not a private folder of this user")
        doc = {
            "roster": str(roster.resolve()),
            "database": str(database.absolute()),
            "logs": str(logs.absolute()),
            "agents": list(agents),
            "pid": os.getpid(),
            "written_at": time.time(),
        }
        target = folder / _file_name(roster)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, target)  # rename replaces a planted symlink itself, never follows it
    except OSError as exc:
        _warn_unrecorded(f"in {folder} ({exc.strerror})")


def _warn_unrecorded(why: str) -> None:
    print(
        for_people(
            f"octy-orchestrate: warning: could not record the team {why}; if agents.yaml "
            "becomes invalid while it runs, use --db to reach it"
        ),
        file=sys.stderr,
    )


def read(roster: Path) -> TeamRecord | None:
    """The team last started from ``roster``, or None."""
    path = record_path(roster)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with contextlib.suppress(OSError, ValueError), os.fdopen(fd, encoding="utf-8") as f:
        if os.fstat(fd).st_uid != os.getuid():
            return None  # not written by us: never trusted to name a database
        doc = json.load(f)
        if isinstance(doc, dict) and isinstance(doc.get("database"), str):
            agents = doc.get("agents")
            return TeamRecord(
                roster=Path(str(doc.get("roster", roster))),
                database=Path(doc["database"]),
                logs=Path(str(doc.get("logs") or Path(doc["database"]).parent / "logs")),
                agents=tuple(str(a) for a in agents) if isinstance(agents, list) else (),
            )
    return None


_warned: set[Path] = set()


def warn_invalid(roster: Path, problems: int, record: TeamRecord) -> None:
    """One line on stderr, once per roster: the file is invalid, the team runs the last
    good version (or last ran, if no supervisor holds it now)."""
    if roster in _warned:
        return
    _warned.add(roster)
    what = f"{problems} problem(s)" if problems else "it cannot be read"
    pid = record.running_pid()
    team = (
        f"the running team (supervisor pid {pid}) uses the last good version"
        if pid
        else f"using the team it last started ({record.database})"
    )
    print(
        for_people(
            f"octy-orchestrate: warning: {roster} is invalid ({what}; `octy-orchestrate config` "
            f"lists them); {team}"
        ),
        file=sys.stderr,
    )
