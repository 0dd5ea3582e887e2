"""Where a roster's queue is, remembered between runs of the everyday verbs (issue 14.1).

`send`, `inbox`, `reply`, `ask`… only need the queue database a roster names, yet
finding it meant importing PyYAML and the roster's validators and parsing the file:
about 40 % of such a verb's start-up, paid by every hook call. After a roster loads
without errors the database it names is kept here, keyed by what decides it: the
roster's path (its folder resolved, as the team record keys it), a digest of its
bytes, and digests of HOME and of every environment variable its ``${VAR}``
references read (set or not). A later run with the same bytes and the same values
reuses it without parsing; any other change (an edit, another ``$VAR``, another HOME,
another version of octy-orchestrate) reads and validates the roster as before.

A roster that names a NATS queue is not remembered (verbs need its settings).
Values are never stored, only SHA-256 digests. One small JSON file per roster, 0600
in a 0700 folder of the user's state folder, written atomically, never through a
symlink, and not trusted unless this user owns it: another user could otherwise point
our verbs at their database. Agents run as this user, so the state folder is hidden
from their tools (sandbox.py, confine.py): an agent that could write an entry could
send `down`, `ps` and `send` to a database of its choice. Everything here is best
effort: a cache that cannot be read or written only costs the parse.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from orchestrator import __version__
from orchestrator.cli.team_record import state_dir
from orchestrator.regularfile import FileRefused, read_regular_file

try:  # the builtin module: hashlib's import starts OpenSSL, a few ms of every run
    from _sha256 import sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.12 renamed it; other interpreters
    from hashlib import sha256

# roster/_limits.py's MAX_ROSTER_BYTES (that package's import is what this module saves):
# a roster over it never loads cleanly, so it is never remembered.
_READ_LIMIT = 256 * 1024


def _digest(data: str | bytes | None) -> str | None:
    if data is None:
        return None
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    return str(sha256(raw).hexdigest())


class ReadRecorder(Mapping[str, str]):
    """``os.environ`` as the roster's interpolation sees it, noting each name it asks."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._environ[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self._environ.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self._environ

    def __iter__(self) -> Iterator[str]:  # a loader listing every name depends on all
        self.asked.update(self._environ)
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def _entry_path(roster: Path) -> Path | None:
    folder = state_dir()
    if folder is None:
        return None
    if roster.is_dir():
        roster = roster / "agents.yaml"
    where = roster.absolute().parent.resolve() / roster.name
    return folder / "rosters" / f"{_digest(str(where))[:32]}.json"  # type: ignore[index]


def _roster_digest(roster: Path) -> str | None:
    if roster.is_dir():
        roster = roster / "agents.yaml"
    try:
        return _digest(read_regular_file(roster, _READ_LIMIT))
    except (OSError, FileRefused):
        return None


def _key(roster_digest: str, names: set[str]) -> dict[str, object]:
    return {
        "version": __version__,
        "roster": roster_digest,
        "home": _digest(os.environ.get("HOME")),
        "env": {name: _digest(os.environ.get(name)) for name in sorted(names)},
    }


def lookup(roster: Path) -> Path | None:
    """The database the roster at ``roster`` named when it last loaded cleanly, if nothing
    that decides it changed since; None otherwise (then load the roster)."""
    entry = _entry_path(roster)
    if entry is None:
        return None
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with contextlib.suppress(OSError, ValueError), os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or not stat.S_ISREG(info.st_mode) or info.st_size > 65536:
            return None
        doc = json.loads(f.read())
        if not isinstance(doc, dict) or not isinstance(doc.get("database"), str):
            return None
        key = doc.get("key")
        names = key.get("env") if isinstance(key, dict) else None
        digest = _roster_digest(roster)
        if digest is None or not isinstance(names, dict):
            return None
        if key != _key(digest, {str(n) for n in names}):
            return None
        return Path(doc["database"])
    return None


def remember(roster: Path, database: Path, asked: set[str]) -> None:
    """Keep ``database`` for ``roster`` (just loaded cleanly, reading the variables
    ``asked``). Best effort, silent: the cache only saves time."""
    entry = _entry_path(roster)
    digest = _roster_digest(roster)
    if entry is None or digest is None:
        return
    with contextlib.suppress(OSError):
        folder = entry.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return
        doc = {"key": _key(digest, asked), "database": str(database.absolute())}
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp, entry)  # replaces a planted link itself, never follows it
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
