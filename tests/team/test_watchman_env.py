"""The watchman holds none of the supervisor's secrets (orchestrator/watchman.py, review
L1): it outlives the supervisor, and it was started with the supervisor's whole
environment (ANTHROPIC_API_KEY, every token) though it runs ``-I -S`` and needs none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator import watchman

KEY = "sk-ant-api03-watchman-must-not-hold-this"


def test_the_watchman_starts_with_no_secret_and_still_cleans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("SECRET_PW", "hunter2-watchman")
    folder = tmp_path / "octy-launcher"
    folder.mkdir(mode=0o700)
    (folder / "pids").mkdir()
    guard = watchman.start(str(folder), None)
    try:
        environ = Path(f"/proc/{guard.proc.pid}/environ").read_bytes()
    finally:
        guard.release(timeout=30)
    assert b"ANTHROPIC_API_KEY" not in environ
    assert KEY.encode() not in environ
    assert b"hunter2-watchman" not in environ
    # With that environment it still did its job: end-of-file seen, the folder removed.
    assert guard.proc.returncode == 0
    assert not folder.exists()
    assert os.environ["ANTHROPIC_API_KEY"] == KEY  # the supervisor's own is untouched
