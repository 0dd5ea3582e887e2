"""A terminal whose encoding cannot show every character (review B.2): an ISO-8859-1 or ASCII
locale, PYTHONIOENCODING=ascii. What it cannot show is escaped (``\\u2192``), never a
UnicodeEncodeError after the work was done. Each verb runs the console script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cli_runner import octy_bg, octy_bytes

from orchestrator.mailbox import Mailbox

BODY = "café → ✓"


def _env(encoding: str) -> dict[str, str]:
    return {**os.environ, "PYTHONIOENCODING": encoding, "NO_COLOR": "1"}


def octy(*argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI, its output read in the encoding it was told to write."""
    done = octy_bytes(*argv, cwd=cwd, env=env)
    encoding = env["PYTHONIOENCODING"]
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(encoding), done.stderr.decode(encoding)
    )


def _logged(folder: Path, message_id: str) -> None:
    """A `received` event holding BODY in the team's logs, as the runner writes it."""
    logs = folder / "logs"
    logs.mkdir(mode=0o700)
    line = json.dumps(
        {
            "event": "received",
            "agent": "a",
            "timestamp": "2026-11-28T21:00:00Z",
            "level": "info",
            "message_id": message_id,
            "body": BODY,
        }
    )
    for name in ("a", "supervisor"):
        (logs / f"{name}.jsonl").write_text(line + "\n", encoding="utf-8")
        (logs / f"{name}.jsonl").chmod(0o600)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_send_reports_what_it_sent_and_sends_once(folder: Path, encoding: str) -> None:
    """Regression: `send` stored the message, then ended in UnicodeEncodeError printing its
    `user → a` line (exit 1: a script that retries sent it twice)."""
    done = octy("send", "a", BODY, cwd=folder, env=_env(encoding))
    assert done.returncode == 0, done.stderr
    assert "user \\u2192 a" in done.stdout
    with Mailbox(folder / "queue" / "team.db") as mb:
        assert [m.body for m in mb.list()] == [BODY]


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_inbox_ack_prints_and_takes_delivery(folder: Path, encoding: str) -> None:
    """Regression: `inbox --ack` failed on its print and left the message leased."""
    with Mailbox(folder / "queue" / "team.db") as mb:
        mb.send("user", "a", BODY)
    done = octy("inbox", "a", "--ack", cwd=folder, env=_env(encoding))
    assert done.returncode == 0, done.stderr
    assert "\\u2192" in done.stdout
    assert "Traceback" not in done.stderr
    with Mailbox(folder / "queue" / "team.db") as mb:
        assert [m.status for m in mb.list()] == ["done"]


@pytest.mark.parametrize("verb", ["queue ls", "queue show ID", "trace ID", "logs"])
def test_reading_verbs_escape_what_the_terminal_cannot_show(folder: Path, verb: str) -> None:
    with Mailbox(folder / "queue" / "team.db") as mb:
        message_id = mb.send("user", "a", BODY).id
    _logged(folder, message_id)
    argv = verb.replace("ID", message_id).split()
    done = octy(*argv, cwd=folder, env=_env("ascii"))
    assert done.returncode == 0, done.stderr
    assert "\\u2192" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


def test_errors_escape_too(folder: Path) -> None:
    done = octy("send", "nobody-é", "hi", cwd=folder, env=_env("ascii"))
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "nobody-" in done.stderr


def test_logs_follow_escapes_what_the_terminal_cannot_show(folder: Path) -> None:
    """Regression: `logs -f` ended at the first event it could not encode."""
    with Mailbox(folder / "queue" / "team.db") as mb:
        message_id = mb.send("user", "a", BODY).id
    _logged(folder, message_id)
    proc = octy_bg("logs", "-f", cwd=folder, env=_env("ascii"))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # '' if it ended instead
        assert "caf\\xe9 \\u2192" in line, (line, proc.stderr and proc.stderr.read())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
