"""JSON nested deeper than Python reads, in the places others write (orchestrator/jsontext.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import jsontext
from orchestrator.logview import LogLine

DEEP = "[" * 5000 + "]" * 5000
CLI = Path(sys.executable).parent / "octy-orchestrate"


def test_too_deep_is_a_value_error_like_bad_json() -> None:
    with pytest.raises(ValueError, match="nested too deep"):
        jsontext.loads(DEEP)
    assert jsontext.loads("[[1]]") == [[1]]


def test_a_log_line_nested_too_deep_is_not_an_event() -> None:
    assert LogLine('{"a": ' + DEEP + "}").event is None


def test_logs_shows_a_file_with_such_a_line(tmp_path: Path) -> None:
    """`logs` read it with json.loads and ended in a RecursionError traceback."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    line = '{"event": "x", "timestamp": "2026-11-28T10:00:00Z", "agent": "supervisor"}'
    (logs / "supervisor.jsonl").write_text(line + "\n" + DEEP + "\n")
    (logs / "supervisor.jsonl").chmod(0o600)
    done = subprocess.run(
        [str(CLI), "logs"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert "supervisor  | x" in done.stdout
