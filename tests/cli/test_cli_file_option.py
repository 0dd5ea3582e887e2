"""`-f FILE` names the roster after any verb, as before it (review B.7: README and --help
said so, and send/ask/reply/inbox/register/unregister/queue refused it; `send -f
agents.yaml coordinator hi` took agents.yaml as the recipient)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy

from orchestrator.cli import build_parser
from orchestrator.mailbox import Mailbox

# Verbs that read no roster: the demo writes its own, the scripted model serves a script.
NO_ROSTER = {"demo", "scripted-model", "queue"}  # `queue` alone prints its help


def _verbs(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + name, sub
                yield from _verbs(sub, f"{prefix}{name} ")


def test_every_verb_that_reads_a_roster_takes_file_after_it() -> None:
    missing = [
        verb
        for verb, sub in _verbs(build_parser())
        if verb not in NO_ROSTER
        and "--file" not in [o for a in sub._actions for o in a.option_strings]
    ]
    assert not missing


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """./agents.yaml and its queue, and other.yaml whose queue is elsewhere/other.db: a verb
    that ignored -f would use (and change) the first."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    (tmp_path / "other.yaml").write_text(
        "database: elsewhere/other.db\nagents:\n  a:\n    prompt: A.\n", encoding="utf-8"
    )
    for db in ("queue/team.db", "elsewhere/other.db"):
        with Mailbox(tmp_path / db) as mb:
            mb.register("a")
    return tmp_path


def _rows(folder: Path, db: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    with Mailbox(folder / db) as mb:
        agents = {a.name for a in mb.agents()}
        return agents, sorted((m.kind, m.recipient, m.status) for m in mb.list())


def test_each_queue_verb_uses_the_roster_named_after_it(folder: Path) -> None:
    def run(*argv: str, code: int = 0) -> str:
        done = octy(*argv, cwd=folder)
        assert done.returncode == code, (argv, done.stdout, done.stderr)
        return done.stdout

    run("register", "-f", "other.yaml", "script")
    sent = json.loads(run("send", "-f", "other.yaml", "script", "hi", "--json"))
    assert "hi" in run("inbox", "-f", "other.yaml", "script")
    run("ask", "-f", "other.yaml", "a", "q?", "--timeout", "0", code=4)
    asked = json.loads(run("queue", "ls", "-f", "other.yaml", "--to", "a", "--json"))
    [request] = asked["messages"]
    run("reply", "-f", "other.yaml", request["id"], "answer", "--as", "a")
    run("queue", "show", "-f", "other.yaml", sent["message"]["id"])
    run("queue", "dead", "-f", "other.yaml")
    run("queue", "retry", "-f", "other.yaml", sent["message"]["id"], code=1)  # not dead
    run("queue", "purge", "-f", "other.yaml", "--yes")
    run("unregister", "-f", "other.yaml", "script")
    agents, messages = _rows(folder, "elsewhere/other.db")
    assert agents == {"a"}
    assert ("notice", "script", "pending") in messages
    assert _rows(folder, "queue/team.db") == ({"a"}, [])


def test_an_empty_roster_path_is_refused_on_every_verb(tmp_path: Path) -> None:
    """Walking the README: `-f ''` (a script's `-f "$ROSTER"` with ROSTER unset) was '.',
    so ./agents.yaml: `down -f "$ROSTER"` would stop the team of the current folder and
    `init --force -f "$ROSTER"` overwrite its roster. Now a usage error on every verb,
    before anything is read or written."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    before = (tmp_path / "agents.yaml").read_bytes()
    for argv in (
        ("-f", "", "ps"),
        ("ps", "-f", ""),
        ("down", "-f", ""),
        ("config", "--file", ""),
        ("logs", "--file", ""),
        ("workspaces", "-f", ""),
        ("init", "--force", "-f", ""),
        ("send", "-f", "", "a", "hi"),
        ("top", "-f", ""),
    ):
        done = octy(*argv, cwd=tmp_path)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "-f/--file: an empty path" in done.stderr or "--file: an empty path" in (
            done.stderr
        ), (argv, done.stderr)
    assert (tmp_path / "agents.yaml").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agents.yaml"]


def test_an_empty_file_for_logs_is_not_told_to_leave_out_its_follow(tmp_path: Path) -> None:
    """`logs --file ''` said 'leave -f out for ./agents.yaml': logs' -f is --follow."""
    done = octy("logs", "--file", "", cwd=tmp_path)
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    assert last.endswith("or leave the option out for ./agents.yaml"), last
    assert "-f out" not in last


def test_a_roster_path_of_spaces_is_quoted_in_its_error(tmp_path: Path) -> None:
    """Review: `ps -f '  '` said `octy-orchestrate:   : file not found`, the path unseen."""
    done = octy("ps", "-f", "  ", cwd=tmp_path)
    assert done.returncode != 0
    assert "octy-orchestrate: '  ': file not found;" in done.stderr, done.stderr
