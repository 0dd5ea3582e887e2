"""`ps` says when an agent's process is stopped by a signal (SIGSTOP, a debugger): its
registry state stays what it was when it froze (busy, ready), and nothing else told the
operator why its turn never ended until turn_timeout (10 minutes) restarted it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_runner import octy


def _state_char(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_ps_says_a_process_stopped_by_a_signal_is_frozen(tmp_path: Path) -> None:
    db = tmp_path / "queue" / "team.db"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        octy("register", "frozen", "--pid", str(proc.pid), "--db", str(db), cwd=tmp_path)
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while _state_char(proc.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        row = json.loads(octy("ps", "--json", "--db", str(db), cwd=tmp_path).stdout)["agents"][0]
        assert row["reason"] == f"process stopped by a signal: `kill -CONT {proc.pid}`"
        table = octy("ps", "--db", str(db), cwd=tmp_path).stdout
        assert f"(process stopped by a signal: `kill -CONT {proc.pid}`)" in table
        os.kill(proc.pid, signal.SIGCONT)
        while _state_char(proc.pid) == "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        row = json.loads(octy("ps", "--json", "--db", str(db), cwd=tmp_path).stdout)["agents"][0]
        assert row["reason"] is None
    finally:
        proc.kill()
        proc.wait()
