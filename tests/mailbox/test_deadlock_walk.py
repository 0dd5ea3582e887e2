"""The deadlock check's walk stays linear whatever edges a plain-SQL writer left."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

import pytest

from orchestrator import errors
from orchestrator.mailbox import Mailbox
from orchestrator.mailbox.sending import SendOps

# SQLite virtual-machine steps the walk may take (a progress handler counts them in
# batches of 1000). Visiting each of 12 names once over 132 edges takes ~10^4; walking
# every path, as the check did, takes ~10^9 (13 s under the write lock with 10 names).
STEP_BUDGET = 2_000_000


def _complete_graph(db: Path, names: list[str]) -> None:
    """Every name waits on every other (a foreign writer's cycles), for an hour."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO waits (request_id, waiter, target, expires_at) VALUES (?, ?, ?, ?)",
            [
                (f"r{i}", a, b, time.time() + 3600)
                for i, (a, b) in enumerate(itertools.permutations(names, 2))
            ],
        )


def test_the_walk_visits_each_name_once(tmp_path: Path) -> None:
    mb = Mailbox(tmp_path / "t.db")
    names = [f"n{i}" for i in range(12)]
    for name in [*names, "asker"]:
        mb.register(name)
    _complete_graph(tmp_path / "t.db", names)
    conn = sqlite3.connect(tmp_path / "t.db")
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1000
        return 1 if steps > STEP_BUDGET else 0  # non-zero interrupts the statement

    conn.set_progress_handler(count, 1000)
    try:  # nobody waits on `asker`: no cycle, and every path through the names is walked
        assert SendOps._wait_cycle(conn, "asker", "n0", time.time()) is None
        steps = 0
        assert SendOps._wait_cycle(conn, "n5", "n0", time.time()) == "n5 -> n0 -> n5"
    finally:
        conn.close()
    mb.request("asker", "n0", "q", wait_s=60)  # and through the Mailbox itself
    with pytest.raises(errors.WouldDeadlock, match=r"n3 -> n0 -> n3"):
        mb.request("n3", "n0", "q", wait_s=60)
    mb.close()
