"""NO_COLOR as no-color.org has it: set and not empty (orchestrator/colour.py)."""

from __future__ import annotations

import os
import pty

import pytest

from orchestrator import colour


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("", True), ("1", False)])
def test_no_color_counts_only_with_a_value(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    monkeypatch.setenv("TERM", "xterm")  # not this run's (an editor's pane may say dumb)
    if value is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", value)
    leader, follower = pty.openpty()  # a real terminal
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            assert colour.wanted(tty) is expected
    finally:
        os.close(leader)
        os.close(follower)


@pytest.mark.parametrize(("term", "expected"), [("dumb", False), ("xterm-256color", True)])
def test_a_dumb_terminal_is_not_coloured(
    monkeypatch: pytest.MonkeyPatch, term: str, expected: bool
) -> None:
    """TERM=dumb shows escape sequences as text: no colour there, as git and systemctl."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", term)
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            assert colour.wanted(tty) is expected
    finally:
        os.close(leader)
        os.close(follower)


def test_a_pipe_or_a_closed_stream_is_never_coloured() -> None:
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        assert colour.wanted(pipe) is False
    os.close(read)
    assert colour.wanted(None) is False
    assert colour.wanted(pipe) is False  # closed: isatty raises ValueError
