"""Ctrl-C during `down`: the stop it asked for stands, and it says so (it ended 130 without
a word, and a person took the team for still running, or for stopped). A real process holds
the team's supervisor lock and never answers, so `down` waits for it to take the request."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import octy_bg

from orchestrator.mailbox import SUPERVISOR, Mailbox

WAIT_S = 60.0  # a safety net for a wedged process, not a measurement

HOLDER = """
import os, signal, sys, time
from pathlib import Path
from orchestrator.lockfile import SupervisorLock
from orchestrator.mailbox import Mailbox
SupervisorLock(Path(sys.argv[1])).acquire()
if sys.argv[2] == "listens":
    with Mailbox(Path(sys.argv[1])) as mb:
        mb.register_supervisor(os.getpid(), {})
else:  # no row: `down` sends SIGTERM instead, which this one takes its time over
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def folder(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db, create=True) as mb:
        mb.register("a")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), getattr(request, "param", "listens")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield tmp_path
    finally:
        holder.kill()
        holder.communicate()


def test_ctrl_c_while_down_waits_says_the_stop_was_asked(folder: Path) -> None:
    down = octy_bg("down", cwd=folder)
    try:
        deadline = time.monotonic() + WAIT_S
        with Mailbox(folder / "queue" / "team.db") as mb:
            while not mb.peek(SUPERVISOR) and time.monotonic() < deadline:
                assert down.poll() is None, down.communicate()
                time.sleep(0.05)
            (request,) = mb.peek(SUPERVISOR)
        assert request.body["command"] == "down"
        down.send_signal(signal.SIGINT)
        _, err = down.communicate(timeout=WAIT_S)
    finally:
        down.kill()
        down.communicate()
    assert down.returncode == 130, err
    line = err.strip()
    assert line.startswith("octy-orchestrate: interrupted: the supervisor (pid "), err
    assert "is asked to stop the team: it does if it takes the request within 30 s" in line
    assert "`octy-orchestrate ps` shows whether it still runs" in line
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("folder", ["slow to stop"], indirect=True)
def test_ctrl_c_while_the_supervisor_stops_says_it_is_stopping(folder: Path) -> None:
    down = octy_bg("down", cwd=folder)
    try:
        assert down.stderr is not None
        warned = down.stderr.readline()  # the queue could not carry it: SIGTERM instead
        assert "sent SIGTERM to pid" in warned, warned
        down.send_signal(signal.SIGINT)
        _, err = down.communicate(timeout=WAIT_S)
    finally:
        down.kill()
        down.communicate()
    assert down.returncode == 130, err
    assert err.strip() == (
        f"octy-orchestrate: interrupted: the supervisor (pid {warned.split()[-2]}) was asked to "
        "stop the team and is stopping it; `octy-orchestrate ps` shows whether it still runs"
    )
