"""`ps` COST is the larger of the registry's total and the budgets' ledger, as `top`
shows it: a reload that removes an agent deletes its registry row, and one that adds it
back started at $0 in `ps` while its spend was still in the ledger (review G, 10)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from cli_runner import octy

from orchestrator.budget import Ledger
from orchestrator.mailbox import Mailbox


def test_ps_cost_is_the_larger_of_the_registry_and_the_ledger(tmp_path: Path) -> None:
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("back", pid=None, state="stopped", meta={"supervised": True})  # re-added
        mb.register("kept", pid=None, state="stopped", meta={"supervised": True, "cost_usd": 0.5})
    ledger = Ledger(db)
    ledger.record("back", 0.25, {}, time.time())
    ledger.record("kept", 0.125, {}, time.time())
    ledger.close()
    done = octy("ps", "--json", "--db", str(db), cwd=tmp_path, check=True)
    costs = {a["name"]: a["cost_usd"] for a in json.loads(done.stdout)["agents"]}
    assert costs == {"back": 0.25, "kept": 0.5}
    table = octy("ps", "--db", str(db), cwd=tmp_path, check=True).stdout
    assert "$0.2500" in table


def test_ps_without_a_ledger_shows_the_registry(tmp_path: Path) -> None:
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="stopped", meta={"supervised": True, "cost_usd": 0.5})
    done = octy("ps", "--json", "--db", str(db), cwd=tmp_path, check=True)
    assert [a["cost_usd"] for a in json.loads(done.stdout)["agents"]] == [0.5]


def test_a_cost_holding_estimated_dollars_is_marked_in_ps_and_top(tmp_path: Path) -> None:
    """A turn cut off before the CLI priced it is charged at the CLI's prices by the runner
    (cost_estimated in the ledger): `ps` shows that COST as ~$, gives the estimated part in
    --json, and `top`'s data marks the row the same way."""
    from orchestrator.tui.data import TeamSource

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        for name in ("cut", "whole"):
            mb.register(name, pid=None, state="stopped", meta={"supervised": True})
    ledger = Ledger(db)
    ledger.record("cut", 0.25, {}, time.time())
    ledger.record("cut", 0.125, {}, time.time(), estimated=True)
    ledger.record("whole", 0.5, {}, time.time())
    ledger.close()
    done = octy("ps", "--json", "--db", str(db), cwd=tmp_path, check=True)
    rows = {a["name"]: a for a in json.loads(done.stdout)["agents"]}
    assert (rows["cut"]["cost_usd"], rows["cut"]["cost_estimated_usd"]) == (0.375, 0.125)
    assert (rows["whole"]["cost_usd"], rows["whole"]["cost_estimated_usd"]) == (0.5, 0.0)
    table = octy("ps", "--db", str(db), cwd=tmp_path, check=True).stdout
    assert "~$0.3750" in table
    assert "$0.5000" in table
    assert "~$0.5000" not in table
    snap = TeamSource(db, tmp_path / "logs").snapshot()
    marked = {a.name: a.cost_estimated for a in snap.agents}
    assert marked == {"cut": True, "whole": False}


def test_a_ledger_from_before_estimates_is_read_without_them(tmp_path: Path) -> None:
    """A database whose ledger predates the `estimated` column (no supervisor of this
    version opened it yet): `ps` sums it as before, nothing marked."""
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="stopped", meta={"supervised": True})
    Ledger(db).close()
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE spend DROP COLUMN estimated")
    conn.execute("INSERT INTO spend (agent, at, usd) VALUES ('a', ?, 0.75)", (time.time(),))
    conn.commit()
    conn.close()
    done = octy("ps", "--json", "--db", str(db), cwd=tmp_path, check=True)
    (row,) = json.loads(done.stdout)["agents"]
    assert (row["cost_usd"], row["cost_estimated_usd"]) == (0.75, 0.0)
