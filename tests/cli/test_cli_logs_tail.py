"""`logs -n N` (and the first lines of `logs -f`) read from the end of the files backwards.

The backward reading must give exactly the last N lines of the whole history: across
rotated files, past blank lines, a line longer than a read block, and without the
live file's line still being written; and a follower that started that way goes on
with the new lines only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from test_cli_logs import Team

from orchestrator import logconfig, logview
from orchestrator.cli import main

log = structlog.get_logger()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    made = Team(tmp_path)
    made.configure(max_bytes=3000, backups=50)
    yield made
    logconfig.shutdown()
    structlog.reset_defaults()


def _logs(capsys: pytest.CaptureFixture[str], team: Team, *argv: str) -> list[str]:
    assert main(["logs", "--json", *argv, "--file", str(team.roster)]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_last_lines_are_the_end_of_the_whole_history(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    team.emit(40)
    log.info("received", agent="a", seq=40, body="y" * 150_000)  # longer than a read block
    team.emit(60)
    base = team.logs / "supervisor.jsonl"
    with base.open("a", encoding="utf-8") as f:
        f.write("\n\n")  # blank lines are no lines
    assert len(logview.rotated_paths(base)) >= 4
    whole = _logs(capsys, team)
    with base.open("a", encoding="utf-8") as f:
        f.write('{"seq": 999, "half')  # a line being written: not shown by either reading
    assert _logs(capsys, team) == whole
    for n in (0, 1, 5, 59, 60, 61, 62, 150, 1000):
        assert _logs(capsys, team, "-n", str(n)) == (whole[-n:] if n else []), n
    a_whole = _logs(capsys, team, "a")
    assert _logs(capsys, team, "a", "-n", "25") == a_whole[-25:]
    both = _logs(capsys, team, "a", "b")
    assert _logs(capsys, team, "a", "b", "-n", "9") == both[-9:]


def test_a_follower_started_from_the_tail_goes_on_with_new_lines_only(team: Team) -> None:
    team.emit(100, agents=("a",))
    follower = logview.FileFollower(team.logs / "a.jsonl", "a")
    try:
        first = follower.history_tail(3)
        assert [int(line.event["seq"]) for line in first if line.event] == [97, 98, 99]
        assert follower.poll() == []
        for i in range(100, 200):
            log.info("received", agent="a", seq=i)
        got = [int(line.event["seq"]) for line in follower.poll() if line.event]
        assert got == list(range(100, 200))
    finally:
        follower.close()
