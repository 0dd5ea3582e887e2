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


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    git(path, "config", "user.name", "Test")
    (path / "README").write_text("base\n")
    git(path, "add", "README")
    git(path, "commit", "-qm", "base")
    return path
