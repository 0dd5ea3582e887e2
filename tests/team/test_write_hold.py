"""write_hold: what the team's claudes started is stopped while a file tool writes, and
continued after; only under a process this one started (real processes, real signals)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import write_hold

# A stand-in for a claude: it starts a grandchild that counts in a file, and waits.
CLAUDE = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
sys.stdin.read()
"""
COUNTER = """
import os, sys
n = 0
while True:
    n += 1
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""


@pytest.fixture
def claude(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    count = tmp_path / "count"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAUDE, COUNTER, str(count)], stdin=subprocess.PIPE
    )
    yield proc, count
    for pid in write_hold.descendants([proc.pid]):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)
    proc.kill()
    proc.communicate()


def until(predicate: Callable[[], object], what: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def read(count: Path) -> int:
    try:
        return int(count.read_text() or 0)
    except (OSError, ValueError):
        return 0


def test_the_commands_of_the_teams_claudes_stand_still_while_held(
    tmp_path: Path, claude: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, count = claude
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "a").write_text(f"{proc.pid}\n")
    (pids / "forged").write_text("1\n")  # not a child of this process: ignored
    assert write_hold.team_clis(pids) == [proc.pid]
    until(lambda: read(count) > 0, "the counter running")
    hold = write_hold.Hold()
    assert hold.hold("w1", write_hold.team_clis(pids)) == 1
    assert hold.hold("w2", write_hold.team_clis(pids)) == 1  # a second write, same hold
    frozen = read(count)
    [grandchild] = write_hold.descendants([proc.pid])
    assert write_hold._state(grandchild) == "T"
    assert write_hold._state(proc.pid) != "T"  # the claude itself writes: never stopped
    assert read(count) == frozen
    hold.release("w1")
    assert write_hold._state(grandchild) == "T"  # w2 still held
    hold.release("w2")
    until(lambda: read(count) > frozen, "the counter going on")
    assert hold.held == set()
