"""Log files deleted or moved away under a running team.

`rm -rf logs` (or `rm logs/*.jsonl`, or logrotate renaming a file without
copytruncate) left the open files unlinked: every later line went to a file
nobody could open, until the team restarted. The writer now notices the file at
its path is not the one it has open and opens it again.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from orchestrator import logconfig


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "logs"
    logconfig.configure(folder)
    yield folder
    logconfig.shutdown()


def events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_a_deleted_logs_folder_is_made_again_and_written(logs: Path) -> None:
    log = structlog.get_logger()
    log.info("before", agent="a")
    shutil.rmtree(logs)
    log.info("after", agent="a")
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for name in ("a", "supervisor"):
        path = logs / f"{name}.jsonl"
        assert events(path) == ["after"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_moved_away_is_opened_again_at_its_path(logs: Path) -> None:
    """logrotate's default (rename, then expect the program to reopen)."""
    log = structlog.get_logger()
    log.info("old", agent="a")
    os.rename(logs / "a.jsonl", logs / "a.jsonl.1")
    log.info("new", agent="a")
    assert events(logs / "a.jsonl.1") == ["old"]
    assert events(logs / "a.jsonl") == ["new"]
    assert events(logs / "supervisor.jsonl") == ["old", "new"]  # not moved: not reopened


def test_a_file_where_the_folder_was_is_a_write_failure_not_an_error(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What stands at the path now cannot hold logs: the lines are dropped and counted,
    said once on stderr, and the log call returns (the team is not stopped by its log);
    once a folder is back they are written again."""
    log = structlog.get_logger()
    log.info("before", agent="a")
    shutil.rmtree(logs)
    logs.write_text("not a folder")
    log.info("lost", agent="a")
    assert "cannot write the log file" in capsys.readouterr().err
    logs.unlink()
    log.info("after", agent="a")
    assert events(logs / "a.jsonl") == ["log_resumed", "after"]
