"""Log files that cannot be written (issue 16, A.4), without a running team.

A file-size limit (RLIMIT_FSIZE on this process; Python ignores SIGXFSZ, so a
write past it fails with EFBIG as a write to a full disk fails with ENOSPC)
stands in for a full filesystem: it needs no privilege and is lifted at once.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from orchestrator import logconfig

LIMIT = 64 * 1024 * 1024


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o700)
    for name in ("supervisor", "a"):
        with (folder / f"{name}.jsonl").open("wb") as f:
            f.truncate(LIMIT)  # sparse: at the limit without using the disk
    logconfig.configure(folder, max_bytes=4 * LIMIT)
    yield folder
    logconfig.shutdown()


def test_unwritable_log_files_are_reported_once_and_resume(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five events for agent a while neither its file nor the supervisor's can grow: the
    log calls return normally, stderr says so once (not per file, not per line); with
    room again, each file gets a log_resumed line counting what it lost, then the new
    events, and stderr says writing resumed, once."""
    log = structlog.get_logger()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
    try:
        for n in range(5):
            log.info("lost", agent="a", n=n)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1, err
    for name in ("supervisor", "a"):
        with (logs / f"{name}.jsonl").open("r+b") as f:
            f.truncate(0)
    log.info("kept", agent="a")
    err = capsys.readouterr().err
    assert err.count("again (5 log line(s) dropped)") == 1, err
    for name in ("supervisor", "a"):
        lines = [json.loads(x) for x in (logs / f"{name}.jsonl").read_text().splitlines()]
        assert [e["event"] for e in lines] == ["log_resumed", "kept"]
        assert lines[0]["dropped"] == 5


def test_a_line_cut_short_by_the_full_disk_is_ended_before_the_next(logs: Path) -> None:
    """A write that got part of a line out before the disk filled leaves a fragment; the
    resumed file starts a fresh line, so every following line is whole JSON."""
    path = logs / "supervisor.jsonl"
    with path.open("r+b") as f:
        f.truncate(0)
    log = structlog.get_logger()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # room for part of one line
    try:
        log.info("cut", filler="x" * 8000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.stat().st_size == 4096
    with path.open("r+b") as f:  # room again; a fragment stays
        f.truncate(50)
    log.info("whole")
    fragment, *rest = path.read_text().splitlines()
    assert fragment.startswith('{"')
    assert [json.loads(x)["event"] for x in rest] == ["log_resumed", "whole"]
