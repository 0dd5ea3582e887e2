"""The launch watch (orchestrator/write_hold.py): a Bash call the policy hook let through
just before a hold began is started by the CLI later (measured 80-670 ms from the hook's
answer to its first process, load 11), after the hold looked. Until the CLI reports it
done, a hold on its agent looks for it every millisecond and stops it as it appears.
A look costs little (:class:`Processes`): measured, a whole /proc scan each look had
taken half a core for as long as the hold lasted (docs/benchmarks.md)."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterable

import structlog

from orchestrator import procid
from orchestrator.hold_procs import parent_of
from orchestrator.hold_stops import Stops

log = structlog.get_logger()

# A Bash call let through is started by the CLI this much later at most; until then, or
# until the CLI reports it done, a hold on its agent keeps looking for it (as long as a
# write may be held: write_hold.HOLD_MAX_S).
LAUNCH_S = 10.0
WATCH_S = 0.001  # how often a hold looks for a command being started


def open_claudes(clis: Iterable[int]) -> dict[int, int]:
    """A pidfd of each claude in ``clis`` that is still the process its pid named as the
    hold began (its start time the same after the pidfd's opening as before); none for a
    claude gone or replaced."""
    out: dict[int, int] = {}
    for cli in clis:
        start = procid.start_ticks(cli)
        try:
            fd = os.pidfd_open(cli)
        except OSError:
            continue
        if start is None or procid.start_ticks(cli) != start:
            os.close(fd)
            continue
        out[cli] = fd
    return out


def ended(pidfds: Iterable[int]) -> set[int]:
    """The pidfds of ``pidfds`` whose process has ended (a pidfd polls ready from its exit
    on, before its reaping): one system call, no wait. poll, not select: a supervisor's
    descriptors may number past select's 1024."""
    fds = list(pidfds)
    if not fds:
        return set()
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    try:
        return {fd for fd, _ in poller.poll(0)}
    except OSError:  # not expected of a pidfd; as if ended (the watch stops looking)
        return set(fds)


class Processes:
    """The machine's processes by parent, kept for the watch (Hold._watch), which looks
    every millisecond: measured, a whole /proc scan each look took half a core for as
    long as a hold covered a claude starting a command. Here /proc is listed only when
    a process was started or reaped since the last look, and a parent is read once: again
    only when the process it had ends (its children are given to another)."""

    def __init__(self) -> None:
        self._last: bytes | None = None
        self._parents: dict[int, int] = {}  # pid -> its parent
        try:  # read again from its start at each look (a system call, not three)
            self._loadavg: int | None = os.open("/proc/loadavg", os.O_RDONLY)
        except OSError:
            self._loadavg = None  # then every look lists /proc

    def close(self) -> None:
        if self._loadavg is not None:
            os.close(self._loadavg)
            self._loadavg = None

    def _tasks(self) -> bytes | None:
        """How many processes and threads there are, and the pid the kernel gave last, in
        this pid namespace (the end of /proc/loadavg; a sandbox's processes count here
        too): unchanged since a look, none was started or reaped in between (pids wrap
        only after ``pid_max`` more)."""
        if self._loadavg is None:
            return None
        try:
            return os.pread(self._loadavg, 256, 0).rsplit(b"/", 1)[1]
        except (OSError, IndexError):
            return None

    def changed(self) -> bool:
        """Whether a process may have started or ended since the last call (then
        brought up to date). The first call reads every process."""
        tasks = self._tasks()  # before the listing: one started after changes it again
        if tasks is not None and tasks == self._last:
            return False
        self._last = tasks
        try:
            pids = {int(n) for n in os.listdir("/proc") if n.isdigit()}
        except OSError:
            pids = set()
        gone = self._parents.keys() - pids
        for pid in gone:
            del self._parents[pid]
        read = pids - self._parents.keys()
        if gone:
            read |= {pid for pid, parent in self._parents.items() if parent in gone}
        for pid in read:
            if (parent := parent_of(str(pid))) is not None:
                self._parents[pid] = parent
            else:
                self._parents.pop(pid, None)
        return True

    def under(self, root: int) -> set[int]:
        """Every process under ``root`` as of the last :meth:`changed`."""
        children: dict[int, list[int]] = {}
        for pid, parent in self._parents.items():
            children.setdefault(parent, []).append(pid)
        found: set[int] = set()
        todo = list(children.get(root, []))
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo += children.get(pid, [])
        return found


class LaunchWatch(Stops):
    """The calls let through, and the thread that looks for them while held."""

    def launch(self, call: str, agent: str) -> None:
        """``agent``'s command call ``call`` let through: the CLI starts it later (up to
        :data:`LAUNCH_S`), maybe after a hold on the agent has looked, so until it is
        :meth:`launched` holds keep looking for it."""
        with self._state:
            self._launches[call] = (agent, time.monotonic() + LAUNCH_S)
            if self._keys and not self._watching and self._launching_clis():
                self._watching = True
                threading.Thread(target=self._watch, name="write-hold-watch", daemon=True).start()

    def launched(self, call: str) -> None:
        """The CLI reported ``call`` done (or failed)."""
        with self._state:
            self._launches.pop(call, None)

    def _launching_clis(self) -> dict[int, set[str]]:
        """The claudes held that are starting a command, each with the keys that hold it
        (under ``_state``), but those that ended."""
        now = time.monotonic()
        for call in [c for c, (_, until) in self._launches.items() if until < now]:
            del self._launches[call]
        starting = {agent for agent, _ in self._launches.values()}
        out: dict[int, set[str]] = {}
        for key, agents in self._covers.items():
            for agent, cli in agents.items():
                if agent in starting:
                    out.setdefault(cli, set()).add(key)
        # A claude that ended (its agent stopped or restarted while held) is not looked
        # under: nothing of it is left to start a command, and its pid, reused, would be
        # another process's (another team's claude: its commands stopped for a write
        # that is not its). Its agent's new claude waits at the hook (Hold.holding).
        # Seen through its pidfd at each look, as it dies: not at its reaping, nor only
        # when a look sees /proc change (a zombie keeps its start time, and an exit alone
        # changes nothing in /proc/loadavg).
        fds = {cli: self._alive.get(cli) for cli in out}
        gone = ended(fd for fd in fds.values() if fd is not None)
        for cli, fd in fds.items():
            if fd is None or fd in gone:
                del out[cli]
        return out

    def _watch(self) -> None:
        """While a hold covers a claude starting a command: stop what it starts. Ends with
        the holds or the launches, and on an error (logged): a thread that died with
        ``_watching`` still set would have kept every later hold from watching."""
        processes = Processes()
        try:
            while True:
                self._work.acquire()
                try:
                    # looked at under _work: a key released since is continued after
                    # this scan (Hold._work_done), what it stops included
                    with self._state:
                        clis = self._launching_clis()
                        if not clis:
                            self._watching = False
                            return
                    # What the holds found is stopped (Hold.hold): only a process
                    # started since is looked for; stopped at once, then whole scans
                    # look for what it started meanwhile.
                    if processes.changed():
                        for cli, keys in clis.items():
                            under = processes.under(cli)
                            if under - self._stopped.keys() - self._left:
                                self._stop_under([cli], keys, under)
                finally:
                    self._work_done()
                time.sleep(WATCH_S)
        except BaseException as exc:
            with self._state:
                self._watching = False
            log.error("write_hold_watch_failed", error=repr(exc))
            raise
        finally:
            processes.close()
