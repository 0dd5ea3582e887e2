"""write_hold: what the team's claudes started is stopped while a file tool writes, and
continued after; only under a process this one started (real processes, real signals).
What was stopped before stays stopped; overlapping holds, their timers and `down` resume
nothing another hold needs and leave nothing stopped; a supervisor killed while holding
leaves nothing stopped either (its watchman continues what it held)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from counting import COUNTER
from polling import until

from orchestrator import hold_procs, hold_watch, write_hold

# A stand-in for a claude: it starts two grandchildren that count in files, and waits
# (it exits when its stdin closes, as a claude does when its supervisor dies).
CLAUDE = """
import subprocess, sys
for count in sys.argv[2:]:
    subprocess.Popen([sys.executable, "-c", sys.argv[1], count], start_new_session=True)
sys.stdin.read()
"""

Claude = tuple[subprocess.Popen[bytes], list[Path]]


def kill_tree(root: int) -> None:
    for pid in write_hold.descendants([root]):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def start_claude(counts: list[Path]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAUDE, COUNTER, *map(str, counts)], stdin=subprocess.PIPE
    )
    until(lambda: all(read(c) > 0 for c in counts), "the counters running")
    return proc


def end_claude(proc: subprocess.Popen[bytes]) -> None:
    kill_tree(proc.pid)
    proc.kill()
    proc.communicate()


@pytest.fixture
def claude(tmp_path: Path) -> Iterator[Claude]:
    counts = [tmp_path / "count0", tmp_path / "count1"]
    proc = start_claude(counts)
    yield proc, counts
    end_claude(proc)


def read(count: Path) -> int:
    try:
        return int(count.read_text() or 0)
    except (OSError, ValueError):
        return 0


def counter_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The grandchildren, in the order of their counts (their argv names the file)."""
    pids = write_hold.descendants([proc.pid])
    return sorted(pids, key=lambda p: Path(f"/proc/{p}/cmdline").read_bytes())


def going_on(count: Path) -> Callable[[], bool]:
    frozen = read(count)
    return lambda: read(count) > frozen


def test_the_commands_of_the_teams_claudes_stand_still_while_held(
    tmp_path: Path, claude: Claude
) -> None:
    proc, counts = claude
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "a").write_text(f"{proc.pid}\n")
    (pids / "forged").write_text("1\n")  # not a child of this process: ignored
    assert write_hold.team_clis(pids) == [proc.pid]
    hold = write_hold.Hold()
    assert hold.hold("w1", write_hold.team_clis(pids)) == 2
    assert hold.hold("w2", write_hold.team_clis(pids)) == 2  # a second write, same hold
    frozen = read(counts[0])
    grandchildren = counter_pids(proc)
    assert [hold_procs.run_state(p) for p in grandchildren] == ["T", "T"]
    assert hold_procs.run_state(proc.pid) != "T"  # the claude itself writes: never stopped
    assert read(counts[0]) == frozen
    hold.release("w1")
    assert [hold_procs.run_state(p) for p in grandchildren] == ["T", "T"]  # w2 still held
    hold.release("w2")
    until(lambda: read(counts[0]) > frozen, "the counter going on")
    assert hold.held == set()


def test_a_process_stopped_before_the_hold_stays_stopped_after(claude: Claude) -> None:
    """The operator's SIGSTOP (or a shell's Ctrl-Z) is theirs: the release continues only
    what the hold stopped."""
    proc, counts = claude
    theirs, other = counter_pids(proc)
    os.kill(theirs, signal.SIGSTOP)
    until(lambda: hold_procs.run_state(theirs) == "T", "the operator's stop")
    hold = write_hold.Hold()
    hold.hold("w", [proc.pid])
    assert hold_procs.run_state(other) == "T"
    hold.release("w")
    until(going_on(counts[1]), "the other counter going on")
    assert hold_procs.run_state(theirs) == "T"
    frozen = read(counts[0])
    os.kill(theirs, signal.SIGCONT)
    until(lambda: read(counts[0]) > frozen, "the operator's own continue")


def test_a_timer_resumes_nothing_another_hold_still_needs(claude: Claude) -> None:
    """A write the CLI never reports done is let go after max_s; another agent's write
    held meanwhile keeps everything stopped, and a timer firing for a key already released
    changes nothing."""
    proc, counts = claude
    grandchildren = counter_pids(proc)
    hold = write_hold.Hold()
    hold.hold("never-reported", [proc.pid], max_s=0.2)
    hold.hold("other-agent", [proc.pid])
    until(lambda: hold.held == {"other-agent"}, "the first hold's timer")
    assert [hold_procs.run_state(p) for p in grandchildren] == ["T", "T"]
    # A key released by its report, then held again by another: the first's timer is
    # cancelled, and a stale release of it changes nothing.
    hold.hold("reported", [proc.pid], max_s=0.2)
    hold.release("reported")
    hold.release("reported")
    hold.release("never-reported")
    assert hold.held == {"other-agent"}
    assert [hold_procs.run_state(p) for p in grandchildren] == ["T", "T"]
    hold.release("other-agent")
    until(going_on(counts[0]), "the counter going on")


