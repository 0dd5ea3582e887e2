"""Defects a review of the CLI verbs found (reviewer B): unbounded input, the terminal's
encoding, hostile values in the environment and in dates. Each runs the console script."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest
from cli_runner import CLI, RUN_TIMEOUT_S, octy

from orchestrator.mailbox import MAX_BODY_BYTES, Mailbox


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("a")
    return tmp_path


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
