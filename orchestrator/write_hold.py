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

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import structlog

from orchestrator.hold_procs import descendants, team_agents, team_clis
from orchestrator.hold_watch import LaunchWatch, ended, open_claudes

__all__ = ["HOLD_MAX_S", "RECORD", "Hold", "descendants", "team_agents", "team_clis"]

log = structlog.get_logger()

HOLD_MAX_S = 10.0  # a write the CLI never reports done is released after this
RECORD = "held"  # in the launcher folder: what is held, for the watchman (see Hold.hold)


class Hold(LaunchWatch):
    """The team's hold: keys (tool use ids) held, and the processes stopped for them. One
    per supervisor (its ``write_hold``): two teams in one process hold their own. What is
    stopped and continued: orchestrator/hold_stops.py; the launch watch:
    orchestrator/hold_watch.py; /proc: orchestrator/hold_procs.py."""

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
        covered = list((agents or {}).values())
        # Each claude as it is now, for the watch (hold_watch.open_claudes): a pidfd opened
        # once, not at every Write (Hold._keep_claudes).
        with self._state:
            known = {cli for cli in covered if cli in self._alive}
        opened = open_claudes(cli for cli in covered if cli not in known)
        timer = threading.Timer(max_s, self._expire, (key, max_s))
        timer.daemon = True
        with self._state:  # held from now on: the agents' new commands wait (holding)
            self._keys.add(key)
            self._covers.setdefault(key, {}).update(agents or {})
            missing = self._keep_claudes(covered, opened)
            self._writers.setdefault(key, writer)
            if (old := self._timers.get(key)) is not None:
                old.cancel()
            self._timers[key] = timer
        if missing:  # known, then ended meanwhile: its pid may be a new claude's
            more = open_claudes(missing)
            with self._state:
                self._keep_claudes(missing, more)
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
            timer = self._timers.pop(key, None)
            self._unsettled = True
        if timer is not None:
            timer.cancel()
        if self._work.acquire(blocking=False):
            self._settle()
            self._work_done()

    def release_all(self, then: Callable[[], None] | None = None) -> None:
        """The team's end (`down`, a stop): nothing stays stopped, whatever is held. Never
        waits (the team's end runs on the loop, which other teams' agents share; measured:
        it waited for a scan, or up to a slow stop's 2 s): a scan or stop under way
        continues what it stops as it ends (:meth:`_work_done`), and a thread that is not
        a daemon waits for it, so the process does not exit with them stopped. ``then``
        runs once that is done (here, or in that thread): the launcher folder's removal,
        which takes the record a watchman continues from if this process is killed
        meanwhile (found by review6: removed at once, a SIGKILL during the stop left
        what it stopped stopped)."""
        with self._state:
            self._keys.clear()
            self._covers.clear()
            self._writers.clear()
            for fd in self._alive.values():
                os.close(fd)
            self._alive.clear()
            timers = list(self._timers.values())
            self._timers.clear()
            self._unsettled = True
        for timer in timers:
            timer.cancel()
        if self._work.acquire(blocking=False):
            self._settle()
            self._work_done()
            if then is not None:
                then()
        else:
            threading.Thread(target=self._end, args=(then,), name="write-hold-end").start()

    def _end(self, then: Callable[[], None] | None) -> None:
        self._settled()
        if then is not None:
            try:
                then()
            except Exception:  # a thread's: said, not raised into nowhere
                log.exception("write_hold_end_failed")

    def _keep_claudes(self, clis: list[int], opened: dict[int, int]) -> list[int]:
        """Keep a pidfd of each claude of ``clis`` (under ``_state``): the one kept already
        while its claude lives, else the one ``opened``; the claudes with neither (to
        open again). Kept across holds (a Write's pidfds cost 35 us of CPU per agent
        opened afresh, measured); those of claudes that ended are closed here."""
        dead = ended(self._alive.values())
        for cli in [c for c, fd in self._alive.items() if fd in dead]:
            os.close(self._alive.pop(cli))
        missing = []
        for cli in dict.fromkeys(clis):
            fd = opened.pop(cli, None)
            if cli in self._alive:
                if fd is not None:
                    os.close(fd)
            elif fd is not None:
                self._alive[cli] = fd
            else:
                missing.append(cli)
        for fd in opened.values():
            os.close(fd)
        return missing

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
