"""Minimal Linux inotify binding through ctypes (no dependency).

Only what the change feed needs: watch one directory, drain events without
blocking, tell which of a few file names they touched.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from pathlib import Path
from typing import Final

IN_MODIFY: Final = 0x00000002
IN_CLOSE_WRITE: Final = 0x00000008
IN_MOVED_TO: Final = 0x00000080
IN_CREATE: Final = 0x00000100
IN_Q_OVERFLOW: Final = 0x00004000
IN_ONLYDIR: Final = 0x01000000
IN_NONBLOCK: Final = os.O_NONBLOCK
IN_CLOEXEC: Final = 0o2000000

WATCH_MASK: Final = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR
_EVENT: Final = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name


class InotifyUnavailable(OSError):
    """Not Linux, or the kernel refused (instance or watch limit reached)."""


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise InotifyUnavailable(errno.ENOSYS, "inotify is Linux-only")
    return ctypes.CDLL(None, use_errno=True)


class DirectoryWatch:
    """An inotify instance that can watch one directory for writes to some of its files.

    The watch itself is switched on and off (:meth:`start` / :meth:`stop`) so a
    process pays for wake-ups only while something in it is waiting.
    """

    def __init__(self, directory: Path, names: frozenset[str]) -> None:
        self._libc = _libc()
        self._path = os.fsencode(directory)
        self._names = {n.encode() for n in names}
        self._wd = -1
        fd = int(self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self.start()  # fail now (watch limit, missing folder) rather than at the first wait
        self.stop()

    @property
    def on(self) -> bool:
        return self._wd >= 0

    def start(self) -> None:
        if self._wd >= 0:
            return
        wd = int(self._libc.inotify_add_watch(self.fd, self._path, WATCH_MASK))
        if wd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_add_watch({self._path!r}): {os.strerror(err)}")
        self._wd = wd

    def stop(self) -> None:
        if self._wd >= 0:
            self._libc.inotify_rm_watch(self.fd, self._wd)
            self._wd = -1

    def drain(self) -> list[str]:
        """Read every queued event; the watched names they concern, in order.
        A lost-events overflow is reported as the name ``"*"``."""
        hits: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return hits
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    hits.append("*")
                elif name in self._names:
                    hits.append(name.decode())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
