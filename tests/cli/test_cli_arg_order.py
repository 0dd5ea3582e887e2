"""Options and operands in any order, and an unknown option refused by its verb: what a
docker compose user types (`compose logs web -f db`, `compose ps --bogus` names `ps`). Each
runs the console script in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.mailbox import Mailbox


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agents.yaml").write_text(
        "agents:\n  a:\n    prompt: A.\n  b:\n    prompt: B.\n  c:\n    prompt: C.\n",
        encoding="utf-8",
    )
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        for name in ("a", "b", "c"):
            mb.register(name)
    return tmp_path


def test_an_agent_named_after_an_option_is_taken(folder: Path) -> None:
    """Regression: `ps a --json b` exited 2 (`unrecognized arguments: b`)."""
    done = octy("ps", "a", "--json", "b", cwd=folder)
    assert done.returncode == 0, done.stderr
    names = [row["name"] for row in json.loads(done.stdout)["agents"]]
    assert names == ["a", "b"]


def test_an_operand_after_an_option_reaches_a_command_verb(folder: Path) -> None:
    """`restart a --timeout 5 b` is a restart of a and b: with no supervisor, exit 5 (it
    was a usage error, exit 2, before the verb looked)."""
    done = octy("restart", "a", "--timeout", "5", "b", cwd=folder)
    assert done.returncode == 5, done.stderr
    assert "no supervisor" in done.stderr


def test_an_unknown_option_is_refused_by_its_verb_with_its_usage(folder: Path) -> None:
    """Regression: `ps --bogus` printed the top parser's usage (`usage: octy-orchestrate
    [-h] [--version] [-f FILE] VERB ...`), which does not say what `ps` takes."""
    done = octy("ps", "--bogus", cwd=folder)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: octy-orchestrate ps "), done.stderr
    assert "octy-orchestrate ps: error: unrecognized arguments: --bogus" in done.stderr


def test_an_unknown_option_of_a_queue_verb_names_queue_and_the_verb(folder: Path) -> None:
    done = octy("queue", "ls", "--bogus", cwd=folder)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: octy-orchestrate queue ls "), done.stderr
    assert "octy-orchestrate queue ls: error: unrecognized arguments: --bogus" in done.stderr


def test_after_a_double_dash_every_word_is_an_operand(folder: Path) -> None:
    """Regression (352e769): `send -- b -x` sent '-x' to b before intermixed parsing, then
    was a usage error ('required: TEXT'): the stdlib's intermixed parse lost the `--` between
    its two passes, so '-x' was read as an option. POSIX and git: after `--`, operands."""
    done = octy("send", "--", "b", "-x", cwd=folder)
    assert done.returncode == 0, done.stderr
    with Mailbox(folder / "queue" / "team.db") as mb:
        message = mb.get(done.stdout.split()[1])
    assert (message.recipient, message.body) == ("b", "-x")


def test_a_double_dash_before_an_id_that_looks_like_an_option(folder: Path) -> None:
    """`queue show -- -m1` looks the id up (not found, exit 3); it was a usage error, 2."""
    done = octy("queue", "show", "--", "-m1", cwd=folder)
    assert done.returncode == 3, done.stderr
    done = octy("logs", "--bogus", "--", "-a", cwd=folder)
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr
    assert "-a" not in done.stderr.splitlines()[-1].split("--bogus")[1]
