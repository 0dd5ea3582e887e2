"""A team folder whose name is not UTF-8 (a byte such as 0xff, as a file copied from an
old Latin-1 system has): `up` refuses it in one line, and paths in messages show the byte
as `\\xff`, never as Python's stand-in `\\udcff`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import octy

from orchestrator.redact import escape_controls, for_people


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    folder = tmp_path / os.fsdecode(b"team\xffdir")
    folder.mkdir()
    (folder / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    return folder


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": "test",
        "LANG": "C",
    }


@pytest.mark.parametrize("detach", [False, True])
def test_up_in_a_folder_whose_name_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, odd_folder: Path, detach: bool
) -> None:
    """Regression: `up` there ended in a traceback (UnicodeEncodeError: surrogates not
    allowed, registering the supervisor, its queue already made); `up -d` said 'the
    supervisor exited at once' with the background supervisor's usage error about its own
    -f argument. Now: exit 2 naming the path and what to do; no queue is made."""
    done = octy(
        "up", *(["-d"] if detach else []), "--no-model-check", cwd=odd_folder, env=_env(tmp_path)
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "team\\xffdir/agents.yaml is not valid UTF-8 text" in lines[0]
    assert "rename its folder" in lines[0]
    assert not (odd_folder / "queue").exists()
    assert not (odd_folder / "logs").exists()


def test_a_verb_names_such_a_path_with_the_byte_it_holds(tmp_path: Path, odd_folder: Path) -> None:
    """Regression: `ps` there said `no team database at /…/team\\udcffdir/queue/team.db`."""
    done = octy("ps", cwd=odd_folder, env=_env(tmp_path))
    assert done.returncode == 3, done.stderr
    assert "team\\xffdir/queue/team.db" in done.stderr
    assert "udcff" not in done.stderr


def test_undecodable_bytes_show_as_the_bytes() -> None:
    text = os.fsdecode(b"a\x80b\xffc")
    assert escape_controls(text) == "a\\x80b\\xffc"
    assert escape_controls(text, multiline=True) == "a\\x80b\\xffc"
    assert for_people(text + "\n\u00e9") == "a\\x80b\\xffc\\n\u00e9"


def test_config_shows_such_a_path_with_the_byte_it_holds(tmp_path: Path, odd_folder: Path) -> None:
    """Left open by the last session: `config` there printed `name: "team\\uDCFFdir"` and
    every path with it (YAML's escape of Python's stand-in), `--json` "team\\udcffdir" (a
    lone surrogate, which strict JSON readers refuse). Shown now as the byte, `\\xff`, as
    every other message shows it; the rest of the text (a prompt's lines) is unchanged."""
    (odd_folder / "agents.yaml").write_text(
        'agents:\n  a:\n    prompt: "line one\\nline two é"\n', encoding="utf-8"
    )
    done = octy("config", cwd=odd_folder, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "name: team\\xffdir\n" in done.stdout
    assert "team\\xffdir/queue/team.db" in done.stdout
    assert "udcff" not in done.stdout.lower()
    as_json = octy("config", "--json", cwd=odd_folder, env=_env(tmp_path))
    assert as_json.returncode == 0, as_json.stderr
    assert "udcff" not in as_json.stdout.lower()
    data = json.loads(as_json.stdout)
    assert data["name"] == "team\\xffdir"
    assert data["agents"]["a"]["cwd"].endswith("/team\\xffdir")
    assert data["agents"]["a"]["prompt"] == "line one\nline two é"
