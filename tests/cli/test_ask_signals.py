"""SIGTERM (a `kill`, a service manager) and SIGHUP (a closed terminal) end a waiting
`ask` as Ctrl-C does (review I.2): its wait-for edge removed (it outlived the process
for its whole --timeout, and refused others' asks as a deadlock), the request said to
stay queued. Real processes, real signals, a real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_runner import CLI, RUN_TIMEOUT_S

from orchestrator.mailbox import Mailbox


def edges(db: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT request_id, waiter, target FROM waits"))
    finally:
        conn.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("sender", [[], ["--as", "alice"]])
def test_a_signal_ends_the_wait_and_its_edge_not_the_request(
    tmp_path: Path, signum: signal.Signals, sender: list[str]
) -> None:
    db = tmp_path / "q" / "team.db"
    with Mailbox(db) as mb:
        mb.register("bob", "answers questions")
        mb.register("alice", "writes code")
    asker = subprocess.Popen(
        [str(CLI), "ask", "bob", "slow one?", "--timeout", "600", "--db", str(db), *sender],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Mailbox(db) as mb:
            assert mb.wait_for_messages("bob", RUN_TIMEOUT_S)
            [request] = mb.peek("bob", limit=1)
        assert [e[0] for e in edges(db)] == [request.id]  # written with the request
        asker.send_signal(signum)
        _, stderr = asker.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert asker.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"request {request.id} stays queued" in stderr
    assert edges(db) == []
    with Mailbox(db) as mb:
        assert mb.get(request.id).status == "pending"


def test_an_ignored_hangup_stays_ignored(tmp_path: Path) -> None:
    """Under `nohup` SIGHUP is ignored when `ask` starts: it is not made to end it."""
    db = tmp_path / "q" / "team.db"
    with Mailbox(db) as mb:
        mb.register("bob", "answers questions")
    asker = subprocess.Popen(
        ["nohup", str(CLI), "ask", "bob", "still there?", "--timeout", "600", "--db", str(db)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Mailbox(db) as mb:
            assert mb.wait_for_messages("bob", RUN_TIMEOUT_S)
            [request] = mb.claim("bob", owner="bob")
            asker.send_signal(signal.SIGHUP)
            mb.reply(request.id, "bob", "yes")  # answered after the hang-up: still read
        out, err = asker.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert (asker.returncode, out.strip()) == (0, "yes"), err


def test_a_signal_held_while_the_request_was_written_still_clears_its_edge(
    tmp_path: Path,
) -> None:
    """The signal that came while the request was being written (held until then) lands
    the moment it is let through, before the wait whose end clears the wait-for edge
    began: the edge outlived `ask` for its whole --timeout (1 run in ~10 of the test
    above, under load). Here the signal is made to come exactly then, every time."""
    (tmp_path / "sitecustomize.py").write_text(
        "import signal\n"
        "from orchestrator.cli import ask_verb\n"
        "written = ask_verb.request_unless_interrupted\n"
        "def then_a_signal(mb, write):\n"
        "    message = written(mb, write)\n"
        "    signal.raise_signal(signal.SIGTERM)  # held: pending until let through\n"
        "    return message\n"
        "ask_verb.request_unless_interrupted = then_a_signal\n",
        encoding="utf-8",
    )
    db = tmp_path / "q" / "team.db"
    with Mailbox(db) as mb:
        mb.register("bob", "answers questions")
        mb.register("alice", "writes code")
    done = subprocess.run(
        [str(CLI), "ask", "bob", "slow?", "--timeout", "600", "--db", str(db), "--as", "alice"],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 130, done.stderr
    with Mailbox(db) as mb:
        [request] = mb.peek("bob", limit=1)
    assert f"request {request.id} stays queued" in done.stderr
    assert edges(db) == []
