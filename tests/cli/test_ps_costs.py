"""`ps` COST is the larger of the registry's total and the budgets' ledger, as `top`
shows it: a reload that removes an agent deletes its registry row, and one that adds it
back started at $0 in `ps` while its spend was still in the ledger (review G, 10)."""

from __future__ import annotations

import json
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
