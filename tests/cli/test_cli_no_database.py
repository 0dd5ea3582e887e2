"""A team folder whose team never started (agents.yaml, no queue database yet): every verb
that reads the queue says so with the same exit status, 3 (not found), as `ps`,
`approvals`, `top` and `logs` always did. Before, `send`, `ask`, `inbox`, `reply`,
`queue …`, `trace` and `unregister` exited 1 there, so a script could not tell "no team
here" from a failure by the status alone, and got different answers from `ps` and
`queue ls` in the same folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli_runner import octy

VERBS = [
    ("send", "a", "hi"),
    ("ask", "a", "hi", "--timeout", "1"),
    ("inbox", "a"),
    ("reply", "m1", "hi"),
    ("queue", "ls"),
    ("queue", "dead"),
    ("queue", "show", "m1"),
    ("trace", "m1"),
    ("unregister", "zz"),
    ("ps",),
    ("approvals",),
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A roster, and no queue database: `init` was run, `up` never was."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTY_DB", raising=False)
    return tmp_path


@pytest.mark.parametrize("argv", VERBS, ids=[" ".join(v[:2]) for v in VERBS])
def test_a_team_never_started_is_not_found_on_every_verb(
    capsys: pytest.CaptureFixture[str], folder: Path, argv: tuple[str, ...]
) -> None:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 3, (code, err)
    assert "team.db" in err
    assert "Traceback" not in err
    assert not (folder / "queue" / "team.db").exists()  # nothing created by a reader


def test_a_script_reads_not_found_from_the_real_cli(folder: Path) -> None:
    done = octy("queue", "ls", "--json", cwd=folder)
    assert done.returncode == 3, done
    assert json.loads(done.stdout)["error"] == "not_found"
    assert octy("send", "a", "hi", cwd=folder).returncode == 3


NO_TEAM = [("ps",), ("top",), ("queue", "ls"), ("send", "a", "hi"), ("inbox", "a", "--ack")]


@pytest.mark.parametrize("verb", NO_TEAM, ids=[" ".join(v[:2]) for v in NO_TEAM])
def test_a_folder_with_no_team_does_not_send_the_user_to_up(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    verb: tuple[str, ...],
) -> None:
    """Regression: `ps` in a folder with neither agents.yaml nor a database said "start the
    team with `octy-orchestrate up`", and `up` there fails ("agents.yaml: file not found").
    The queue verbs there said "no queue database here; run `octy-orchestrate up`": the
    same wrong advice, in other words than `ps` in the same folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTY_DB", raising=False)
    assert main(list(verb)) == 3
    err = capsys.readouterr().err
    assert "no team here: no agents.yaml" in err
    assert "-f FILE" in err
    assert "start the team with" not in err
    assert "run `octy-orchestrate up`" not in err  # the queue verbs' own wording said so too
