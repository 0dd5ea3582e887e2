"""The commands that could race a file tool held still while it is checked and writes.

The policy hook resolves a Write's path and checks it (orchestrator/confine.py); then the
CLI, which runs its file tools outside the sandbox, writes. Another agent's sandboxed
Bash in the same folder that swaps a folder for a symlink in between sends the write
wherever the symlink points: measured with the bundled CLI, 1 of 200 writes landed in a
folder outside the writer's (the CLI's own check at the write caught the rest), and 24 of
200 in the folder a third agent owns (tests/team/test_write_race.py).

So, from the hook's final check until the CLI reports the call done (``PostToolUse`` or
``PostToolUseFailure``), the processes the claudes started (their sandboxed commands,
whose pid namespaces keep them under their claude; the sandbox's proxies) are stopped
(SIGSTOP), waited for until the kernel says they are, and continued after: the claudes of
the agents whose commands could change a folder on the path (orchestrator/hold_scope.py);
each write's release continues what no other write still holds. A
write takes milliseconds; a call the CLI drops without either hook is released after
:data:`HOLD_MAX_S`. Only processes under a claude the supervisor started itself are
touched (a pid file names it; its parent must be this process).

The claudes themselves go on (the writer's must write, and a held one may be writing too):
a held agent's claude can start a new command while the hold is on (measured: a Bash
``touch`` started mid-hold ran at once). So the hold names the agents it covers
(:meth:`Hold.holding`), and the policy hook's ``PreToolUse`` for their Bash waits until no
other agent's write holds them (orchestrator/policy.py). A call let through just before a
hold began is started by the CLI later (measured: 80-670 ms after the hook's answer),
after the hold looked: until it is reported done, a hold on its agent looks for it every
millisecond (:meth:`Hold.launch`) and stops it as it appears (measured: it ran before).

A process already stopped when the hold finds it (the operator's SIGSTOP, a shell's
Ctrl-Z) is left as it is, and stays stopped after. The pids stopped are written (with
their start times) to :data:`RECORD` in the launcher folder before they are stopped: a
supervisor killed holding takes its claudes with it but not their sandboxed commands
(measured: 13 of 14 stayed stopped for ever), which its watchman, or the next `up`,
continues from the record. `down` ends every hold (:meth:`Hold.release_all`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import structlog

from orchestrator import procid

log = structlog.get_logger()

HOLD_MAX_S = 10.0  # a write the CLI never reports done is released after this
STOP_WAIT_S = 2.0  # how long a stop may take to land (a process in a system call)
ROUNDS = 5  # rescans: a process may fork as it is stopped
# A Bash call let through is started by the CLI this much later at most (measured 80-670
# ms from the hook's answer to its first process, load 11); until then, or until the CLI
# reports it done, a hold on its agent keeps looking for it (Hold.launch).
LAUNCH_S = HOLD_MAX_S
WATCH_S = 0.001  # how often a hold looks for a command being started
RECORD = "held"  # in the launcher folder: what is held, for the watchman (see Hold.hold)


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


def _parent(pid: str) -> int | None:
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
        if name.isdigit() and (ppid := _parent(name)) is not None:
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
            if (parent := _parent(str(pid))) is not None:
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


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "X"


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


def _write_record(record: Path, stopped: dict[int, int | None]) -> None:
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


class Hold:
    """The team's hold: keys (tool use ids) held, and the processes stopped for them. One
    per supervisor (its ``write_hold``): two teams in one process hold their own.

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
        self._born: dict[int, int | None] = {}  # each claude covered -> its start time
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

    def hold(
        self,
        key: str,
        clis: Iterable[int],
        record: Path | None = None,
        max_s: float = HOLD_MAX_S,
        *,
        agents: Mapping[str, int] | None = None,
        writer: str = "",
    ) -> int:
        """Stop what ``clis`` started (again: new ones since) and keep it stopped until
        ``key`` is released, or ``max_s`` has passed; the number of processes held. The
        pids stopped are written to ``record`` first (what a killed supervisor leaves).
        ``agents`` (name -> claude, of ``clis``) are :meth:`holding` from now on, but not
        for the ``writer``'s own calls; a command one of them was let start
        (:meth:`launch`) is stopped as it appears. Blocks (a thread's call, not the loop's)."""
        clis = list(clis)
        # who each claude is now (the watch checks, Hold._watch): a live claude of ours
        born = {cli: procid.start_ticks(cli) for cli in (agents or {}).values()}
        timer = threading.Timer(max_s, self._expire, (key, max_s))
        timer.daemon = True
        with self._state:  # held from now on: the agents' new commands wait (holding)
            self._keys.add(key)
            self._covers.setdefault(key, {}).update(agents or {})
            self._born.update(born)
            self._writers.setdefault(key, writer)
            if (old := self._timers.get(key)) is not None:
                old.cancel()
            self._timers[key] = timer
        self._work.acquire()
        try:
            # Released meanwhile (its CLI's report, its timer, the team's end), before we
            # took _work: that release settled already, and what we stopped now would be
            # held for a key nobody releases (its timer cancelled). A release from here
            # on finds _work taken and leaves its continuing to us (Hold._work_done).
            with self._state:
                live = key in self._keys
            if live:
                if record is not None:
                    self._records.add(record)
                self._stop_under(clis, {key})
            held = len(self._stopped)
        finally:
            self._work_done()
        if live:
            timer.start()  # counted from the end of the stops, not their start
        with self._state:
            if self._launching_clis() and not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="write-hold-watch", daemon=True).start()
        return held

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
            already = {p for p in fresh if _state(p) in ("T", "t")}
            self._left |= already
            mine = fresh - already
            for pid in mine:
                self._stopped[pid] = procid.start_ticks(pid)
                self._needs[pid] = set(keys)
            if mine:
                for record in self._records:
                    _write_record(record, self._stopped)
            for pid in mine:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            self._until_stopped(mine)

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

    def _launching_clis(self, checked: bool = True) -> dict[int, set[str]]:
        """The claudes held that are starting a command, each with the keys that hold it
        (under ``_state``); ``checked``: only those still the claude the hold saw."""
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
        for cli in list(out) if checked else []:
            if self._born.get(cli) is None or procid.start_ticks(cli) != self._born[cli]:
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
                        clis = self._launching_clis(checked=False)
                        if not clis:
                            self._watching = False
                            return
                    # What the holds found is stopped (Hold.hold): only a process
                    # started since is looked for; stopped at once, then whole scans
                    # look for what it started meanwhile. (A claude that ended, or its
                    # pid reused: a change, so the check is here.)
                    if processes.changed():
                        with self._state:
                            clis = self._launching_clis()
                            if not clis:
                                self._watching = False
                                return
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

    def _expire(self, key: str, after_s: float) -> None:
        with self._state:
            held = key in self._keys
        if held:
            log.warning("write_hold_expired", key=key, after_s=after_s)
            self.release(key)

    def release(self, key: str) -> None:
        """``key`` done: what no other key holds is continued (everything, once no key is
        held). A key not held (released already, or its timer after the CLI's report)
        changes nothing. Never waits for a scan or a stop: if one is under way, it
        continues what this release lets go as it ends (:meth:`_work_done`)."""
        with self._state:
            if key not in self._keys:
                return
            self._keys.discard(key)
            self._covers.pop(key, None)
            self._writers.pop(key, None)
            self._forget_born()
            timer = self._timers.pop(key, None)
            self._unsettled = True
        if timer is not None:
            timer.cancel()
        if self._work.acquire(blocking=False):
            self._settle()
            self._work_done()

    def release_all(self) -> None:
        """The team's end (`down`, a stop): nothing stays stopped, whatever is held. Never
        waits (the team's end runs on the loop, which other teams' agents share; measured:
        it waited for a scan, or up to a slow stop's 2 s): a scan or stop under way
        continues what it stops as it ends (:meth:`_work_done`), and a thread that is not
        a daemon waits for it, so the process does not exit with them stopped."""
        with self._state:
            self._keys.clear()
            self._covers.clear()
            self._writers.clear()
            self._born.clear()
            timers = list(self._timers.values())
            self._timers.clear()
            self._unsettled = True
        for timer in timers:
            timer.cancel()
        if self._work.acquire(blocking=False):
            self._settle()
            self._work_done()
        else:
            threading.Thread(target=self._settled, name="write-hold-end").start()

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
                _write_record(record, self._stopped)

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

    def _forget_born(self) -> None:
        """Drop the start times of claudes no key covers (under ``_state``)."""
        covered = {cli for agents in self._covers.values() for cli in agents.values()}
        for cli in [c for c in self._born if c not in covered]:
            del self._born[cli]

    def holding(self, agent: str, caller: str | None = None) -> bool:
        """Whether a write holds ``agent``: a command it starts now would run while that
        write is checked and made. ``caller`` (the agent, or ``agent/subagent id``) is
        not held by its own writes: it makes its calls one at a time."""
        caller = agent if caller is None else caller
        with self._state:
            return any(
                agent in agents and self._writers.get(key) != caller
                for key, agents in self._covers.items()
            )

    @property
    def held(self) -> set[str]:
        with self._state:
            return set(self._keys)
