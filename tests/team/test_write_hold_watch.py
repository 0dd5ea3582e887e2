"""The watch for a command let through (orchestrator/write_hold.py, ``Hold.launch``)
looks every millisecond while a hold covers a claude starting one: it must stop the
command as it appears, and cost little while nothing starts. Measured before: each look
read every process's /proc/<pid>/stat, half a core for as long as the hold lasted
(bench/hold_loop.py). Here the work is counted, not timed: how often the watch reads a
process that has nothing to do with the claude, against how many times it looked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from polling import until

from orchestrator import hold_procs, hold_stops, hold_watch, write_hold

# A stand-in for a claude: it starts a `sleep` for each line it reads (its commands).
CLAUDE = """
import subprocess, sys
for line in sys.stdin:
    subprocess.Popen(["sleep", "600"])
"""
LOOKS = 200  # the watch's looks counted before the claude starts its command


@pytest.fixture
def claude() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", CLAUDE], stdin=subprocess.PIPE, text=True)
    yield proc
    for pid in write_hold.descendants([proc.pid]):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)
    proc.kill()
    proc.communicate()


@pytest.fixture
def bystander() -> Iterator[int]:
    """A process of the machine's, not the claude's."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc.pid
    proc.kill()
    proc.wait()


def in_watch() -> bool:
    return threading.current_thread().name == "write-hold-watch"


def test_the_watch_reads_a_process_not_the_claudes_once_not_at_every_look(
    claude: subprocess.Popen[str], bystander: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, reads = [0], [0]
    real_sleep, real_open = time.sleep, os.open
    stat = f"/proc/{bystander}/stat"

    def sleep(s: float) -> None:
        looks[0] += in_watch()
        real_sleep(s)

    def opened(path: Any, *args: Any, **kwargs: Any) -> int:
        reads[0] += in_watch() and str(path) == stat
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hold_watch, "LAUNCH_S", 3600.0)
    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(os, "open", opened)
    hold = write_hold.Hold()
    try:
        hold.hold("w", [claude.pid], None, 3600.0, agents={"x": claude.pid}, writer="y")
        hold.launch("call-1", "x")  # the watch looks every millisecond from now
        until(lambda: looks[0] >= LOOKS, f"{LOOKS} looks of the watch")
        assert claude.stdin is not None
        claude.stdin.write("go\n")  # the command let through, started after the hold
        claude.stdin.flush()
        (late,) = until(lambda: write_hold.descendants([claude.pid]), "the command")
        until(lambda: hold_procs.run_state(late) == "T", "the watch stopping the command")
    finally:
        hold.release_all()
    # once as the watch begins, then by the whole scans that stop the command
    assert reads[0] <= 1 + hold_stops.ROUNDS, (reads[0], looks[0])
    until(lambda: hold_procs.run_state(late) == "S", "the command continued")


def watching() -> bool:
    return any(t.name == "write-hold-watch" for t in threading.enumerate())


def test_the_watch_stops_looking_under_a_claude_as_it_dies(
    claude: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claude that ends while held with a command let through: nothing of it is left to
    start the command, so the watch stops looking under it as it dies. Here it is not
    reaped (a zombie, as a claude is between its exit and the supervisor's wait for it):
    nothing in /proc/loadavg changes with a process's exit alone, and the zombie keeps its
    start time. Before, the watch looked under it every millisecond until it was reaped
    and some look then saw the change, or for the launch's whole 10 s."""
    monkeypatch.setattr(hold_watch, "LAUNCH_S", 3600.0)
    hold = write_hold.Hold()
    try:
        hold.hold("w", [claude.pid], None, 3600.0, agents={"x": claude.pid}, writer="y")
        hold.launch("call-1", "x")
        until(watching, "the watch")
        os.kill(claude.pid, 9)
        until(lambda: hold_procs.run_state(claude.pid) == "Z", "the claude's exit")
        until(lambda: not watching(), "the watch's end after the claude's")
        assert hold.holding("x"), "the write still holds the agent (its new claude waits)"
    finally:
        hold.release_all()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_claudes_pidfd_is_opened_once_and_closed_once_it_ended() -> None:
    """The watch's pidfd of each claude held is kept across Writes (opened afresh, each
    Write cost 35 us of CPU per agent, measured), closed once its claude has ended, and
    at the team's end: a supervisor running for weeks must not gather descriptors."""
    first, second = (subprocess.Popen(["sleep", "600"]) for _ in range(2))
    hold = write_hold.Hold()
    before = open_fds()
    try:
        for n in range(20):
            hold.hold(f"w{n}", [], None, 60, agents={"x": first.pid}, writer="y")
            hold.release(f"w{n}")
        assert open_fds() == before + 1, "one pidfd for the claude, whatever the Writes"
        first.kill()
        first.wait()  # reaped: its pid may be anyone's next
        hold.hold("w", [], None, 60, agents={"x": second.pid}, writer="y")
        hold.release("w")
        assert open_fds() == before + 1, "the ended claude's pidfd is closed"
    finally:
        hold.release_all()
        second.kill()
        second.wait()
    assert open_fds() == before
