"""The registry's ``meta`` keys, one dataclass for the supervisor that writes them and
`ps`/`top` that read them (issue 15.3)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.agent_meta import MODEL_NOTE, RESUME_AT, TOTAL_KEYS, AgentMeta
from orchestrator.mailbox import Mailbox

# Every key wrong: an older version, a foreign client or a hand edit wrote this row.
MALFORMED = {
    "supervised": 1,
    "restarts": "many",
    "turns": [3],
    "input_tokens": "abc",
    "output_tokens": 5,
    "cost_usd": "free",
    "last_turn_cost_usd": None,
    "started_at": "yesterday",
    "session_id": 42,
    "pid_start": True,
    "budget": "x",
    "context": 3,
    "model_error": {"reason": "x"},
    "someone_elses_key": {"deep": [1]},
}


def test_read_is_tolerant() -> None:
    meta = AgentMeta.read(MALFORMED)
    assert meta == AgentMeta(supervised=True, output_tokens=5)
    for raw in (None, [1, 2], "text", 7):
        assert AgentMeta.read(raw) == AgentMeta()
    good = AgentMeta.read({"restarts": 2, "cost_usd": 1, "started_at": 10, "context": {"t": 1}})
    assert (good.restarts, good.cost_usd, good.started_at, good.context) == (2, 1.0, 10.0, {"t": 1})


def test_writers_and_readers_name_the_same_keys() -> None:
    names = {f.name for f in dataclasses.fields(AgentMeta)}
    assert {*TOTAL_KEYS, RESUME_AT, MODEL_NOTE} <= names
    patch = AgentMeta.record({"turns": 3, "pid_start": 9}, restarts=1, started_at=5.0)
    assert AgentMeta.read(patch) == AgentMeta(turns=3, pid_start=9, restarts=1, started_at=5.0)
    with pytest.raises(TypeError, match="restart_count"):
        AgentMeta.record({}, restart_count=1)


def test_carried_keeps_present_totals_only() -> None:
    carried = AgentMeta.carried({"turns": 2, "cost_usd": "x", RESUME_AT: "u1", "restarts": 4})
    assert carried == {"turns": 2, "cost_usd": 0.0, RESUME_AT: "u1"}


def test_ps_reads_a_malformed_row_without_crashing(tmp_path: Path) -> None:
    """Regression: `ps` did int(meta["input_tokens"]) and float(meta["cost_usd"]) on
    whatever the row held, and a row with a string there ended in a traceback."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("a")
        mb.register("b")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE agents SET meta = ? WHERE name = 'a'", (json.dumps(MALFORMED),))
        conn.execute("UPDATE agents SET meta = '[1, 2]' WHERE name = 'b'")
    outputs = {}
    for argv in (("ps", "--json"), ("ps",)):
        done = octy(*argv, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        outputs[argv] = done.stdout
    rows = {r["name"]: r for r in json.loads(outputs[("ps", "--json")])["agents"]}
    shown = {k: rows["a"][k] for k in ("restarts", "tokens", "cost_usd", "uptime_s", "budget")}
    assert shown == {"restarts": 0, "tokens": 5, "cost_usd": 0.0, "uptime_s": None, "budget": None}
    assert rows["a"]["model_error"] is None
    assert rows["b"]["turns"] == 0
