"""Reading one log file and its rotations, whatever happens to their names.

The writer is :mod:`orchestrator.logconfig`: each log is rotated by the stdlib
``RotatingFileHandler`` (``x.jsonl`` renamed to ``x.jsonl.1``, older ones shifted
up, a fresh ``x.jsonl`` opened); logrotate or a person may also move or delete
files. A :class:`FileFollower` keeps the file it reads open, so a rename cannot
take lines from under it, and knows every file it read by identity and offset,
so none is read twice. :mod:`orchestrator.logview` builds ``logs``, ``logs -f``
and ``trace``'s reading on it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator import jsontext, safefs
from orchestrator.logconfig import SUPERVISOR_LOG


@dataclass(frozen=True)
class LogLine:
    """One line of a log file; parsed on first use (``--json`` and ``--tail`` need not)."""

    raw: str
    source: str = SUPERVISOR_LOG

    @cached_property
    def event(self) -> Mapping[str, Any] | None:
        """The decoded event, or None for a line that is not a JSON object."""
        try:
            value = jsontext.loads(self.raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @cached_property
    def timestamp(self) -> str:
        """The ISO UTC time as written: every line has the same format, so it sorts."""
        ts = self.event.get("timestamp") if self.event else None
        return ts if isinstance(ts, str) else ""

    @cached_property
    def at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.timestamp) if self.timestamp else None
        except ValueError:
            return None

    @property
    def agent(self) -> str | None:
        agent = self.event.get("agent") if self.event else None
        return agent if isinstance(agent, str) else None


def _line(raw: bytes, source: str) -> LogLine:
    return LogLine(raw.decode("utf-8", "replace").rstrip("\r"), source)


def rotated_paths(base: Path) -> list[Path]:
    """``base.N`` … ``base.1`` that exist, oldest first."""
    found = []
    for p in base.parent.glob(base.name + ".*"):
        suffix = p.name[len(base.name) + 1 :]
        if suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found, reverse=True)]


# Told of backup numbers missing for good: the log, the first few missing, how many.
Hole = Callable[[Path, tuple[int, ...], int], None]
# Given the raw lines of one read, in order, those worth decoding (a reader that needs a
# few lines of a big log says which before any is decoded).
Keep = Callable[[list[bytes]], list[bytes]]


_ATTEMPTS = 20  # listings of a chain tried before a hole in its numbers is taken as real
_SHOWN = 5  # missing backup numbers named in a warning
_SPARE = 64  # marks kept of files no longer listed (deleted, moved away, or missed)
_BLOCK = 64 * 1024  # read at a time when reading backwards
_EDGE = 1024  # bytes kept of each end of what was read from a file, to know it again


@dataclass(frozen=True)
class _Mark:
    """How far a file was read, with the bytes at the start and just before that point:
    an inode freed by a deletion can be given at once to a new file, so the same
    (device, inode) with other bytes there is a new file."""

    offset: int
    head: bytes
    tail: bytes


@dataclass
class _Open:
    """A file we hold open: its identity pins the inode, so it cannot be reused meanwhile."""

    handle: BinaryIO
    ident: tuple[int, int]
    partial: bytes = b""

    @classmethod
    def of(cls, path: Path) -> _Open:
        # Not followed if a link, not opened if a FIFO or a device (safefs): a FIFO there hung
        # `logs` forever, a link to /dev/zero read gigabytes. Refused as UnsafePath, by name.
        fd = safefs.open_private(path, os.O_RDONLY, "log file")
        handle = os.fdopen(fd, "rb")
        st = os.fstat(handle.fileno())
        return cls(handle, (st.st_dev, st.st_ino))

    def read_lines(
        self, source: str, *, final: bool = False, keep: Keep | None = None
    ) -> list[LogLine]:
        """Complete lines up to end of file; with ``final`` also an unterminated tail.
        ``keep``: only the lines it picks, judged as bytes before any is decoded."""
        data = self.partial + self.handle.read()
        *complete, self.partial = data.split(b"\n")
        if final and self.partial:
            complete.append(self.partial)
            self.partial = b""
        if keep is not None:
            complete = keep(complete)
        return [_line(raw, source) for raw in complete if raw.strip()]

    def backwards(self, end: int) -> Iterator[bytes]:
        """The lines of the bytes before ``end``, last first, read a block at a time."""
        fd = self.handle.fileno()
        pos, rest = end, b""
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            parts = (os.pread(fd, step, pos) + rest).split(b"\n")
            rest = parts.pop(0)  # its start may lie in the block before
            yield from reversed(parts)
        yield rest

    def end_of_lines(self) -> int:
        """Where the last complete line ends (what follows is a line being written)."""
        fd = self.handle.fileno()
        pos = os.fstat(fd).st_size
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            found = os.pread(fd, step, pos).rfind(b"\n")
            if found >= 0:
                return pos + found + 1
        return 0

    def mark(self) -> _Mark:
        """Where reading stopped (an unterminated tail not counted as read)."""
        offset = self.handle.tell() - len(self.partial)
        return _Mark(offset, self._bytes(0, offset), self._bytes(max(0, offset - _EDGE), offset))

    def resume(self, mark: _Mark) -> bool:
        """Go on after ``mark`` if this is the file it was taken of (the caller matched the
        identity); False for a new file on a reused inode, or one truncated since."""
        if os.fstat(self.handle.fileno()).st_size < mark.offset:
            return False
        head_end = len(mark.head)
        if self._bytes(0, head_end) != mark.head:
            return False
        if self._bytes(mark.offset - len(mark.tail), mark.offset) != mark.tail:
            return False
        self.handle.seek(mark.offset)
        self.partial = b""
        return True

    def _bytes(self, start: int, end: int) -> bytes:
        return (
            os.pread(self.handle.fileno(), min(end - start, _EDGE), start) if end > start else b""
        )


@dataclass
class FileFollower:
    """Reads one log (``base`` and its rotations) once, then whatever is appended.

    Every file read is remembered by identity (device, inode) and how far it was read,
    so a file seen before (a backup, the old live file renamed to ``.1`` or elsewhere)
    is never read twice, whatever happened to the names: rotation, a logrotate
    ``dateext`` rename, ``rm``, ``rm -rf logs``. ``on_gap`` is told when lines really
    went unread: the file we read was rotated away and every file left is new to us,
    backups included (rotation outran ``log_backups`` between two reads). ``on_hole``
    is told once when the backup numbers have a hole that stays (``.1`` deleted by
    hand, a writer killed mid-rotation): the files that exist are read, in order."""

    base: Path
    source: str = SUPERVISOR_LOG
    on_gap: Callable[[Path], None] | None = None
    on_hole: Hole | None = None
    _current: _Open | None = field(default=None, init=False)
    _seen: dict[tuple[int, int], _Mark] = field(default_factory=dict, init=False)
    _hole_told: bool = field(default=False, init=False)

    def history(self, keep: Keep | None = None) -> list[LogLine]:
        """Everything on disk now, oldest first; the newest file stays open for poll().
        ``keep``: only the lines it picks (see :data:`Keep`), none other decoded."""
        return self._take(self._open_chain(), keep=keep)

    def history_tail(self, n: int) -> list[LogLine]:
        """The last ``n`` lines of :meth:`history`, read from the end backwards (the
        files before them are not read); the follower is left as history() leaves it."""
        chain = self._open_chain()
        found: list[LogLine] = []
        for f in reversed(chain):
            end = f.end_of_lines() if f is chain[-1] else os.fstat(f.handle.fileno()).st_size
            f.handle.seek(end)
            for raw in f.backwards(end) if len(found) < n else ():
                if raw.strip():
                    found.append(_line(raw, self.source))
                    if len(found) == n:
                        break
        # Every file now counts as read up to where we started; what the writer added
        # since is read now, as history() would.
        lines = found[::-1] + self._take(chain)
        return lines[-n:] if n > 0 else []

    def poll(self) -> list[LogLine]:
        """Lines written since the last call."""
        current = self._current
        if current is None:
            return self._take(self._open_chain())
        lines = current.read_lines(self.source)
        ident = _ident(self.base)
        if ident is None:
            return lines  # between the rename and the new file, or deleted: one will appear
        if ident == current.ident:
            if os.fstat(current.handle.fileno()).st_size < current.handle.tell():
                current.handle.seek(0)  # truncated in place: start again
                current.partial = b""
                lines += current.read_lines(self.source)
            return lines
        # Rotated, moved away or deleted. The writer let go of our file before the new one
        # appeared, so it is complete: drain it, then read what is new to us.
        lines += current.read_lines(self.source, final=True)
        self._seen[current.ident] = current.mark()
        chain = self._open_chain()
        if not chain:
            return lines  # renamed under us at every try: again at the next poll
        current.handle.close()
        self._current = None
        return lines + self._take(chain, moved_on=True)

    def close(self) -> None:
        if self._current is not None:
            self._current.handle.close()
            self._current = None

    def _take(
        self, chain: list[_Open], *, moved_on: bool = False, keep: Keep | None = None
    ) -> list[LogLine]:
        """Read what ``chain`` holds that we have not read; keep its last file open (where
        the writer appends). ``moved_on``: the file we were reading was replaced."""
        lines: list[LogLine] = []
        known = False  # a file of the chain was read before
        new_backup = False  # a backup we never read
        for i, f in enumerate(chain):
            mark = self._seen.get(f.ident)
            if mark is not None and f.resume(mark):
                known = True
            elif i < len(chain) - 1:
                new_backup = True
            if i < len(chain) - 1:
                lines += f.read_lines(self.source, final=True, keep=keep)
                self._seen[f.ident] = f.mark()
                f.handle.close()
            else:
                lines += f.read_lines(self.source, keep=keep)
                self._current = f
        # Marks of the chain's files last, so the first ones are of files gone from it
        # (deleted, moved away, or missed by a listing made during a rotation: kept, so
        # such a file is not read again when it shows up); those beyond _SPARE are dropped.
        for f in chain[:-1]:
            self._seen[f.ident] = self._seen.pop(f.ident)
        for ident in list(self._seen)[: max(0, len(self._seen) - len(chain) - _SPARE)]:
            del self._seen[ident]
        if moved_on and not known and new_backup and self.on_gap is not None:
            self.on_gap(self.base)
        return lines

    def _open_chain(self) -> list[_Open]:
        """The backups and the live file, oldest first, opened as one consistent set: if
        a rotation renames them while we open them, open them again."""
        before: list[tuple[int, int] | None] = []
        for attempt in range(_ATTEMPTS):
            backups = rotated_paths(self.base)
            missing, count = _missing(self.base, backups)
            if count:
                # Mid-rollover the rename cascade (.1->.2 ... base->.1) leaves a hole until it
                # is done, and a listing made meanwhile may miss a file being renamed. A hole
                # is real once every retry saw one and the last two listings are the same.
                now = [_ident(p) for p in [*backups, self.base]]
                if attempt < _ATTEMPTS - 1 or now != before:
                    before = now
                    time.sleep(0.001 * (attempt + 1))
                    continue
            paths = [*backups, self.base]
            opened: list[_Open] = []
            try:
                for p in paths:
                    try:
                        opened.append(_Open.of(p))
                    except FileNotFoundError:
                        if p != self.base:
                            raise
                if all(_ident(p) == f.ident for p, f in zip(paths, opened, strict=False)):
                    if count:
                        self._tell_hole(missing, count)
                    return opened
            except FileNotFoundError:
                pass
            for f in opened:
                f.handle.close()
        return []  # renamed under us twenty times in a row: try again at the next poll

    def _tell_hole(self, missing: tuple[int, ...], count: int) -> None:
        """A hole that outlasted every retry is real: said once (it moves up with each
        rotation until it passes the last backup, and is the same loss)."""
        if not self._hole_told and self.on_hole is not None:
            self._hole_told = True
            self.on_hole(self.base, missing, count)


def _missing(base: Path, backups: list[Path]) -> tuple[tuple[int, ...], int]:
    """The numbers missing for the backups to be exactly ``base.N`` … ``base.1``: the
    first _SHOWN of them, and how many in all (a stray ``x.jsonl.99999999`` makes that
    99999998, counted, not listed)."""
    numbers = {int(p.name[len(base.name) + 1 :]) for p in backups}
    top = max(numbers, default=0)
    count = top - len(numbers)
    first = itertools.islice((n for n in range(1, top) if n not in numbers), _SHOWN)
    return (tuple(first) if count else ()), count


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
