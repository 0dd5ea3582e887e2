"""Stopping what the team's claudes started, and continuing it (orchestrator/write_hold.py):
each pid stopped is written to the record first, waited for until the kernel shows it
stopped, held for the keys that need it, and continued (checked through a pidfd to be the
same process) when none does any more; a release that finds a scan under way leaves its
continuing to the scan (:meth:`Stops._work_done`)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import structlog

from orchestrator import procid
from orchestrator.hold_procs import descendants, run_state

log = structlog.get_logger()

STOP_WAIT_S = 2.0  # how long a stop may take to land (a process in a system call)
ROUNDS = 5  # rescans: a process may fork as it is stopped


def continue_if_same(pid: int, start: int | None) -> None:
    """SIGCONT ``pid`` if it is still the process that started at ``start`` (checked
    through a pidfd: the pid cannot be reused between the check and the signal)."""
    if start is None:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if procid.start_ticks(pid) == start:
            signal.pidfd_send_signal(fd, signal.SIGCONT)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_record(record: Path, stopped: dict[int, int | None]) -> None:
    """``pid start`` a line, for the watchman to continue if this process dies holding
    them (orchestrator/watchman.py): written whole (a rename) before the stops."""
    text = "".join(f"{pid} {start}\n" for pid, start in stopped.items() if start is not None)
    tmp = record.with_name(record.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, record)
    except OSError as exc:  # the hold still holds; only a killed supervisor's cleanup misses it
        log.warning("write_hold_not_recorded", path=str(record), error=str(exc))


class Stops:
    """What a hold stopped, and its continuing: the state a hold (orchestrator/write_hold.py)
    and its launch watch (orchestrator/hold_watch.py) share.

    Two locks. ``_state`` guards what the event loop reads and changes (the keys, whom
    they cover, the launches): taken only for dict updates, never across a ``/proc`` scan,
    a stop or a wait. ``_work`` guards what is stopped (``_stopped``, ``_needs``, ``_left``,
    the records): taken by the stopping threads (:meth:`hold`, the watch) for their scans
    and waits. The loop-side calls (:meth:`holding`, :meth:`launch`, :meth:`launched`,
    :meth:`release`) never wait for ``_work``: a release that finds it taken leaves its
    continuing to whoever holds it (:meth:`_work_done`), measured: the watch's scans and a
    slow stop's 2 s wait had stalled every agent's session on the loop."""

    def __init__(self) -> None:
        self._state = threading.Lock()
        self._work = threading.Lock()
        self._keys: set[str] = set()
        # The agents each key holds, and who writes (the agent, or ``agent/subagent id``):
        # their new commands wait (:meth:`holding`), the writer's own calls do not.
        self._covers: dict[str, dict[str, int]] = {}  # key -> agent -> its claude
        # Each claude covered -> a pidfd of it (hold_watch.open_claudes): readable once it
        # has ended, zombie or not, and never another process's, whatever its pid becomes.
        self._alive: dict[int, int] = {}
        self._writers: dict[str, str] = {}
        # Command calls let through and not reported done: call -> (agent, until when
        # the CLI may still start it); whether a thread looks for them (Hold._watch).
        self._launches: dict[str, tuple[str, float]] = {}
        self._watching = False
        # A release's continuing not done yet: ``_work`` was taken (Hold._work_done).
        self._unsettled = False
        # Each agent's folder as its session was given it (session_options.with_policy):
        # the claude's working folder, which its sandbox makes writable (hold_scope.areas).
        self.folders: dict[str, Path] = {}
        self._stopped: dict[int, int | None] = {}  # pid -> its start time
        # The keys each stopped pid is held for: a write's release continues what no other
        # write still needs (holds are scoped: hold_scope), not wait for every write.
        self._needs: dict[int, set[str]] = {}
        # Stopped before the hold (the operator's SIGSTOP, a shell's Ctrl-Z): not ours to
        # continue at the release.
        self._left: set[int] = set()
        self._timers: dict[str, threading.Timer] = {}
        self._records: set[Path] = set()

    def _stop_under(self, clis: list[int], keys: set[str], first: set[int] | None = None) -> None:
        """Stop what ``clis`` started, for ``keys`` (under ``_work``); ``first``: what is
        under them, known already (stopped before a whole scan looks for the rest)."""
        for _ in range(ROUNDS):
            under, first = (descendants(clis) if first is None else first), None
            for pid in under & self._stopped.keys():
                self._needs[pid] |= keys
            fresh = under - self._stopped.keys() - self._left
            if not fresh:
                break
            already = {p for p in fresh if run_state(p) in ("T", "t")}
            self._left |= already
            mine = fresh - already
            for pid in mine:
                self._stopped[pid] = procid.start_ticks(pid)
                self._needs[pid] = set(keys)
            if mine:
                for record in self._records:
                    write_record(record, self._stopped)
            for pid in mine:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            self._until_stopped(mine)

    def _until_stopped(self, pids: set[int]) -> None:
        """A stop is delivered, not done, when kill returns: a process running on another
        core goes on for a moment. Wait until the kernel shows each stopped (or gone)."""
        deadline = time.monotonic() + STOP_WAIT_S
        waiting = set(pids)
        while waiting and time.monotonic() < deadline:
            waiting = {p for p in waiting if run_state(p) not in ("T", "t", "Z", "X")}
            if waiting:
                time.sleep(0.0005)
        if waiting:
            log.warning("write_hold_not_stopped", pids=sorted(waiting))

    def _settled(self) -> None:
        """Wait for the scan under way, then continue what is not held (it has, unless a
        hold began since)."""
        self._work.acquire()
        self._settle()
        self._work_done()

    def _work_done(self) -> None:
        """Let ``_work`` go; then do a release's continuing left while it was taken (a
        release that finds ``_work`` taken marks it, and the one holding it looks after
        letting go: either it sees the mark, or the release finds ``_work`` free)."""
        while True:
            self._work.release()
            with self._state:
                unsettled = self._unsettled
            if not unsettled or not self._work.acquire(blocking=False):
                return
            self._settle()

    def _settle(self) -> None:
        """Continue what no key holds any more (under ``_work``)."""
        with self._state:
            self._unsettled = False
            keys = set(self._keys)
        if not keys:
            self._let_go()
            return
        done = []
        for pid, needs in self._needs.items():
            needs.intersection_update(keys)
            if not needs:
                done.append(pid)
        for pid in done:
            continue_if_same(pid, self._stopped.pop(pid))
            del self._needs[pid]
        if done:  # then the record says what is still held (killed between: harmless)
            for record in self._records:
                write_record(record, self._stopped)

    def _let_go(self) -> None:
        """Continue what was stopped, then remove the record (in this order, under
        ``_work``: killed between the two, the watchman continues them again, harmlessly)."""
        for pid, start in self._stopped.items():
            continue_if_same(pid, start)
        self._stopped.clear()
        self._needs.clear()
        self._left.clear()
        for record in self._records:
            with contextlib.suppress(OSError):
                record.unlink()
        self._records.clear()
