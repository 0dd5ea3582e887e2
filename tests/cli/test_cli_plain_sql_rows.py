"""The queue verbs on rows a plain-SQL writer (queue/README.md) left with text or absurd
numbers in number columns: each printed a TypeError/OverflowError traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.mailbox import Mailbox


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "queue" / "team.db"
    with Mailbox(path) as mb:
        mb.register("bob", "")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO messages (id, sender, recipient, body, created_at, available_at, "
        "done_at, attempts) VALUES ('weird1', 'user', 'bob', '\"x\"', 'yesterday', 'soon', "
        "-1e300, 'many')"
    )
    conn.execute(
        "INSERT INTO messages (id, sender, recipient, body, created_at, expires_at) "
        "VALUES ('weird2', 'user', 'bob', '1', 9e999, 1e308)"
    )
    conn.execute(
        "UPDATE agents SET heartbeat_at = 'x', registered_at = 1e300, meta = ? WHERE name = 'bob'",
        ("[" * 999 + "]" * 999,),
    )
    conn.execute(
        "INSERT INTO messages (id, sender, recipient, body) VALUES ('deep', 'user', 'bob', ?)",
        ("[" * 999 + "]" * 999,),
    )
    conn.close()
    return path


@pytest.mark.parametrize(
    "verb",
    [
        ["queue", "ls"],
        ["queue", "ls", "--json"],
        ["queue", "show", "weird1"],
        ["queue", "show", "weird2", "--json"],
        ["trace", "weird1"],
        ["trace", "weird2", "--json"],
        ["inbox", "bob", "--wait", "0.1"],
        ["inbox", "bob", "--limit", "5", "--json"],
        ["queue", "show", "deep"],
        ["send", "bob", "[" * 3000 + "]" * 3000, "--json-body"],
        ["ps"],
    ],
    ids=" ".join,
)
def test_odd_rows_are_shown_not_crashed_on(db: Path, verb: list[str]) -> None:
    done = octy(*verb, "--db", str(db), cwd=db.parent.parent)
    assert "Traceback" not in done.stderr, done.stderr
    if "--json-body" in verb:  # too deep for Python: a usage error like bad JSON
        assert done.returncode == 2, done.stderr
        assert "nested too deep" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    if "--json" in verb:
        json.loads(done.stdout)
