"""Minimal Linux inotify binding through ctypes (no dependency).

Only what the change feed needs (see wakeup.py for why it is shaped so):

- a *bell* instance: one watch per bell file a waiter here cares about, plus a
  watch on the folder for files being created (a file watch follows one inode:
  a recreated file needs a new watch). A commit that rings another inbox's
  bell is not queued here at all, so it never wakes this process.
- a *WAL* instance: one watch on the database's WAL and main file, which every
  writer touches, bell or not (plain SQL from another program). The kernel
  merges repeated identical events while nobody reads them, so a reader that
  looks at it only now and then drains one event, however busy the database.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import ctypes

IN_MODIFY: Final = 0x00000002
IN_MOVED_TO: Final = 0x00000080
IN_CREATE: Final = 0x00000100
IN_IGNORED: Final = 0x00008000
IN_Q_OVERFLOW: Final = 0x00004000
IN_ONLYDIR: Final = 0x01000000
IN_DONT_FOLLOW: Final = 0x02000000
IN_NONBLOCK: Final = os.O_NONBLOCK
IN_CLOEXEC: Final = 0o2000000

FILE_MASK: Final = IN_MODIFY | IN_DONT_FOLLOW  # never through a planted link
DIR_MASK: Final = IN_CREATE | IN_MOVED_TO | IN_ONLYDIR
_EVENT: Final = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name

OVERFLOW: Final = "*"
"""Reported by a drain when the kernel dropped events (assume anything changed)."""


class InotifyUnavailable(OSError):
    """Not Linux, or the kernel refused (instance or watch limit reached)."""


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise InotifyUnavailable(errno.ENOSYS, "inotify is Linux-only")
    import ctypes  # noqa: PLC0415 - only once something waits: `ps` and `send` never do

    return ctypes.CDLL(None, use_errno=True)


def _errno() -> int:
    import ctypes  # noqa: PLC0415 - loaded by _libc() already

    return ctypes.get_errno()


class _Instance:
    """One inotify file descriptor and its watches (wd -> file name; "" for the folder)."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._libc = libc
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            err = _errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self.wds: dict[int, str] = {}

    def add(self, path: bytes, name: str, mask: int) -> bool:
        """Watch ``path``; False when it does not exist (yet)."""
        wd = int(self._libc.inotify_add_watch(self.fd, path, mask))
        if wd < 0:
            err = _errno()
            if err == errno.ENOENT:
                return False
            raise InotifyUnavailable(err, f"inotify_add_watch({path!r}): {os.strerror(err)}")
        self.wds[wd] = name
        return True

    def remove(self, name: str) -> None:
        for wd in [wd for wd, n in list(self.wds.items()) if n == name]:
            self._libc.inotify_rm_watch(self.fd, wd)
            del self.wds[wd]

    def remove_all(self) -> None:
        for wd in list(self.wds):
            self._libc.inotify_rm_watch(self.fd, wd)
        self.wds.clear()

    def drain(self) -> list[tuple[str, bool]]:
        """Every queued event, in order: (file name, True if the folder reports it created)."""
        hits: list[tuple[str, bool]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return hits
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                offset = start + length
                if mask & IN_Q_OVERFLOW:
                    hits.append((OVERFLOW, False))
                elif mask & IN_IGNORED:  # the file went away: its watch is gone
                    self.wds.pop(wd, None)
                elif length:
                    name = data[start:offset].rstrip(b"\0").decode(errors="replace")
                    hits.append((name, True))
                elif wd in self.wds:
                    hits.append((self.wds[wd], False))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FeedWatch:
    """The two inotify instances of one database's change feed, switched on and off
    (:meth:`start` / :meth:`stop`) so a process pays for wake-ups only while something
    in it waits. Bells are watched one by one (:meth:`want`), as waiters need them."""

    def __init__(self, directory: Path, wal_names: frozenset[str]) -> None:
        libc = _libc()
        self._dir = os.fsencode(directory)
        self._wal_names = wal_names
        self.bells = _Instance(libc)
        try:
            self.wal = _Instance(libc)
        except InotifyUnavailable:
            self.bells.close()
            raise
        self._wanted: set[str] = set()
        self._on = False
        self.start()  # fail now (watch limit, missing folder) rather than at the first wait
        self.stop()

    @property
    def on(self) -> bool:
        return self._on

    def _path(self, name: str) -> bytes:
        return os.path.join(self._dir, os.fsencode(name))

    def start(self) -> None:
        if self._on:
            return
        # The folder first: a file created after this is reported, so none is missed.
        self.bells.add(self._dir, "", DIR_MASK)
        self._on = True
        for name in self._wal_names:
            self.wal.add(self._path(name), name, FILE_MASK)

    def stop(self) -> None:
        self.bells.remove_all()
        self.wal.remove_all()
        self._wanted.clear()
        self._on = False

    def want(self, name: str) -> None:
        """Watch the bell file ``name`` (while on; a missing file is watched once created)."""
        if name in self._wanted or not self._on:
            return
        self._wanted.add(name)
        self.bells.add(self._path(name), name, FILE_MASK)

    def unwant(self, name: str) -> None:
        self._wanted.discard(name)
        self.bells.remove(name)

    def created(self, name: str) -> bool:
        """A file appeared under ``name``: watch the new one if we watch that name.
        True when it is one of the database's own files (a change to report)."""
        if name in self._wanted:
            self.bells.remove(name)
            self.bells.add(self._path(name), name, FILE_MASK)
        if name in self._wal_names and self._on:
            self.wal.remove(name)
            self.wal.add(self._path(name), name, FILE_MASK)
            return True
        return False

    def close(self) -> None:
        self.bells.close()
        self.wal.close()
