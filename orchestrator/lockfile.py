"""One supervisor per team: an advisory ``flock`` on a file beside the database.

The kernel drops the lock when the holder dies (even by SIGKILL), so a crashed
supervisor never blocks the next ``up``. The file also records the holder's
pid for ``ps`` and error messages. It is opened without following links
(:mod:`orchestrator.safefs`): a link planted there would have the lock truncate
and write whatever it points at.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from orchestrator import safefs
from orchestrator.errors import SupervisorAlreadyRunning, SupervisorError, UnsafePath


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".supervisor")


class SupervisorLock:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        safefs.private_folder(self.path.parent, "queue folder")
        fd = safefs.open_private(self.path, os.O_RDWR | os.O_CREAT, "supervisor lock file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SupervisorAlreadyRunning(
                str(self.db_path), holder_pid(self.db_path) or 0
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk, a quota: say which file, not just errno
            os.close(fd)  # drops the flock: nothing of this start is left holding it
            full = " (the disk is full: free some space)" if exc.errno == errno.ENOSPC else ""
            raise SupervisorError(
                f"cannot write the supervisor's pid to {self.path}: {exc.strerror}{full}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def holder_pid(db_path: Path) -> int | None:
    """The pid of the running supervisor for this database, or None if none runs."""
    path = lock_path(db_path)
    try:
        fd = safefs.open_private(path, os.O_RDONLY, "supervisor lock file")
    except (FileNotFoundError, UnsafePath):  # a link there is no lock (acquire refuses it)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
