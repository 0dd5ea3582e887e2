"""Every agent's commands held still while one agent's file tool is checked and writes.

The policy hook resolves a Write's path and checks it (orchestrator/confine.py); then the
CLI, which runs its file tools outside the sandbox, writes. Another agent's sandboxed
Bash in the same folder that swaps a folder for a symlink in between sends the write
wherever the symlink points: measured with the bundled CLI, 1 of 200 writes landed in a
folder outside the writer's (the CLI's own check at the write caught the rest), and 24 of
200 in the folder a third agent owns (tests/team/test_write_race.py).

So, from the hook's final check until the CLI reports the call done (``PostToolUse`` or
``PostToolUseFailure``), the processes the team's claudes started (their sandboxed
commands, whose pid namespaces keep them under their claude; the sandbox's proxies) are
stopped (SIGSTOP), waited for until the kernel says they are, and continued after. A
write takes milliseconds; a call the CLI drops without either hook is released after
:data:`HOLD_MAX_S`. Only processes under a claude the supervisor started itself are
touched (a pid file names it; its parent must be this process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from orchestrator import procid

log = structlog.get_logger()

HOLD_MAX_S = 10.0  # a write the CLI never reports done is released after this
STOP_WAIT_S = 2.0  # how long a stop may take to land (a process in a system call)
ROUNDS = 5  # rescans: a process may fork as it is stopped


def team_clis(pids_folder: Path | None) -> list[int]:
    """The team's claude processes: the pids the launcher wrote in ``pids_folder`` whose
    parent is this process (a pid file is only a number; the supervisor started these)."""
    if pids_folder is None:
        return []
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(pids_folder):
            with contextlib.suppress(OSError, ValueError):
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as f:
                    pid = int(f.read(32).strip())
                if 1 < pid < 2**31 and procid.parent(pid) == os.getpid():
                    found.append(pid)
    return found


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (ppid := procid.parent(int(entry.name))) is not None:
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(roots: Iterable[int]) -> set[int]:
    """Every process under ``roots`` (not the roots themselves)."""
    children, found = _children(), set()
    todo = [c for r in roots for c in children.get(r, [])]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "X"


class Hold:
    """The team-wide hold: keys (tool use ids) held, and the processes stopped for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._stopped: dict[int, int | None] = {}  # pid -> its start time

    def hold(self, key: str, clis: Iterable[int]) -> int:
        """Stop what ``clis`` started (again: new ones since) and keep it stopped until
        ``key`` is released; the number of processes held."""
        clis = list(clis)
        with self._lock:
            self._keys.add(key)
            for _ in range(ROUNDS):
                fresh = descendants(clis) - self._stopped.keys()
                if not fresh:
                    break
                for pid in fresh:
                    self._stopped[pid] = procid.start_ticks(pid)
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGSTOP)
                self._until_stopped(fresh)
            return len(self._stopped)

    def _until_stopped(self, pids: set[int]) -> None:
        """A stop is delivered, not done, when kill returns: a process running on another
        core goes on for a moment. Wait until the kernel shows each stopped (or gone)."""
        deadline = time.monotonic() + STOP_WAIT_S
        waiting = set(pids)
        while waiting and time.monotonic() < deadline:
            waiting = {p for p in waiting if _state(p) not in ("T", "t", "Z", "X")}
            if waiting:
                time.sleep(0.0005)
        if waiting:
            log.warning("write_hold_not_stopped", pids=sorted(waiting))

    def release(self, key: str) -> None:
        """``key`` done: once no key is held, everything stopped is continued."""
        with self._lock:
            self._keys.discard(key)
            if self._keys:
                return
            stopped, self._stopped = self._stopped, {}
        for pid, start in stopped.items():
            if start is not None and procid.start_ticks(pid) == start:  # not a reused pid
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)

    @property
    def held(self) -> set[str]:
        with self._lock:
            return set(self._keys)


TEAM = Hold()  # one per supervisor process: every agent's writes hold every agent's commands
