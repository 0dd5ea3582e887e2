"""Shared set-up of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.mailbox import Mailbox


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A team folder: agents.yaml with one agent `a`, registered in ./queue/team.db. Test
    files that need another folder define their own `folder`."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    with Mailbox(tmp_path / "queue" / "team.db") as mb:
        mb.register("a")
    return tmp_path
