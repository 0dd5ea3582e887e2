"""The write hold never stalls the supervisor's event loop (orchestrator/write_hold.py).

The hold's stopping threads (a Write's hold, the watch for commands let through) scan
/proc and wait for stops to land; the loop-side calls (the policy hook's ``holding``,
``launch``, ``launched``, ``release``) took the same lock, so every agent's session, `ps`
and the control commands stood still for a whole scan, or up to a slow stop's 2 s wait.
Here a scan is made to wait inside, until the test lets it go; the loop-side calls must
return while it waits (real processes, real signals)."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import anyio
import pytest
from polling import until

from orchestrator import hold_procs, hold_stops, hold_watch, write_hold
from orchestrator.launcher import LAUNCHER_PREFIX, make_launcher
from orchestrator.supervision import launch

real_descendants = hold_stops.descendants
GIVE_UP_S = 5.0  # a scan no one lets go goes on after this (the old code: the test fails)

# A stand-in for a claude: it starts a `sleep` for each line it reads (its commands).
CLAUDE = """
import subprocess, sys
for line in sys.stdin:
    subprocess.Popen(["sleep", "600"])
"""


class Gate:
    """``write_hold.descendants`` that, while shut, waits inside the scan (inside the
    hold's lock) until the test opens it."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.opened = threading.Event()
        self.opened_in_time: bool | None = None  # whether the test opened it (not gave up)

    def __call__(self, roots: Iterable[int]) -> set[int]:
        roots = list(roots)
        if not self.inside.is_set():
            self.inside.set()
            self.opened_in_time = self.opened.wait(GIVE_UP_S)
        return real_descendants(roots)


@pytest.fixture
def claude() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", CLAUDE], stdin=subprocess.PIPE, text=True)
    yield proc
    for pid in real_descendants([proc.pid]):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)
    proc.kill()
    proc.communicate()


def command(proc: subprocess.Popen[str]) -> int:
    """Have the claude start a command; its pid."""
    before = real_descendants([proc.pid])
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    until(lambda: real_descendants([proc.pid]) - before, "the command started")
    (pid,) = real_descendants([proc.pid]) - before
    return pid


