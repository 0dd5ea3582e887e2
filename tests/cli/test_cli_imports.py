"""The CLI imports only what a verb needs (issue 14.1): scripts and Claude Code hooks run
`send`, `inbox`, `reply`, `ps` on every event, and importing the SDK, mcp, structlog, rich,
the event loop or the supervisor cost several times what writing one row does.

Pinned by which modules a real run left in ``sys.modules``, never by its time."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy

from orchestrator.cli import _VERB_MODULES, VERB_HOMES, main, modules_for
from orchestrator.mailbox import Mailbox

HEAVY = (
    "claude_agent_sdk",
    "mcp",
    "structlog",
    "rich",
    "anyio",
    "asyncio",
    "psutil",
    "orchestrator.supervisor",
    "orchestrator.supervision",  # the supervisor's machinery
    "orchestrator.logconfig",
    "orchestrator.control",
    # each 1-3 ms, needed only by what waits (inotify's ctypes), `up -d` (subprocess) or a
    # broken roster's team record (hashlib: OpenSSL's start-up)
    "ctypes",
    "subprocess",
    "hashlib",
)
# Run a verb as the console script does, then say which modules it loaded.
PROBE = """
import json, sys
from orchestrator.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A project folder as `init` writes it, with a registered name and a request to it."""
    octy("init", cwd=tmp_path, check=True)
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("bob")
    return tmp_path


def _loaded(folder: Path, *argv: str) -> set[str]:
    out = folder / "modules.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *argv],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = json.loads(out.read_text())
    assert result["code"] in (0, None), result["code"]
    return set(result["modules"])


def _request(folder: Path) -> str:
    with Mailbox(folder / "queue" / "team.db") as mb:
        return mb.request("user", "bob", "question").id


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("send", "bob", "hello"),
        ("inbox", "bob"),
        ("inbox", "bob", "--ack"),
        ("reply", "REQUEST", "answer", "--as", "bob"),
        ("ps",),
        ("ps", "--json"),
        ("queue", "ls"),
    ],
    ids=" ".join,
)
def test_an_everyday_verb_imports_nothing_heavy(team: Path, argv: tuple[str, ...]) -> None:
    argv = tuple(_request(team) if a == "REQUEST" else a for a in argv)
    loaded = _loaded(team, *argv)
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_version_reads_no_verb_module_and_no_queue(team: Path) -> None:
    loaded = _loaded(team, "--version")
    assert "orchestrator.mailbox" not in loaded
    assert "orchestrator.roster" not in loaded


def test_a_verb_given_its_database_reads_no_roster(tmp_path: Path) -> None:
    db = tmp_path / "team.db"
    with Mailbox(db) as mb:
        mb.register("bob")
    loaded = _loaded(tmp_path, "send", "bob", "hi", "--db", str(db))
    assert "orchestrator.roster" not in loaded
    assert "yaml" not in loaded


def test_the_table_of_verbs_matches_what_each_module_registers() -> None:
    """VERB_HOMES is how a run finds its verb's module: each verb a module registers is
    listed with that module, and nothing else is listed."""
    registered: dict[str, str] = {}
    for name in _VERB_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == VERB_HOMES


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["send", "bob", "x"], ("orchestrator.cli.queue_verbs",)),
        (["-f", "team.yaml", "ps"], ("orchestrator.cli.team_verbs",)),
        (["--file", "send", "ps"], ("orchestrator.cli.team_verbs",)),  # `send` is the file
        (["--fil=x.yaml", "ps"], _VERB_MODULES),
        (["-fteam.yaml", "queue", "ls"], ("orchestrator.cli.queue_verbs",)),
        (["--version"], ()),
        (["--vers"], ()),
        (["-f", "x", "--version"], ()),
        ([], _VERB_MODULES),
        (["--help"], _VERB_MODULES),
        (["-h", "send"], _VERB_MODULES),
        (["--", "send"], _VERB_MODULES),
        (["sned", "bob"], _VERB_MODULES),  # the error lists every verb
    ],
)
def test_which_modules_a_command_line_needs(argv: list[str], expected: tuple[str, ...]) -> None:
    assert modules_for(argv) == expected


def test_a_typo_still_gets_the_full_list_of_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sned", "bob", "hi"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'sned'" in err
    for verb in ("send", "ps", "up", "top", "approvals"):
        assert f"'{verb}'" in err


@pytest.mark.parametrize("argv", [("send", "bob", "hi"), ("ps",), ("queue", "ls")])
def test_a_run_parses_the_roster_once(
    team: Path, argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """resolve_db and resolve_place (and `ps`, which asks both) share one parse per run,
    and a run after it parses again only once the file changed."""
    import orchestrator.roster

    parsed: list[Path] = []
    real = orchestrator.roster.load_roster

    def counting(path: Any, environ: Any = None) -> Any:
        parsed.append(Path(path))
        return real(path, environ)

    monkeypatch.setattr(orchestrator.roster, "load_roster", counting)
    monkeypatch.chdir(team)
    assert main(list(argv)) == 0
    assert parsed == [Path("agents.yaml")]
    assert main(list(argv)) == 0  # unchanged: remembered (test_roster_cache.py)
    assert parsed == [Path("agents.yaml")]
    roster = team / "agents.yaml"
    roster.write_text(roster.read_text() + "# edited\n")
    assert main(list(argv)) == 0  # the next run reads the file as it is then
    assert parsed == [Path("agents.yaml")] * 2