def test_a_writes_release_continues_what_no_other_write_holds(
    tmp_path: Path, claude: Claude
) -> None:
    """Holds are scoped (hold_scope): a write that held only ``p``'s commands ends
    without waiting for another agent's write that holds ``q``'s, and what both hold
    goes on with the last of them. The record then names only what is still held."""
    p, p_counts = claude
    q_counts = [tmp_path / "q0", tmp_path / "q1"]
    q = start_claude(q_counts)
    record = tmp_path / write_hold.RECORD
    try:
        hold = write_hold.Hold()  # no timer ends these holds during the test
        hold.hold("p-only", [p.pid], record, max_s=3600)
        hold.hold("both", [p.pid, q.pid], record, max_s=3600)
        hold.hold("q-only", [q.pid], record, max_s=3600)
        assert [hold_procs.run_state(x) for x in counter_pids(q)] == ["T", "T"]
        hold.release("q-only")  # "both" still holds q
        assert [hold_procs.run_state(x) for x in counter_pids(q)] == ["T", "T"]
        hold.release("both")
        until(going_on(q_counts[0]), "q's counter going on while p is still held")
        assert [hold_procs.run_state(x) for x in counter_pids(p)] == ["T", "T"]
        recorded = {int(line.split()[0]) for line in record.read_text().splitlines()}
        assert recorded == set(counter_pids(p))
        hold.release("p-only")
        until(going_on(p_counts[0]), "p's counter going on")
        assert not record.exists()
        assert hold.held == set()
    finally:
        end_claude(q)


def test_release_all_continues_everything_held(claude: Claude) -> None:
    """`down` / a stop during a hold (supervision.launch.release_launcher) leaves
    nothing stopped, and no timer left to fire."""
    from orchestrator.supervision import launch

    class Ended:
        cli_path = None
        watchman = None
        write_hold = write_hold.Hold()

    proc, counts = claude
    hold = Ended.write_hold
    hold.hold("a", [proc.pid], agents={"x": proc.pid}, writer="w")
    hold.hold("b", [proc.pid])
    launch.release_launcher(Ended())  # type: ignore[arg-type]
    assert hold.held == set()
    assert not hold.holding("x")
    until(going_on(counts[0]), "the counter going on")
    until(going_on(counts[1]), "the other counter going on")
    assert hold._timers == {}


# A stand-in supervisor: its watchman started, a claude (the stand-in above) whose
# commands it holds; it says "held" and waits to be killed.
SUPERVISOR = """
import subprocess, sys, time
from pathlib import Path
from orchestrator import watchman, write_hold
folder = Path(sys.argv[1])
watchman.start(str(folder), None)
claude = subprocess.Popen([sys.executable, "-c", sys.argv[2], *sys.argv[3:]],
                          stdin=subprocess.PIPE)
(folder / "pids").mkdir()
(folder / "pids" / "a").write_text(f"{claude.pid}\\n")
while len(write_hold.descendants([claude.pid])) < 2:
    time.sleep(0.01)
write_hold.Hold().hold("w", write_hold.team_clis(folder / "pids"), folder / write_hold.RECORD)
print("held", *sorted(write_hold.descendants([claude.pid])), flush=True)
time.sleep(600)
"""


def test_a_supervisor_killed_while_holding_leaves_nothing_stopped(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) between the hook's hold and the release: the claude
    goes with its supervisor, but a sandboxed command in a session (or pid namespace) of
    its own lives on, and stayed stopped for ever. The watchman continues it."""
    folder = tmp_path / "octy-test"
    folder.mkdir(mode=0o700)
    counts = [tmp_path / "count0", tmp_path / "count1"]
    sup = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(folder), CLAUDE, COUNTER, *map(str, counts)],
        stdout=subprocess.PIPE,
    )
    held: list[int] = []
    try:
        assert sup.stdout is not None
        words = sup.stdout.readline().split()
        assert words[:1] == [b"held"], words
        held = [int(w) for w in words[1:]]
        assert len(held) == 2
        assert [hold_procs.run_state(p) for p in held] == ["T", "T"]
        sup.kill()
        sup.wait()
        until(lambda: all(hold_procs.run_state(p) not in ("T", "t") for p in held), "continued")
        until(going_on(counts[0]), "the counter going on")
        until(lambda: not folder.exists(), "the watchman's cleanup")
    finally:
        sup.kill()
        sup.wait()
        assert sup.stdout is not None
        sup.stdout.close()  # (the counters hold it too: not read to its end)
        for pid in held:
            subprocess.run(["kill", "-KILL", str(pid)], check=False)


def test_the_watch_for_commands_leaves_a_claude_that_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hold covers an agent whose command was let through just before it (Hold.launch):
    the watch looks under its claude every millisecond. When that claude ends (the agent
    stopped or restarted mid-hold) the watch went on looking under its pid, for as long as
    the launch window, stopping whatever process got the pid next (another team's claude
    in this process). Now it leaves a claude that is not the one it was given."""
    monkeypatch.setattr(hold_watch, "LAUNCH_S", 3600.0)  # only the claude's end ends it
    proc = subprocess.Popen(["sleep", "600"])
    hold = write_hold.Hold()
    try:
        hold.hold("w", [proc.pid], None, 3600.0, agents={"x": proc.pid}, writer="y")
        hold.launch("call-1", "x")
        assert hold._watching
        proc.kill()
        proc.wait()  # reaped: the pid is free for the next process
        until(lambda: not hold._watching, "the watch to leave the ended claude")
    finally:
        hold.release_all()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