async def test_the_loop_side_calls_return_while_a_holds_scan_waits(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Write's hold (a thread) scanning: the loop's calls do not wait for its scan, and
    the agents it covers are held from its start (their new commands wait)."""
    held = command(claude)
    hold = write_hold.Hold()
    hold.hold("earlier", [], agents={"z": 1}, writer="y")  # another write, held before
    gate = Gate()
    monkeypatch.setattr(hold_stops, "descendants", gate)
    writer = threading.Thread(
        target=hold.hold, args=("w", [claude.pid]), kwargs={"agents": {"x": claude.pid}}
    )
    writer.start()
    try:
        await anyio.to_thread.run_sync(gate.inside.wait)
        # on the loop, while the scan waits inside
        assert hold.holding("x")
        hold.launch("call-1", "x")
        hold.launched("call-1")
        hold.release("earlier")
        assert not hold.holding("z")
        gate.opened.set()
        await anyio.to_thread.run_sync(writer.join)
        assert gate.opened_in_time, "a loop-side call waited for the scan"
        assert hold_procs.run_state(held) == "T"  # the hold itself still holds
    finally:
        gate.opened.set()
        writer.join()
        hold.release_all()
    until(lambda: hold_procs.run_state(held) == "S", "the command continued")


async def test_a_release_during_the_watchs_scan_continues_what_the_scan_stops(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch for a command let through (Hold.launch) scanning: the loop's release does
    not wait for it; what that scan stops after the release is continued as it ends."""
    monkeypatch.setattr(hold_watch, "LAUNCH_S", 3600.0)
    hold = write_hold.Hold()
    hold.hold("w", [claude.pid], None, 3600.0, agents={"x": claude.pid}, writer="y")
    gate = Gate()
    monkeypatch.setattr(hold_stops, "descendants", gate)
    try:
        hold.launch("call-1", "x")  # the watch starts
        # the command let through: the watch sees a new process, and its scan to stop
        # it waits inside
        late = await anyio.to_thread.run_sync(command, claude)
        await anyio.to_thread.run_sync(gate.inside.wait)
        assert hold.holding("x")
        hold.release("w")  # the write done, on the loop, mid-scan
        assert not hold.holding("x")
        gate.opened.set()
        until(lambda: not hold._watching, "the watch to end with the hold")
        assert gate.opened_in_time, "the release waited for the watch's scan"
        # the scan looked for the write released during it: what it stopped is continued
        until(lambda: hold_procs.run_state(late) == "S", "the late command continued")
        assert hold.held == set()
    finally:
        gate.opened.set()
        hold.release_all()


async def test_writes_released_on_the_loop_while_the_watch_scans_leave_nothing_stopped(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes one after another (each held in a thread, released on the loop) while the
    watch scans every millisecond and the claude starts commands: a release's continuing
    left to the scan under way is never lost."""
    monkeypatch.setattr(hold_watch, "LAUNCH_S", 3600.0)
    hold = write_hold.Hold()
    pids = [command(claude)]
    try:
        for n in range(30):
            key = f"w{n}"
            agents = {"x": claude.pid}
            await anyio.to_thread.run_sync(
                functools.partial(hold.hold, key, [claude.pid], agents=agents, writer="y")
            )
            hold.launch(f"call-{n}", "x")  # the watch looks under the claude
            if n % 5 == 0:
                pids.append(await anyio.to_thread.run_sync(command, claude))
            hold.release(key)
        assert hold.held == set()
        until(lambda: not hold._watching, "the watch to end with the holds")
        until(lambda: all(hold_procs.run_state(p) == "S" for p in pids), "the commands continued")
    finally:
        hold.release_all()


class ReleasedFirst:
    """``Hold._work`` whose first blocking take lets ``release`` run just before it: a
    write's release (its CLI's report, its timer, the team's end) arriving between the
    hold marking its key and the hold's stops."""

    def __init__(self, lock: threading.Lock, release: Callable[[], None]) -> None:
        self.lock = lock
        self.release_first: Callable[[], None] | None = release

    def acquire(self, blocking: bool = True) -> bool:
        if blocking and self.release_first is not None:
            release, self.release_first = self.release_first, None
            release()
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()


@pytest.mark.parametrize("how", ["release", "release_all"])
async def test_a_release_before_the_holds_stops_leaves_nothing_stopped(
    claude: subprocess.Popen[str], how: str
) -> None:
    """The key released (or every hold ended) after the hold marked it but before it
    took the stopping lock: the hold's stops came after the release had settled, so
    what they stopped was held for a key nobody would release (its timer was cancelled
    by the release): stopped until some other write's release, or for ever."""
    cmd = command(claude)
    hold = write_hold.Hold()
    end = functools.partial(hold.release, "w") if how == "release" else hold.release_all
    hold._work = ReleasedFirst(hold._work, end)  # type: ignore[assignment]
    try:
        await anyio.to_thread.run_sync(
            functools.partial(hold.hold, "w", [claude.pid], agents={"x": claude.pid})
        )
        assert hold.held == set()
        assert hold_procs.run_state(cmd) == "S", "a released write's hold stopped the command"
    finally:
        hold.release_all()


async def test_the_teams_end_does_not_wait_for_a_holds_scan(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team's end (``release_all``, run on the loop by release_launcher) while a
    Write's hold scans or waits for a slow stop: it returns without waiting for the scan
    (measured before: it waited, up to a slow stop's 2 s, with every other team's agents
    on the loop standing still); what the scan stops is continued as it ends."""
    held = command(claude)
    hold = write_hold.Hold()
    gate = Gate()
    monkeypatch.setattr(hold_stops, "descendants", gate)
    writer = threading.Thread(
        target=hold.hold, args=("w", [claude.pid]), kwargs={"agents": {"x": claude.pid}}
    )
    writer.start()
    try:
        await anyio.to_thread.run_sync(gate.inside.wait)
        hold.release_all()  # on the loop, while the scan waits inside
        assert hold.held == set()
        assert not hold.holding("x")
        gate.opened.set()
        await anyio.to_thread.run_sync(writer.join)
        assert gate.opened_in_time, "the team's end waited for the hold's scan"
        until(lambda: hold_procs.run_state(held) == "S", "the command continued")
    finally:
        gate.opened.set()
        writer.join()
        hold.release_all()


async def test_the_launcher_folder_stays_until_what_the_teams_end_continues_is(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The team's end (release_launcher) while a Write's hold scans: the launcher folder
    holds the hold's record, from which the watchman continues what a killed supervisor
    stopped. It was removed at once, before the scan stopped the command: a SIGKILL then
    left the command stopped for good. It stays until the command is continued."""
    launcher = make_launcher(tmp_path / f"{LAUNCHER_PREFIX}end")
    if launcher is None:
        pytest.skip("no bundled claude CLI")
    folder = tmp_path / f"{LAUNCHER_PREFIX}end"
    held = command(claude)

    class Ended:
        cli_path = launcher
        watchman = None
        write_hold = write_hold.Hold()

    hold = Ended.write_hold
    gate = Gate()
    monkeypatch.setattr(hold_stops, "descendants", gate)
    writer = threading.Thread(
        target=hold.hold,
        args=("w", [claude.pid], folder / write_hold.RECORD),
        kwargs={"agents": {"x": claude.pid}},
    )
    writer.start()
    try:
        await anyio.to_thread.run_sync(gate.inside.wait)
        launch.release_launcher(Ended())  # type: ignore[arg-type]
        assert folder.is_dir(), "the record's folder went while the hold's scan went on"
        gate.opened.set()
        await anyio.to_thread.run_sync(writer.join)
        until(lambda: not folder.exists(), "the launcher folder removed")
        assert hold_procs.run_state(held) == "S", "the team's end left the command stopped"
    finally:
        gate.opened.set()
        writer.join()
        hold.release_all()
