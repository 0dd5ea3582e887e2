"""Reading a file someone else may have put in place: regular files only, up to a limit.

Opened non-blocking, so a FIFO cannot hang the open; anything but a regular file
(FIFO, socket, device such as /dev/zero) is refused before a byte is read. Kept out
of the roster package so that a verb can read a roster's bytes without importing
the roster's parser (orchestrator/cli/roster_cache.py).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileRefused(Exception):
    """A file the roster names cannot be used; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Opened non-blocking, so a FIFO cannot hang the open; anything but a
    regular file (FIFO, socket, device such as /dev/zero) is refused before
    a byte is read; the read stops one byte past the limit, so a file that
    grows while it is read cannot exhaust memory either. Raises FileRefused,
    or OSError (FileNotFoundError, PermissionError...) from the open itself.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path} is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise FileRefused(f"{path} is {_size(info.st_size)}; the limit is {_size(limit)}")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise FileRefused(f"{path} is over the limit of {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"
