"""`octy-orchestrate logs`, on log files written by the real logconfig (small rotation sizes).

In-process runs go through ``main([...])``; ``logs -f`` runs as a real subprocess
that the test feeds while it follows, rotations included.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from cli_runner import octy_bg

from orchestrator import logconfig, logview
from orchestrator.cli import main

WAIT_S = 60.0  # safety net for a wedged follower, not a measurement
log = structlog.get_logger()


class Team:
    """A roster file whose logs folder the real logconfig writes to."""

    def __init__(self, root: Path) -> None:
        self.roster = root / "agents.yaml"
        self.logs = root / "logs"
        self.roster.write_text(
            "logs: logs\nagents:\n  a:\n    prompt: You are a.\n  b:\n    prompt: You are b.\n",
            encoding="utf-8",
        )

    def configure(self, *, max_bytes: int = 1_000_000, backups: int = 5) -> None:
        logconfig.configure(self.logs, max_bytes=max_bytes, backups=backups)

    def emit(self, n: int, *, agents: tuple[str | None, ...] = ("a", "b", None), **kw: Any) -> None:
        """``n`` events numbered ``seq`` 0..n-1, round-robin over ``agents`` (None: the
        supervisor's own)."""
        for i in range(n):
            agent = agents[i % len(agents)]
            fields = {"agent": agent} if agent else {}
            log.info("received", seq=i, **fields, **kw)

    def files(self) -> list[Path]:
        return sorted(self.logs.iterdir())


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    made = Team(tmp_path)
    yield made
    logconfig.shutdown()
    structlog.reset_defaults()  # later tests see structlog as if never configured


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(team: Team, capsys: pytest.CaptureFixture[str]) -> Run:
    """``main(["logs", ..., "--file", roster])`` in-process: (exit code, stdout, stderr)."""

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(["logs", *argv, "--file", str(team.roster)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# --- reading --------------------------------------------------------------------------


def test_logs_shows_every_event_in_time_order_with_the_agent_first(team: Team, run: Run) -> None:
    """Without AGENT every event appears once, oldest first, as `time agent | event fields`."""
    team.configure()
    team.emit(9)
    code, out, _ = run()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 9
    assert [int(line.split("seq=")[1].split()[0]) for line in lines] == list(range(9))
    assert lines[0].split()[1] == "a"
    assert "| received" in lines[0]
    assert lines[2].split()[1] == "supervisor"
    assert "\x1b[" not in out  # not a terminal and no --color


def test_logs_reads_rotated_files_oldest_first(team: Team, run: Run) -> None:
    """Once supervisor.jsonl has rotated (.1, .2 …), the history still reads whole and in order."""
    team.configure(max_bytes=2000, backups=50)
    team.emit(120)
    assert (team.logs / "supervisor.jsonl.3").exists()
    code, out, _ = run("--json")
    assert code == 0
    assert [e["seq"] for e in events(out)] == list(range(120))


def test_logs_for_named_agents_merges_their_files_in_time_order(team: Team, run: Run) -> None:
    """`logs a b` interleaves a's and b's files by time; `logs supervisor` is the unbound events."""
    team.configure(max_bytes=1500, backups=50)
    team.emit(60)
    code, out, _ = run("--json", "a", "b")
    assert code == 0
    got = events(out)
    assert [e["seq"] for e in got] == [i for i in range(60) if i % 3 != 2]
    assert {e["agent"] for e in got} == {"a", "b"}
    code, out, _ = run("--json", "supervisor")
    assert code == 0
    assert [e["seq"] for e in events(out)] == list(range(2, 60, 3))
    assert {e["agent"] for e in events(out)} == {"supervisor"}


def test_tail_keeps_the_last_events(team: Team, run: Run) -> None:
    """`--tail N` prints the last N events of the merged history; `--tail 0` none."""
    team.configure(max_bytes=1500, backups=50)
    team.emit(40)
    assert [e["seq"] for e in events(run("--json", "--tail", "4")[1])] == [36, 37, 38, 39]
    assert [e["seq"] for e in events(run("--json", "--tail", "3", "a")[1])] == [33, 36, 39]
    assert run("--tail", "0") == (0, "", "")


def test_since_takes_a_duration_or_an_iso_time(team: Team, run: Run) -> None:
    """`--since 1h` keeps recent events; an ISO time (zoned, or local without a zone) cuts the
    history where it falls; a time to come keeps nothing."""
    team.configure()
    team.emit(3, batch="early")
    middle = datetime.now(UTC)
    team.emit(2, batch="late")
    assert len(events(run("--json", "--since", "1h")[1])) == 5
    later = events(run("--json", "--since", middle.isoformat())[1])
    assert [e["batch"] for e in later] == ["late", "late"]
    local = middle.astimezone().replace(tzinfo=None).isoformat()
    assert [e["batch"] for e in events(run("--json", "--since", local)[1])] == ["late", "late"]
    assert run("--since", "2999-01-01T00:00:00Z") == (0, "", "")


def test_since_that_is_no_time_is_a_usage_error(team: Team, run: Run) -> None:
    """An unreadable --since exits 2 and shows the accepted forms."""
    team.configure()
    team.emit(1)
    code, _, err = run("--since", "yesterday")
    assert code == 2
    assert "10s, 5m, 1h" in err


def test_bodies_are_shortened_unless_full(team: Team, run: Run) -> None:
    """A long body is cut with '…' on one line; `--full` prints it whole, still one line."""
    team.configure()
    body = "word " * 100 + "\nlast line"
    log.info("asked", agent="a", request_id="r1", body=body)
    code, out, _ = run()
    assert code == 0
    assert len(out.splitlines()) == 1
    assert "…" in out
    assert "last line" not in out
    code, out, _ = run("--full")
    assert len(out.splitlines()) == 1
    assert "word " * 100 in out
    assert "⏎last line" in out


def test_json_passes_the_file_lines_through(team: Team, run: Run) -> None:
    """`--json` writes the stored lines byte for byte."""
    team.configure()
    team.emit(5, body="x")
    code, out, _ = run("--json")
    assert code == 0
    assert out == (team.logs / "supervisor.jsonl").read_text(encoding="utf-8")


def test_color_only_when_asked_or_on_a_terminal(team: Team, run: Run) -> None:
    """Output is plain when piped; `--color` adds the agent's colour around its name."""
    team.configure()
    team.emit(2)
    _, plain, _ = run()
    _, coloured, _ = run("--color")
    assert "\x1b[" not in plain
    assert f"\x1b[{logconfig.agent_colour('a')}ma" in coloured


def test_no_logs_yet_is_a_clear_error(
    team: Team, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the team ever ran: exit 3 saying there are no logs yet and where they will be."""
    code, out, err = run()
    assert code == 3
    assert out == ""
    assert "no logs yet" in err
    assert str(team.logs) in err
    code = main(["logs", "--json", "--file", str(team.roster)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3
    assert doc["ok"] is False
    assert doc["error"] == "not_found"


def test_an_unknown_agent_is_named_with_the_known_ones(team: Team, run: Run) -> None:
    """`logs zed` for an agent neither in the roster nor in the logs exits 3 listing the agents."""
    team.configure()
    team.emit(3)
    code, _, err = run("zed")
    assert code == 3
    assert "no agent named 'zed'" in err
    assert "a, b" in err


def test_logs_folder_comes_from_the_roster(
    tmp_path: Path, team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --file, ./agents.yaml names the folder; `--logs DIR` reads another one."""
    team.configure()
    team.emit(2)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["logs", "--json"]) == 0
        assert len(events(capsys.readouterr().out)) == 2
    finally:
        os.chdir(cwd)
    assert main(["logs", "--json", "--logs", str(team.logs)]) == 0
    assert len(events(capsys.readouterr().out)) == 2


def test_secrets_never_reach_the_files(team: Team, run: Run) -> None:
    """A registered secret value, a secret-named env value and an sk-ant- key are redacted
    in every file, rotated ones included, and so in `logs --json --full`."""
    secret = "correct-horse-battery-staple"
    env_token = "tok-5f1e2d3c4b5a6978"
    api_key = "sk-ant-api03-" + "Q" * 40
    logconfig.REDACTOR.add([secret])
    logconfig.REDACTOR.add_from_env({"TEAM_SERVICE_TOKEN": env_token})
    team.configure(max_bytes=800, backups=20)
    for i in range(30):
        log.info(
            "asked", agent="a", seq=i, body=f"use {secret} and {api_key}", input={"t": env_token}
        )
    assert (team.logs / "a.jsonl.1").exists()
    for path in team.files():
        text = path.read_text(encoding="utf-8")
        assert secret not in text
        assert env_token not in text
        assert "sk-ant-api03" not in text
        assert logconfig.REDACTED in text
    code, out, _ = run("--json", "--full")
    assert code == 0
    assert len(out.splitlines()) == 30
    assert secret not in out
    assert env_token not in out
    assert "sk-ant-api03" not in out


def test_parse_since_reads_every_unit() -> None:
    """Durations in ms/s/m/h/d count back from now; a zoned ISO time is kept as given."""
    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert logview.parse_since("90s", now) == datetime(2025, 1, 31, 11, 58, 30, tzinfo=UTC)
    assert logview.parse_since("5m", now).minute == 55
    assert logview.parse_since("2h", now).hour == 10
    assert logview.parse_since("1d", now).day == 30
    assert logview.parse_since("500ms", now).second == 59
    zoned = logview.parse_since("2025-01-31T13:00:00+01:00", now)
    assert zoned == datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


# --- following ------------------------------------------------------------------------


def _seqs(lines: list[logview.LogLine]) -> list[int]:
    return [int(line.event["seq"]) for line in lines if line.event]


def test_follower_reads_files_rotated_between_polls(team: Team) -> None:
    """Several rotations between two polls: the follower drains its old file and reads every
    file created since, so no line is lost or repeated."""
    team.configure(max_bytes=1000, backups=100)
    team.emit(5, agents=("a",))
    follower = logview.FileFollower(team.logs / "a.jsonl", "a")
    try:
        assert _seqs(follower.history()) == list(range(5))
        assert follower.poll() == []
        for start in (5, 60):
            for i in range(start, start + 55):
                log.info("received", agent="a", seq=i)
            assert _seqs(follower.poll()) == list(range(start, start + 55))
        assert len(logview.rotated_paths(team.logs / "a.jsonl")) >= 5
    finally:
        follower.close()


def test_follower_reports_a_gap_when_rotation_outruns_the_backups(team: Team) -> None:
    """If its file was rotated away entirely, the follower says so and goes on with what is left."""
    team.configure(max_bytes=600, backups=2)
    team.emit(2, agents=("a",))
    gaps: list[Path] = []
    follower = logview.FileFollower(team.logs / "a.jsonl", "a", on_gap=gaps.append)
    try:
        follower.history()
        for i in range(2, 80):
            log.info("received", agent="a", seq=i)
        got = _seqs(follower.poll())
        assert gaps == [team.logs / "a.jsonl"]
        assert got == sorted(got)
        assert got[-1] == 79
        log.info("received", agent="a", seq=80)
        assert _seqs(follower.poll()) == [80]
    finally:
        follower.close()


def test_follower_starts_over_when_the_file_is_truncated(team: Team) -> None:
    """A log truncated in place (copytruncate style) is read again from its start."""
    path = team.logs / "x.jsonl"
    team.logs.mkdir()
    path.write_text('{"seq": 0}\n{"seq": 1}\n', encoding="utf-8")
    follower = logview.FileFollower(path, "x")
    try:
        assert _seqs(follower.history()) == [0, 1]
        path.write_text('{"seq": 2}\n', encoding="utf-8")
        assert _seqs(follower.poll()) == [2]
    finally:
        follower.close()


class Follow:
    """``octy-orchestrate logs -f --json …`` with its stdout read by a thread."""

    def __init__(self, team: Team, *argv: str) -> None:
        self.proc = octy_bg(
            "logs", "-f", "--json", *argv, "--file", str(team.roster), cwd=team.roster.parent
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def seqs_until(self, last: int) -> list[int]:
        """The ``seq`` of each event printed, up to the one numbered ``last``."""
        seen: list[int] = []
        while not seen or seen[-1] != last:
            try:
                line = self.lines.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"logs -f printed no event {last}; got {seen}; stderr: {self.stop()}")
            seen.append(json.loads(line)["seq"])
        return seen

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=WAIT_S)
        return err


@pytest.mark.cli
def test_logs_follow_prints_new_events_across_rotation(team: Team) -> None:
    """`logs -f` (a real process) starts with the last 10 events, then prints every new one in
    order while the writer rotates the file many times, none lost or doubled."""
    team.configure(max_bytes=1200, backups=200)
    team.emit(25)
    follow = Follow(team)
    try:
        assert follow.seqs_until(24) == list(range(15, 25))
        for i in range(25, 400):
            log.info("received", agent="a", seq=i, body="x" * (i % 40))
        assert follow.seqs_until(399) == list(range(25, 400))
        assert len(logview.rotated_paths(team.logs / "supervisor.jsonl")) > 20
    finally:
        follow.stop()


@pytest.mark.cli
def test_logs_follow_waits_for_a_team_that_has_not_logged_yet(team: Team) -> None:
    """`logs -f b` before any log exists says it is waiting, then prints b's events as they
    come, and only b's."""
    follow = Follow(team, "b")
    assert follow.proc.stderr is not None
    waiting = follow.proc.stderr.readline()  # emit only once it has found nothing
    try:
        assert "no logs yet" in waiting
        assert "waiting" in waiting
        team.configure(max_bytes=900, backups=100)
        team.emit(120)
        assert follow.seqs_until(118) == list(range(1, 120, 3))
    finally:
        follow.stop()


def test_a_roster_with_errors_still_leads_to_its_logs(
    team: Team, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken agents.yaml (say, a rejected hot edit) does not hide the logs: its `logs`
    folder is read as plain YAML, with a warning pointing at `config`."""
    team.logs = team.roster.parent / "elsewhere"
    team.configure()
    team.emit(3)
    team.roster.write_text(
        "logs: elsewhere\nagents:\n  a:\n    prompt: A.\n    restart: sometimes\n",
        encoding="utf-8",
    )
    code, out, err = run("--json")
    assert code == 0
    assert len(events(out)) == 3
    assert "problem(s)" in err
    assert "octy-orchestrate config" in err
    assert main(["logs", "--file", str(team.roster.parent / "missing.yaml")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_tool_inputs_show_their_characters_and_are_cut_between_them(team: Team, run: Run) -> None:
    """A structured field (a tool's input) reads as the agent wrote it, not as \\uXXXX
    escapes; controls and bidi characters are still escaped; a long one is cut between
    characters, never inside an escape (reviewer G, finding 7)."""
    team.configure()
    text = "Résumé: 日本語の質問 😀 \u202e"
    log.info("tool_used", agent="a", tool="Write", input={"content": text})
    # Cut to 119 characters and '…': 13 of '{"content": "' and 102 of 'é', then JSON's
    # escape of ESC, whose first four characters would be the last ones kept.
    log.info("tool_used", agent="a", tool="Write", input={"content": "é" * 102 + "\x1b["})
    log.info("tool_used", agent="a", tool="Write", input={"content": "half \ud83d"})
    code, out, _ = run()
    assert code == 0
    first, second, third = out.splitlines()
    assert third.endswith('input={"content": "half \\ud83d"}'), third
    assert 'input={"content": "Résumé: 日本語の質問 😀 \\u202e"}' in first, first
    assert "\\u00" not in second
    assert second.endswith('input={"content": "' + "é" * 102 + "…"), second


def test_following_with_no_team_running_says_it_waits_for_one(team: Team) -> None:
    """Walking the README: `logs -f` with logs on disk and no team running printed the last
    lines and then sat silent, waiting for a team to start (documented, but a person who
    knows `compose logs -f` takes a silent terminal for a hang). After the history it says
    so on stderr."""
    team.configure()
    team.emit(1)
    logconfig.shutdown()
    proc = octy_bg("logs", "-f", cwd=team.roster.parent)
    said: queue.Queue[str] = queue.Queue()
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert "seq=0" in proc.stdout.readline()
        threading.Thread(target=lambda: said.put(proc.stderr.readline()), daemon=True).start()
        try:
            line = said.get(timeout=WAIT_S)  # a safety net, not a measurement
        except queue.Empty:
            line = ""
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT_S)
    assert line == (
        "octy-orchestrate: no team is running; following until one starts and stops "
        "(Ctrl-C stops)\n"
    )


def test_logs_into_head_ends_as_every_verb_does(team: Team) -> None:
    """`logs | head -1` ends as git and compose end in a pipe whose reader left (SIGPIPE:
    141 to the shell), as `ps`, `queue ls` and the rest did: logs alone exited 0, so a
    script with `set -o pipefail` could not tell that nothing past the first line was read."""
    from cli_runner import CLI

    team.configure()
    team.emit(3000)
    logconfig.shutdown()
    script = f'"{CLI}" logs --file "{team.roster}" | head -1; echo "status ${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=WAIT_S, check=False
    )
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr.splitlines()[-1] == "status 141", done.stderr
    assert "Traceback" not in done.stderr
