"""Fixtures of the SQLite mailbox's own tests (the backend-neutral ones live in contract/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mailbox_workers.support import FakeClock

from orchestrator.mailbox import Mailbox


@pytest.fixture
def clock() -> FakeClock:
    """The mailbox's clock, moved by hand (leases, TTLs, heartbeats)."""
    return FakeClock()


@pytest.fixture
def empty_mb(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mailbox]:
    """A fresh, empty team database in tmp_path.

    On the fake ``clock`` when the test asks for it too; on real time otherwise, so that
    rows other processes write (with their own clock) are due here.
    """
    fake = "clock" in request.fixturenames
    kwargs = {"clock": request.getfixturevalue("clock")} if fake else {}
    with Mailbox(tmp_path / "team.db", **kwargs) as mailbox:
        yield mailbox


@pytest.fixture
def mb(empty_mb: Mailbox) -> Mailbox:
    """The team database with alice, bob and carol registered."""
    for name in ("alice", "bob", "carol"):
        empty_mb.register(name)
    return empty_mb
