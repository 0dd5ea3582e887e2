"""`queue purge` asks on a terminal; Ctrl-D there is a no (walking the README: it ended in
an EOFError traceback). The console script on a real pty."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

from cli_runner import CLI, RUN_TIMEOUT_S

from orchestrator.mailbox import USER, Mailbox


def _read_until(fd: int, wanted: bytes) -> bytes:
    seen = b""
    while wanted not in seen:
        chunk = os.read(fd, 4096)
        assert chunk, seen
        seen += chunk
    return seen


def _read_rest(fd: int) -> bytes:
    rest = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed its end
            return rest
        if not chunk:
            return rest
        rest += chunk


def _queue(tmp_path: Path) -> tuple[Path, str]:
    """A queue holding one done message; its path and the message's id."""
    db = tmp_path / "q" / "team.db"
    with Mailbox(db) as mb:
        mb.register("bob")
        sent = mb.send(USER, "bob", "done soon")
        [claimed] = mb.claim("bob", owner="t", lease_s=60)
        mb.ack([claimed.id], owner="t")
    return db, sent.id


def _answer(db: Path, keys: bytes) -> tuple[int, bytes]:
    """Run `queue purge` on a pty, type ``keys`` at its question; exit code and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "queue", "purge", "--db", str(db)],
        cwd=db.parent,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    try:
        _read_until(leader, b"[y/N] ")
        os.write(leader, keys)
        rest = _read_rest(leader)
    finally:
        os.close(leader)
    return proc.wait(timeout=RUN_TIMEOUT_S), rest


def test_ctrl_d_at_the_purge_question_is_a_no_without_a_traceback(tmp_path: Path) -> None:
    db, sent = _queue(tmp_path)
    code, rest = _answer(db, b"\x04")  # Ctrl-D: end of input on a terminal, canonical mode
    assert b"Traceback" not in rest, rest
    assert b"EOFError" not in rest
    assert code == 2, rest
    assert b"not purging" in rest
    with Mailbox(db) as mb:
        assert mb.get(sent).status == "done"  # nothing deleted


def test_a_no_at_the_purge_question_is_not_told_to_pass_yes(tmp_path: Path) -> None:
    """It said "not purging: pass --yes to delete done and dead messages" to a person who
    had just answered no, as if never asked."""
    db, sent = _queue(tmp_path)
    code, rest = _answer(db, b"n\n")
    assert code == 2, rest
    assert b"not purging: answered no; nothing was deleted" in rest
    assert b"--yes" not in rest  # what follows the question
    with Mailbox(db) as mb:
        assert mb.get(sent).status == "done"


def test_the_question_is_asked_on_stderr_not_into_stdouts_pipe(tmp_path: Path) -> None:
    """`queue purge --json | jq` on a terminal: input() wrote the question to stdout, into
    the pipe, where the person never saw it (purge waited, unexplained) and jq met
    'delete every ... [y/N] ' before the JSON document. Asked on stderr, as rm -i asks."""
    db, _ = _queue(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "queue", "purge", "--json", "--db", str(db)],
        cwd=db.parent,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    try:
        os.write(leader, b"y\n")  # typed ahead: the terminal keeps it for the read
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        shown = _read_rest(leader)
    finally:
        os.close(leader)
    assert proc.returncode == 0, (out, shown)
    assert json.loads(out)["purged"] == 1
    assert b"delete every done and dead message? [y/N] " in shown
