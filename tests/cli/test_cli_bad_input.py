"""Bad input is exit 2 on every verb (the README's exit codes: 2 usage, bad input or a
reserved name), and the message names what was refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.mailbox import Mailbox
from orchestrator.mailbox.model import MAX_BODY_DEPTH


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "queue" / "team.db"
    with Mailbox(path) as mb:
        mb.register("bob")
        mb.register_supervisor(4242, {})  # the row a team's `up` wrote (it has stopped)
    return path


def _run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str]:
    code = main([*argv, "--db", str(db)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["supervisor", "user"])
def test_unregistering_a_reserved_row_says_unregister(
    capsys: pytest.CaptureFixture[str], db: Path, name: str
) -> None:
    """Regression: it said "cannot register 'supervisor'" to `unregister supervisor`."""
    code, err = _run(capsys, db, "unregister", name)
    assert code == 2
    assert f"cannot unregister '{name}'" in err


def test_a_body_too_deep_is_a_usage_error_and_nothing_is_sent(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    """Regression: invalid_body exited 1 (an error of the tool) where every other bad input
    exits 2."""
    deep = "[" * (MAX_BODY_DEPTH + 5) + "]" * (MAX_BODY_DEPTH + 5)
    code, err = _run(capsys, db, "send", "bob", deep, "--json-body")
    assert code == 2, err
    assert "deep" in err
    with Mailbox(db) as mb:
        assert mb.list(recipient="bob") == []


def test_invalid_body_in_json_output_carries_its_code(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    deep = "[" * (MAX_BODY_DEPTH + 5) + "]" * (MAX_BODY_DEPTH + 5)
    code = main(["send", "bob", deep, "--json-body", "--json", "--db", str(db)])
    captured = capsys.readouterr()
    assert code == 2
    document = json.loads((captured.out or captured.err).strip().splitlines()[-1])
    assert document["error"] == "invalid_body"
