"""A real git repository for the workspace tests: ``git`` runs a command in it and returns
its output, ``make_repo`` makes one on ``main`` with one commit (one helper for the four
test files that each had a copy)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def git_run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``git ARGV`` in ``cwd`` as a test author (name and email given), its output as is."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    ).stdout


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    git(path, "config", "user.name", "Test")
    (path / "README").write_text("base\n")
    git(path, "add", "README")
    git(path, "commit", "-qm", "base")
    return path
