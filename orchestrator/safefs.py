"""Opening the team's own files (queue, bells, lock, logs) without being tricked.

A folder that another user can write lets that user plant a symbolic link
under a name we are about to open (``team.db-wake`` -> ``/etc/passwd``), and we
would write through it. So:

- a folder we write in must belong to us (or root) and be writable by nobody
  else: no other write bit, and no group write bit unless the group is our
  user private group (umask 002 systems); sticky (``/tmp``-like) or not,
  because a sticky folder still lets others create the names we have not
  created yet.
  Such a folder is refused with an error that names it and says what to do;
  its mode is never changed behind the owner's back. A folder we create is
  0700.
- a file is opened with ``O_NOFOLLOW`` (a link in the last component fails),
  ``O_NONBLOCK`` (a FIFO planted there cannot hang the open), and the opened
  descriptor is checked: a regular file, owned by us.

Only the folder itself is checked, not its ancestors (a folder whose parent
others can write could be swapped between the check and the open; put the
team under a home or project folder, as ``queue/`` and ``logs/`` are by default).
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import stat
from pathlib import Path

from orchestrator.errors import UnsafePath


def check_folder(folder: Path, what: str) -> None:
    """Refuse a folder that another user could write in (or that is not a folder)."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise UnsafePath(str(folder), what, "does not exist") from None
    except OSError as exc:
        raise UnsafePath(str(folder), what, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(str(folder), what, "is not a folder")
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafePath(
            str(folder),
            what,
            f"belongs to another user (uid {st.st_uid}), who could plant links in it; "
            "use a folder of your own",
        )
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and not _own_group(st.st_gid)):
        sticky = (
            "; sticky like /tmp, which still lets them create names in it"
            if (st.st_mode & stat.S_ISVTX)
            else ""
        )
        raise UnsafePath(
            str(folder),
            what,
            f"other users can write this folder (mode {stat.S_IMODE(st.st_mode):04o}{sticky}), "
            "so they could plant links to files we would then overwrite. Use a folder "
            f"only you can write (e.g. a subfolder; octy-orchestrate creates it 0700), or "
            f"`chmod go-w {folder}` if it is yours",
        )


def _own_group(gid: int) -> bool:
    """A user private group (Debian/Ubuntu/Fedora give each user one, and umask 002 makes
    folders group-writable): named like us, our primary group, no other member."""
    try:
        user = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return (
        gid == user.pw_gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}
    )


def private_folder(folder: Path, what: str) -> None:
    """Create ``folder`` 0700 (and missing parents) or check that an existing one is
    safe (:func:`check_folder`). An existing folder's mode is left as it is."""
    if not folder.exists():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UnsafePath(str(folder), what, f"cannot be created ({exc.strerror})") from None
    check_folder(folder, what)


def open_private(path: Path, flags: int, what: str, *, mode: int = 0o600) -> int:
    """``os.open`` that follows no link at ``path`` and returns a descriptor only for a
    regular file owned by us. ``OSError`` other than a link is raised as is."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(str(path), what, _LINK) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(str(path), what, "is not a regular file; move it aside")
        if st.st_uid != os.geteuid():
            raise UnsafePath(
                str(path), what, f"belongs to another user (uid {st.st_uid}); move it aside"
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_not_link(path: Path, what: str) -> None:
    """For files another library opens by name (SQLite's database, -wal and -shm): refuse
    a link or a non-regular file at ``path``; a missing file is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(str(path), what, _LINK)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(str(path), what, "is not a regular file; move it aside")


_LINK = (
    "is a symbolic link, which is never followed here (someone could point it at a file "
    "we would then overwrite); pass the real path, or remove the link"
)
