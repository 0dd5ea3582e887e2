"""Reading logs whose files were moved, deleted or left with a hole in the backups.

A follower used to re-read every backup as new after the live file was moved
away (logrotate ``dateext``) or deleted, with a false "lines were removed"
warning; a missing ``.1`` between ``.2`` and the live file hid the whole log.
A follower now remembers every file it read by identity and offset, and reads
the files that exist when the backups have a hole.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from test_cli_logs import Follow, Team

from orchestrator import logconfig, logview
from orchestrator.cli import main

log = structlog.get_logger()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    made = Team(tmp_path)
    yield made
    logconfig.shutdown()
    structlog.reset_defaults()


def _seqs(lines: list[logview.LogLine]) -> list[int]:
    return [int(line.event["seq"]) for line in lines if line.event]


def _with_backups(team: Team, n: int = 60) -> Path:
    """``n`` events in supervisor.jsonl with at least ``.1`` and ``.2`` beside it."""
    team.configure(max_bytes=1500, backups=20)
    team.emit(n)
    base = team.logs / "supervisor.jsonl"
    assert (team.logs / "supervisor.jsonl.2").exists()
    return base


# --- the live file moved away or deleted ----------------------------------------------


def test_follower_reads_only_new_lines_after_the_live_file_is_moved_or_deleted(
    team: Team,
) -> None:
    base = _with_backups(team)
    gaps: list[Path] = []
    follower = logview.FileFollower(base, on_gap=gaps.append)
    try:
        assert _seqs(follower.history()) == list(range(60))
        base.rename(base.with_name("supervisor.jsonl-20261128"))  # logrotate dateext
        log.info("received", seq=60)
        assert _seqs(follower.poll()) == [60]
        base.unlink()
        assert follower.poll() == []
        log.info("received", seq=61)
        assert _seqs(follower.poll()) == [61]
        shutil.rmtree(team.logs)
        assert follower.poll() == []
        log.info("received", seq=62)
        assert _seqs(follower.poll()) == [62]
        for i in range(63, 120):  # rotating normally again afterwards
            log.info("received", seq=i)
        assert _seqs(follower.poll()) == list(range(63, 120))
        assert gaps == []
    finally:
        follower.close()


def test_a_file_on_a_reused_inode_is_read_as_new(team: Team) -> None:
    """A deleted backup's inode may be given at once to a new file: the follower knows a file
    by its inode and its bytes, so a new file there is read from its start."""
    base = _with_backups(team)
    follower = logview.FileFollower(base)
    try:
        follower.history()
        one = base.with_name("supervisor.jsonl.1")
        size = one.stat().st_size
        with one.open("r+b") as f:  # what a reused inode looks like: other bytes, same ino
            f.write(b'{"seq": 1000}\n'.ljust(size - 1, b" ") + b"\n")
        base.rename(base.with_name("supervisor.jsonl-moved"))
        log.info("received", seq=60)
        assert _seqs(follower.poll()) == [1000, 60]
    finally:
        follower.close()


@pytest.mark.cli
def test_logs_follow_shows_each_line_once_when_the_live_file_is_moved_or_deleted(
    team: Team,
) -> None:
    """`logs -f` (a real process) after `mv supervisor.jsonl supervisor.jsonl-20261128`,
    `rm supervisor.jsonl` and `rm -rf logs`: only the new events, and no warning."""
    base = _with_backups(team)
    follow = Follow(team)
    try:
        assert follow.seqs_until(59) == list(range(50, 60))
        base.rename(base.with_name("supervisor.jsonl-20261128"))
        log.info("received", seq=60)
        assert follow.seqs_until(60) == [60]
        base.unlink()
        log.info("received", seq=61)
        assert follow.seqs_until(61) == [61]
        shutil.rmtree(team.logs)
        log.info("received", seq=62)
        assert follow.seqs_until(62) == [62]
    finally:
        err = follow.stop()
    assert "removed" not in err, err


# --- a hole in the backups --------------------------------------------------------------


def test_logs_reads_the_files_that_exist_when_a_backup_is_missing(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    """supervisor.jsonl, .3 and .2 but no .1 (deleted by hand, or a kill -9 mid-rotation):
    `logs` shows what is there, in order, and says once that a backup is missing."""
    base = _with_backups(team, 90)
    backups = logview.rotated_paths(base)
    assert len(backups) >= 3
    one = (team.logs / "supervisor.jsonl.1").read_text(encoding="utf-8")
    lost = {json.loads(line)["seq"] for line in one.splitlines()}
    (team.logs / "supervisor.jsonl.1").unlink()
    assert main(["logs", "--json", "--file", str(team.roster)]) == 0
    out, err = capsys.readouterr()
    assert [e["seq"] for e in map(json.loads, out.splitlines())] == [
        i for i in range(90) if i not in lost
    ]
    assert err.count("supervisor.jsonl.1") == 1, err
    assert "missing" in err


def test_follower_goes_on_across_a_hole_in_the_backups(team: Team) -> None:
    """The follower (`logs -f`, top's events) reads past the hole and follows new lines, and
    the hole moving up with each rotation neither repeats nor drops a line."""
    base = _with_backups(team, 90)
    (team.logs / "supervisor.jsonl.1").unlink()
    holes: list[tuple[Path, tuple[int, ...], int]] = []
    follower = logview.FileFollower(base, on_hole=lambda *hole: holes.append(hole))
    try:
        first = _seqs(follower.history())
        assert first == sorted(first)
        assert first[-1] == 89
        for i in range(90, 200):
            log.info("received", seq=i)
        assert _seqs(follower.poll()) == list(range(90, 200))
        assert holes == [(base, (1,), 1)]  # once, though the hole is still there
    finally:
        follower.close()


def test_a_stray_huge_backup_number_is_counted_not_listed(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    """`supervisor.jsonl.99999999` beside the log (copied there by hand): read first, as
    the oldest, and the warning counts the missing numbers instead of listing them."""
    team.configure()
    team.emit(3)
    (team.logs / "supervisor.jsonl.99999999").write_text('{"seq": -1}\n', encoding="utf-8")
    assert main(["logs", "--json", "--file", str(team.roster)]) == 0
    out, err = capsys.readouterr()
    assert [e["seq"] for e in map(json.loads, out.splitlines())] == [-1, 0, 1, 2]
    assert "supervisor.jsonl.1, supervisor.jsonl.2" in err
    assert "and 99999993 more are missing" in err
