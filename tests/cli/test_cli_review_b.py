"""Defects a review of the CLI verbs found (reviewer B): unbounded input, the terminal's
encoding, hostile values in the environment and in dates. Each runs the console script."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest
from cli_runner import CLI, RUN_TIMEOUT_S, octy

from orchestrator.mailbox import MAX_BODY_BYTES, Mailbox
from orchestrator.names import MAX_DESCRIPTION_CHARS


def _queued(folder: Path) -> int:
    with Mailbox(folder / "queue" / "team.db") as mb:
        return len(mb.list())


def _address_space(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("verb", ["send", "ask", "reply"])
def test_an_endless_stdin_is_refused_at_the_body_limit(folder: Path, verb: str) -> None:
    """Regression (review B.1): `send TO - < /dev/zero` read all of stdin before checking the
    1 MiB limit (4.3 GB in 5 s; a MemoryError traceback under `ulimit -v`). Now at most the
    limit is read, and refused as a body over it; nothing is queued. The address space is
    capped at 1 GiB, so that the old reading fails fast instead of filling the machine."""
    first = "a" if verb != "reply" else "0000000000000000"
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [str(CLI), verb, first, "-"],
            cwd=folder,
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            preexec_fn=lambda: _address_space(1 << 30),
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"over the {MAX_BODY_BYTES}-byte limit" in done.stderr
    assert "Traceback" not in done.stderr
    assert _queued(folder) == 0


def test_a_body_just_under_the_limit_still_goes_through_stdin(folder: Path) -> None:
    body = "x" * (MAX_BODY_BYTES - 10)
    done = octy("send", "a", "-", cwd=folder, stdin=body + "\n")
    assert done.returncode == 0, done.stderr
    with Mailbox(folder / "queue" / "team.db") as mb:
        assert [m.body for m in mb.list()] == [body]


BROKEN_ROSTERS = {
    # PyYAML composes by recursion: plain safe_load ended this in RecursionError.
    "deep": lambda path: path.write_text("agents: " + "[" * 5000 + "]" * 5000 + "\n"),
    # Sparse: 1 GiB that takes no disk; plain safe_load read it whole (2 GB resident).
    "huge": lambda path: os.truncate(path, 1 << 30),
}


@pytest.mark.parametrize("verb", ["logs", "trace"])
@pytest.mark.parametrize("broken", BROKEN_ROSTERS)
def test_a_broken_roster_is_read_leniently_within_the_limits(
    tmp_path: Path, verb: str, broken: str
) -> None:
    """Regression (review B.4): `logs` and `trace` re-read a roster that does not validate
    with plain yaml.safe_load, without the roster's limits on size and depth. Now the same
    reader as the roster's: the folders fall back to their defaults, with the warning."""
    roster = tmp_path / "agents.yaml"
    roster.touch()
    BROKEN_ROSTERS[broken](roster)
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    (logs / "supervisor.jsonl").write_text("")
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        message_id = mb.send("user", "user", "hi").id
    argv = ["logs"] if verb == "logs" else ["trace", message_id]
    done = subprocess.run(
        [str(CLI), *argv],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        preexec_fn=lambda: _address_space(1 << 30),
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "problem(s)" in done.stderr
    if verb == "logs":  # `trace` goes on to list the roster's problems, and ends with 1
        assert done.returncode == 0, done.stderr


def test_register_refuses_a_description_over_the_limit(folder: Path) -> None:
    """Regression (review B.5): `register --description` took any length, and every agent's
    `agents` tool listed it. Over MAX_DESCRIPTION_CHARS it is a usage error; nothing stored."""
    done = octy(
        "register", "script", "--description", "x" * (MAX_DESCRIPTION_CHARS + 1), cwd=folder
    )
    assert done.returncode == 2, done.stderr
    assert f"over the limit of {MAX_DESCRIPTION_CHARS:,}" in done.stderr
    with Mailbox(folder / "queue" / "team.db") as mb:
        assert mb.agent("script") is None
    done = octy("register", "script", "--description", "y" * MAX_DESCRIPTION_CHARS, cwd=folder)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "since", ["9999-12-31T23:59:59", "0001-01-01T00:00:00", "0001-01-01T00:00:00+05:00"]
)
def test_since_at_the_edge_of_the_calendar_is_a_usage_error_naming_it(
    folder: Path, since: str
) -> None:
    """Regression (review B.6): west of UTC, `logs --since 9999-12-31T23:59:59` ended in an
    OverflowError traceback; `--since 0001-01-01T00:00:00` said "year 0 is out of range"
    without naming --since. (TZ as a POSIX rule: no time zone database needed.)"""
    (folder / "logs").mkdir(mode=0o700)
    (folder / "logs" / "supervisor.jsonl").write_text("")
    done = octy("logs", "--since", since, cwd=folder, env={**os.environ, "TZ": "EST+5"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"--since {since!r} is out of range" in done.stderr


@pytest.mark.parametrize("argv", [["send", "a", "hi"], ["register", "script"], ["queue", "ls"]])
def test_an_agent_name_in_the_environment_that_is_not_utf8_is_a_usage_error(
    folder: Path, argv: list[str]
) -> None:
    """Regression (review B.8): OCTY_AGENT holding bytes that are not UTF-8 ended in a
    UnicodeEncodeError traceback, deep in the registry's write. Checked as argv is."""
    env = {**os.environb, b"OCTY_AGENT": b"a\xff"}
    done = subprocess.run(
        [str(CLI), *argv],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert "$OCTY_AGENT 'a\\xff' is not valid UTF-8 text" in stderr
    assert _queued(folder) == 0


def test_init_over_a_file_it_cannot_write_names_it(tmp_path: Path) -> None:
    """Regression (review B.10): `init -f /proc/self/status --force` said only
    "[Errno 1] Operation not permitted": an error on the open descriptor names no file."""
    done = octy("init", "-f", "/proc/self/status", "--force", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    # The prompts are written first (the roster last, reviewer G.8), and their folder
    # cannot be made in /proc: the message names that path.
    assert done.stderr.startswith(
        "octy-orchestrate: not writing /proc/self/prompts: it cannot be made ("
    )
    assert done.stderr.endswith("); write elsewhere with -f\n")  # nothing there to remove
