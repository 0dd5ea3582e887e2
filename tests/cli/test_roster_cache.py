"""The everyday verbs remember where a roster's queue is (orchestrator/cli/roster_cache.py):
no YAML parse while the roster's bytes, HOME and the variables it reads are unchanged,
and a fresh parse (with its errors and warnings) as soon as one of them changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import roster_cache
from orchestrator.mailbox import Mailbox

PROBE = """
import json, sys
from orchestrator.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "yaml": "yaml" in sys.modules}, f)
"""


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


def _team(folder: Path, database: str = "queue/team.db") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agents.yaml").write_text(
        f"database: {database}\nagents:\n  bob:\n    prompt: B.\n", encoding="utf-8"
    )
    return folder


def _register(db: Path) -> None:
    with Mailbox(db) as mb:
        mb.register("bob")


def _send(folder: Path, text: str, **env: str) -> dict[str, object]:
    out = folder / "probe.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), "send", "bob", text],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result: dict[str, object] = json.loads(out.read_text())
    result["stderr"] = done.stderr
    return result


def _bodies(db: Path) -> list[object]:
    with Mailbox(db) as mb:
        return [m.body for m in mb.peek("bob")]


def test_the_second_send_reads_no_yaml_and_reaches_the_same_queue(
    tmp_path: Path, state: Path
) -> None:
    folder = _team(tmp_path / "team")
    _register(folder / "queue" / "team.db")
    first = _send(folder, "one")
    assert first["code"] == 0
    assert first["yaml"] is True
    second = _send(folder, "two")
    assert second["code"] == 0
    assert second["yaml"] is False
    assert _bodies(folder / "queue" / "team.db") == ["one", "two"]
    entries = list((state / "octy-orchestrate" / "rosters").iterdir())
    assert len(entries) == 1
    assert entries[0].stat().st_mode & 0o777 == 0o600
    assert entries[0].parent.stat().st_mode & 0o777 == 0o700
    assert "bob" not in entries[0].read_text()  # digests and the database path, nothing else


def test_an_edited_roster_is_read_again(tmp_path: Path, state: Path) -> None:
    folder = _team(tmp_path / "team")
    _register(folder / "queue" / "team.db")
    assert _send(folder, "one")["code"] == 0
    _team(folder, "other/team.db")
    _register(folder / "other" / "team.db")
    again = _send(folder, "two")
    assert again["code"] == 0
    assert again["yaml"] is True
    assert _bodies(folder / "other" / "team.db") == ["two"]
    assert _bodies(folder / "queue" / "team.db") == ["one"]


def test_a_changed_variable_is_read_again(tmp_path: Path, state: Path) -> None:
    folder = _team(tmp_path / "team", "${TEAM_DB}")
    for name in ("a.db", "b.db"):
        _register(folder / name)
    assert _send(folder, "one", TEAM_DB="a.db")["code"] == 0
    assert _send(folder, "two", TEAM_DB="a.db")["yaml"] is False
    moved = _send(folder, "three", TEAM_DB="b.db")
    assert moved["code"] == 0
    assert moved["yaml"] is True
    assert _bodies(folder / "a.db") == ["one", "two"]
    assert _bodies(folder / "b.db") == ["three"]


def test_a_roster_broken_after_it_was_remembered_still_warns(tmp_path: Path, state: Path) -> None:
    folder = _team(tmp_path / "team")
    _register(folder / "queue" / "team.db")
    assert _send(folder, "one")["code"] == 0
    (folder / "agents.yaml").write_text("agents: [\n", encoding="utf-8")
    broken = _send(folder, "two")
    assert broken["code"] != 0
    assert "agents.yaml" in str(broken["stderr"])
    assert _bodies(folder / "queue" / "team.db") == ["one"]


def test_an_entry_not_owned_or_a_link_is_not_trusted(tmp_path: Path, state: Path) -> None:
    folder = _team(tmp_path / "team")
    _register(folder / "queue" / "team.db")
    assert _send(folder, "one")["code"] == 0
    roster = folder / "agents.yaml"
    assert roster_cache.lookup(roster) == folder / "queue" / "team.db"
    (entry,) = (state / "octy-orchestrate" / "rosters").iterdir()
    if os.getuid() == 0:
        os.chown(entry, 12345, 12345)
        assert roster_cache.lookup(roster) is None
        os.chown(entry, 0, 0)
    doc = json.loads(entry.read_text())
    doc["database"] = str(tmp_path / "elsewhere.db")
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(doc))
    entry.unlink()
    entry.symlink_to(planted)
    assert roster_cache.lookup(roster) is None
    assert _send(folder, "two")["code"] == 0  # parsed again, and the link replaced, not followed
    assert not entry.is_symlink()
    assert json.loads(planted.read_text())["database"] == str(tmp_path / "elsewhere.db")


def test_a_nats_roster_is_not_remembered(tmp_path: Path, state: Path) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    roster = folder / "agents.yaml"
    roster.write_text("queue: nats://127.0.0.1:4222\nagents:\n  bob:\n    prompt: B.\n")
    from orchestrator.cli import common

    common.forget_rosters()
    common._load_roster(roster)
    assert roster_cache.lookup(roster) is None
    assert not (state / "octy-orchestrate" / "rosters").exists()
