"""Small shared pieces of the mailbox tests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKERS = Path(__file__).parent
REPO = WORKERS.parents[2]


class FakeClock:
    """An injectable clock (``Mailbox(path, clock=FakeClock())``) moved by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counts(db: Path) -> dict[str, int]:
    """Rows per table, read with a plain sqlite3 connection (what nothing half-written means)."""
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("messages", "agents", "waits")
        }
    finally:
        conn.close()


def run_worker(script: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run tests/mailbox/mailbox_workers/<script> with this interpreter; output captured."""
    return subprocess.run(
        [sys.executable, str(WORKERS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def start_worker(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKERS / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@contextmanager
def background_worker(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run a worker script while the block runs; on exit collect it and check it succeeded."""
    proc = start_worker(script, *args)
    try:
        yield proc
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{out}\n{err}"
