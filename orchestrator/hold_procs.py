"""The team's processes as /proc shows them, for the write hold (orchestrator/write_hold.py):
the team's claudes (from the launcher's pid files), everything under them (a whole scan
reads every process's parent), and a process's state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator import procid


def team_clis(pids_folder: Path | None) -> list[int]:
    """The team's claude processes: the pids the launcher wrote in ``pids_folder`` whose
    parent is this process (a pid file is only a number; the supervisor started these)."""
    return list(team_agents(pids_folder).values())


def team_agents(pids_folder: Path | None) -> dict[str, int]:
    """:func:`team_clis` by agent (a pid file is named after its agent)."""
    if pids_folder is None:
        return {}
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(pids_folder):
            with contextlib.suppress(OSError, ValueError):
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as f:
                    pid = int(f.read(32).strip())
                if 1 < pid < 2**31 and procid.parent(pid) == os.getpid():
                    found[entry.name] = pid
    return found


def parent_of(pid: str) -> int | None:
    """procid.parent, lean: it runs for every process on the machine, twice a Write
    (half the CPU of a decoded read of the whole line, measured)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return int(data[data.rindex(b")") + 2 :].split(b" ", 2)[1])
    except (ValueError, IndexError):
        return None


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (ppid := parent_of(name)) is not None:
            out.setdefault(ppid, []).append(int(name))
    return out


def descendants(roots: Iterable[int]) -> set[int]:
    """Every process under ``roots`` (not the roots themselves)."""
    roots = list(roots)
    if not roots:  # a Write that holds no one scans nothing
        return set()
    children, found = _children(), set()
    todo = [c for r in roots for c in children.get(r, [])]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def run_state(pid: int) -> str:
    """A process's state letter in /proc (``T`` stopped, ``X`` gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "X"
