"""`log_backups: 0`: the roster accepts it, so it must keep the log within its size.

The stdlib's RotatingFileHandler renames nothing when it keeps no backups, and then
opens the same full file again: the log grew for ever. A file that reaches
`log_max_bytes` now starts over, as a new file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from orchestrator import logconfig, logview

MAX = 2000
log = structlog.get_logger()


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "logs"
    logconfig.configure(folder, max_bytes=MAX, backups=0)
    yield folder
    logconfig.shutdown()
    structlog.reset_defaults()


def test_no_backups_means_the_file_starts_over_at_its_size(logs: Path) -> None:
    for i in range(300):
        log.info("received", agent="a", seq=i)
    for name in ("supervisor.jsonl", "a.jsonl"):
        path = logs / name
        assert path.stat().st_size < MAX
        seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
        assert seqs == list(range(seqs[0], 300))  # the newest lines, whole and in order
        assert seqs[0] > 0
        assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in logs.iterdir()) == ["a.jsonl", "supervisor.jsonl"]


def test_a_follower_reads_every_line_across_the_start_overs(logs: Path) -> None:
    """The full file is replaced, not truncated in place: a reader holding it open
    (`logs -f`, top) reads it to its end, then goes on in the new one."""
    gaps: list[Path] = []
    follower = logview.FileFollower(logs / "a.jsonl", "a", on_gap=gaps.append)
    seen: list[int] = []
    try:
        follower.history()
        for i in range(300):
            log.info("received", agent="a", seq=i)
            seen += [int(line.event["seq"]) for line in follower.poll() if line.event]
        assert seen == list(range(300))
        assert gaps == []
    finally:
        follower.close()
