"""The queue verbs of `octy-orchestrate`, against real database files.

Fast checks call ``main([...])`` in-process; what depends on a real process
boundary (stdin, exit codes seen by a shell, one process answering another's
``ask``) runs the installed console script as a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CLI, RUN_TIMEOUT_S
from cli_runner import octy as cli

from orchestrator.cli import main
from orchestrator.mailbox import USER, Mailbox


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A queue with two registered agents, bob and alice."""
    path = tmp_path / "q" / "team.db"
    with Mailbox(path) as mb:
        mb.register("bob", "answers questions")
        mb.register("alice", "writes code")
    return path


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(db: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``main([...] + --db)`` in-process: (exit code, stdout, stderr)."""

    def call(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--db", str(db)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def as_json(stdout: str) -> Any:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON document, got: {stdout!r}"
    return json.loads(lines[0])


# --- register / send -----------------------------------------------------------------


def test_register_creates_the_database_and_lists_the_agent(tmp_path: Path) -> None:
    """`register NAME` creates a missing database and adds NAME to the registry."""
    path = tmp_path / "new" / "team.db"
    assert main(["register", "carol", "--description", "reviews", "--db", str(path)]) == 0
    with Mailbox(path, create=False) as mb:
        agent = mb.agent("carol")
    assert agent is not None
    assert agent.description == "reviews"


def test_register_json_shape(run: Run) -> None:
    """`register --json` prints one document with the agent's registry row."""
    code, stdout, _ = run("register", "carol", "--json")
    assert code == 0
    doc = as_json(stdout)
    assert doc["ok"] is True
    assert doc["agent"]["name"] == "carol"
    assert set(doc["agent"]) >= {"description", "pid", "state", "heartbeat_at", "meta"}


def test_send_queues_a_notice_from_user(run: Run, db: Path) -> None:
    """`send TO TEXT` stores a pending notice from `user` with TEXT as a string body."""
    code, stdout, _ = run("send", "bob", "hello there")
    assert code == 0
    msg_id = stdout.split()[1]
    with Mailbox(db) as mb:
        msg = mb.get(msg_id)
    assert (msg.kind, msg.sender, msg.recipient, msg.body, msg.status) == (
        "notice",
        USER,
        "bob",
        "hello there",
        "pending",
    )


def test_send_json_shape_and_as(run: Run) -> None:
    """`send --as NAME --json` speaks as NAME and prints the stored message."""
    code, stdout, _ = run("send", "bob", "from alice", "--as", "alice", "--json")
    assert code == 0
    doc = as_json(stdout)
    assert doc["ok"] is True
    assert doc["message"]["sender"] == "alice"
    assert doc["message"]["recipient"] == "bob"
    assert doc["message"]["status"] == "pending"


def test_send_as_unknown_sender_exits_3(run: Run, db: Path) -> None:
    """`--as` must name `user` or a registered agent; a typo is refused, nothing queued."""
    code, stdout, _ = run("send", "bob", "hi", "--as", "alcie", "--json")
    assert code == 3
    doc = as_json(stdout)
    assert doc["error"] == "sender_unknown"
    assert "alice" in doc["message"]
    with Mailbox(db) as mb:
        assert mb.list() == []


def test_send_json_body_is_parsed(run: Run, db: Path) -> None:
    """With --json-body, TEXT is decoded: the stored body is the JSON value."""
    code, stdout, _ = run(
        "send", "bob", '{"task": "lint", "files": [1, 2]}', "--json-body", "--json"
    )
    assert code == 0
    with Mailbox(db) as mb:
        assert mb.get(as_json(stdout)["message"]["id"]).body == {"task": "lint", "files": [1, 2]}


def test_send_invalid_json_body_is_a_usage_error_and_writes_nothing(run: Run, db: Path) -> None:
    """--json-body with text that is not JSON exits 2 and queues nothing."""
    code, _, stderr = run("send", "bob", "{not json", "--json-body")
    assert code == 2
    assert "not valid JSON" in stderr
    with Mailbox(db) as mb:
        assert mb.list() == []


def test_send_reads_stdin_for_dash(run: Run, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TEXT `-` reads the body from stdin, dropping one trailing newline."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("line one\nline two\n"))
    code, stdout, _ = run("send", "bob", "-", "--json")
    assert code == 0
    with Mailbox(db) as mb:
        assert mb.get(as_json(stdout)["message"]["id"]).body == "line one\nline two"


def test_send_stdin_json_body_in_a_subprocess(db: Path, tmp_path: Path) -> None:
    """A piped JSON document is read by a real process with `- --json-body`."""
    proc = cli(
        "send",
        "bob",
        "-",
        "--json-body",
        "--json",
        "--db",
        str(db),
        cwd=tmp_path,
        stdin='{"n": 7}\n',
    )
    assert proc.returncode == 0, proc.stderr
    with Mailbox(db) as mb:
        assert mb.get(as_json(proc.stdout)["message"]["id"]).body == {"n": 7}


def test_send_to_unknown_recipient_exits_3_and_lists_known_names(db: Path, tmp_path: Path) -> None:
    """An unknown recipient is refused with exit 3 and the names that do exist."""
    proc = cli("send", "bobby", "hi", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 3
    assert "bobby" in proc.stderr
    assert "alice" in proc.stderr
    assert "bob" in proc.stderr


def test_send_to_unknown_recipient_json_error(run: Run) -> None:
    """With --json the refusal is a JSON document with the stable error code."""
    code, stdout, _ = run("send", "nobody", "hi", "--json")
    assert code == 3
    doc = as_json(stdout)
    assert doc["ok"] is False
    assert doc["error"] == "recipient_unknown"
    assert "alice" in doc["message"]


def test_missing_text_is_a_usage_error(tmp_path: Path) -> None:
    """A verb without its required arguments exits 2 (argparse usage)."""
    proc = cli("send", "bob", cwd=tmp_path)
    assert proc.returncode == 2


# --- ask / inbox / reply ----------------------------------------------------------------


def test_ask_is_answered_by_another_process_acting_as_the_agent(db: Path, tmp_path: Path) -> None:
    """`ask` blocks until a second process takes the request (`inbox --ack`) and `reply`s."""
    asker = subprocess.Popen(
        [str(CLI), "ask", "bob", "what is 6*7?", "--timeout", "60", "--json", "--db", str(db)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        took = cli("inbox", "bob", "--ack", "--wait", "30", "--json", "--db", str(db), cwd=tmp_path)
        assert took.returncode == 0, took.stderr
        inbox = as_json(took.stdout)
        assert inbox["acked"] is True
        [request] = inbox["messages"]
        assert (request["kind"], request["sender"], request["body"]) == (
            "request",
            USER,
            "what is 6*7?",
        )

        answered = cli("reply", request["id"], "42", "--db", str(db), cwd=tmp_path)
        assert answered.returncode == 0, answered.stderr

        stdout, stderr = asker.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert asker.returncode == 0, stderr
    doc = as_json(stdout)
    assert doc["ok"] is True
    assert doc["request"]["id"] == request["id"]
    assert doc["reply"]["correlation_id"] == request["id"]
    assert doc["reply"]["sender"] == "bob"
    assert doc["reply"]["body"] == "42"


def test_ask_prints_the_reply_body(run: Run, db: Path) -> None:
    """Human `ask` output is the reply body itself (a JSON body pretty-printed)."""

    def answer() -> None:
        with Mailbox(db) as mb:
            assert mb.wait_for_messages("bob", RUN_TIMEOUT_S)
            [request] = mb.claim("bob", owner="answerer", limit=1)
            mb.ack([request.id], owner="answerer")
            mb.reply(request.id, "bob", {"answer": 42})

    answerer = threading.Thread(target=answer)
    answerer.start()
    code, stdout, _ = run("ask", "bob", "the question", "--timeout", "60")
    answerer.join(RUN_TIMEOUT_S)
    assert code == 0
    assert json.loads(stdout) == {"answer": 42}
    assert '"answer": 42' in stdout.splitlines()[1]


def test_ask_timeout_exits_4(run: Run) -> None:
    """Nobody answers: `ask --timeout` ends with exit 4, the `timeout` code and the request id."""
    code, stdout, _ = run("ask", "bob", "anyone?", "--timeout", "0.3", "--json")
    assert code == 4
    doc = as_json(stdout)
    assert doc["ok"] is False
    assert doc["error"] == "timeout"
    # The request is still queued: the message says which, so it can be looked up.
    [request_id] = [w for w in doc["message"].split() if len(w) == 16]
    assert f"queue show {request_id}" in doc["message"]


def test_ask_interrupted_says_where_the_request_is(db: Path, tmp_path: Path) -> None:
    """Ctrl-C on a waiting `ask` ends it (exit 130, no traceback) and, as a timeout does,
    says which request stays queued: bob may still answer it. It used to end silently."""
    # As from a terminal: pytest started by a shell's `cmd &` has SIGINT ignored, and a
    # child inherits that (the ask then waited its 60 s out: exit 4, seen in such a run).
    ignoring = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asker = subprocess.Popen(
            [str(CLI), "ask", "bob", "slow one?", "--timeout", "60", "--db", str(db)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignoring)
    try:
        with Mailbox(db) as mb:
            assert mb.wait_for_messages("bob", RUN_TIMEOUT_S)
            [request] = mb.peek("bob", limit=1)
            # Waiting: its wait-for edge is written in the request's own transaction.
            asker.send_signal(signal.SIGINT)
        _, stderr = asker.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert asker.returncode == 130
    assert "Traceback" not in stderr
    assert f"request {request.id} stays queued" in stderr
    assert f"queue show {request.id}" in stderr
    with Mailbox(db) as mb:
        assert mb.get(request.id).status == "pending"


def _has_open(pid: int, path: Path) -> bool:
    """``pid`` has ``path`` open: `ask` is opening the queue (which takes its write lock)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def _asker(db: Path, cwd: Path) -> subprocess.Popen[str]:
    """`ask bob` in a fresh process, with SIGINT handled as from a terminal."""
    # pytest started by a shell's `cmd &` has SIGINT ignored, and a child inherits that.
    ignoring = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [str(CLI), "ask", "bob", "locked out?", "--timeout", "60", "--db", str(db)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignoring)


def _wait_opening(asker: subprocess.Popen[str], db: Path) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not _has_open(asker.pid, db):
        assert asker.poll() is None, asker.communicate()
        assert time.monotonic() < deadline, "ask never reached its request"
        time.sleep(0.01)


def test_ctrl_c_while_ask_waits_for_the_write_lock_ends_it_with_nothing_sent(
    db: Path, tmp_path: Path
) -> None:
    """Another program holds the queue's write lock (an sqlite3 shell after BEGIN): `ask`
    waits for it as it opens the queue. A Ctrl-C then ends it (exit 130) saying nothing was
    sent, and nothing was: it used to sit out SQLite's 10 s busy timeout (one C call no
    signal ends) and end silently."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        asker = _asker(db, tmp_path)
        try:
            _wait_opening(asker, db)
            asker.send_signal(signal.SIGINT)
            _, stderr = asker.communicate(timeout=RUN_TIMEOUT_S)
            assert holder.in_transaction  # still held: the wait did not end by itself
        finally:
            if asker.poll() is None:
                asker.kill()
                asker.wait()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert asker.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted; nothing was sent" in stderr
    with Mailbox(db) as mb:
        assert mb.peek("bob") == []
        assert mb.list(limit=10) == []


def test_ask_waits_out_a_write_lock_held_briefly(db: Path, tmp_path: Path) -> None:
    """Held for a moment (shorter than the busy timeout), the lock only delays `ask`: its
    request is written once the lock is free, once, and the answer comes back."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    asker = _asker(db, tmp_path)
    try:
        _wait_opening(asker, db)
        holder.execute("ROLLBACK")
        with Mailbox(db) as mb:
            assert mb.wait_for_messages("bob", RUN_TIMEOUT_S)
            [request] = mb.claim("bob", owner="bob-test", lease_s=60)
            mb.reply(request.id, "bob", "not any more")
            mb.ack([request.id], owner="bob-test")
        stdout, stderr = asker.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        holder.close()
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert asker.returncode == 0, stderr
    assert stdout.strip() == "not any more"
    with Mailbox(db) as mb:
        assert [m.kind for m in mb.list(limit=10)].count("request") == 1


def test_ask_unknown_recipient_exits_3(run: Run) -> None:
    """`ask` to a name nobody registered fails at once with exit 3."""
    code, _, stderr = run("ask", "ghost", "hello?", "--timeout", "5")
    assert code == 3
    assert "ghost" in stderr


def test_inbox_without_ack_peeks(run: Run, db: Path) -> None:
    """`inbox NAME` shows the next messages but leaves them pending, untouched."""
    run("send", "bob", "first")
    run("send", "bob", "second")
    code, stdout, _ = run("inbox", "bob", "--json")
    assert code == 0
    doc = as_json(stdout)
    assert doc["acked"] is False
    assert [m["body"] for m in doc["messages"]] == ["first", "second"]
    with Mailbox(db) as mb:
        for m in doc["messages"]:
            stored = mb.get(m["id"])
            assert (stored.status, stored.attempts) == ("pending", 0)


def test_inbox_ack_consumes(run: Run, db: Path) -> None:
    """`inbox NAME --ack` claims, prints and acks: the messages are done, a second look is empty."""
    run("send", "bob", "only once")
    code, stdout, _ = run("inbox", "bob", "--ack")
    assert code == 0
    assert "only once" in stdout
    assert "acked" in stdout
    code, stdout, _ = run("inbox", "bob", "--ack", "--json")
    assert as_json(stdout)["messages"] == []
    with Mailbox(db) as mb:
        assert [m.status for m in mb.list(recipient="bob")] == ["done"]


def test_inbox_limit(run: Run) -> None:
    """`--limit N` takes at most N messages, oldest first."""
    for i in range(5):
        run("send", "bob", f"m{i}")
    _, stdout, _ = run("inbox", "bob", "--ack", "--limit", "2", "--json")
    assert [m["body"] for m in as_json(stdout)["messages"]] == ["m0", "m1"]
    _, stdout, _ = run("inbox", "bob", "--limit", "10", "--json")
    assert [m["body"] for m in as_json(stdout)["messages"]] == ["m2", "m3", "m4"]


def test_inbox_wait_wakes_on_a_send_from_another_process(db: Path, tmp_path: Path) -> None:
    """`inbox --wait` blocks until another process sends, then prints that message."""
    waiter = subprocess.Popen(
        [str(CLI), "inbox", "alice", "--ack", "--wait", "60", "--json", "--db", str(db)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sent = cli("send", "alice", "wake up", "--db", str(db), cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        stdout, stderr = waiter.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, stderr
    assert [m["body"] for m in as_json(stdout)["messages"]] == ["wake up"]


def test_inbox_wait_with_nothing_returns_empty(run: Run) -> None:
    """`--wait` that sees nothing ends normally with an empty list (not a failure)."""
    code, stdout, _ = run("inbox", "bob", "--wait", "0.2", "--json")
    assert code == 0
    assert as_json(stdout)["messages"] == []


def test_inbox_unknown_name_exits_3(run: Run) -> None:
    """`inbox` for a name nobody registered is refused with exit 3 and the known names."""
    code, _, stderr = run("inbox", "bbo")
    assert code == 3
    assert "bob" in stderr


def test_reply_defaults_to_the_asked_agent_and_as_overrides(run: Run, db: Path) -> None:
    """`reply` speaks as the request's recipient unless `--as NAME` is given."""
    with Mailbox(db) as mb:
        first = mb.request(USER, "bob", "q1")
        second = mb.request(USER, "bob", "q2")
    _, stdout, _ = run("reply", first.id, "a1", "--json")
    assert as_json(stdout)["message"]["sender"] == "bob"
    _, stdout, _ = run("reply", second.id, "a2", "--as", "alice", "--json")
    doc = as_json(stdout)
    assert doc["message"]["sender"] == "alice"
    assert doc["message"]["correlation_id"] == second.id


def test_reply_json_body(run: Run, db: Path) -> None:
    """`reply --json-body` sends a structured answer the asker gets back decoded."""
    with Mailbox(db) as mb:
        request = mb.request(USER, "bob", "status?")
    code, _, _ = run("reply", request.id, '{"ok": true}', "--json-body")
    assert code == 0
    with Mailbox(db) as mb:
        assert mb.wait_for_reply(request.id, 5).body == {"ok": True}


def test_reply_errors(run: Run, db: Path) -> None:
    """Unknown id exits 3 (one no message can have, 2); replying to a notice or twice exits
    1 with the stable code."""
    with Mailbox(db) as mb:
        notice = mb.send(USER, "bob", "fyi")
        request = mb.request(USER, "bob", "q")
    code, _, _ = run("reply", "nosuchid", "x")
    assert code == 3
    code, _, _ = run("reply", "no such id", "x")
    assert code == 2
    code, stdout, _ = run("reply", notice.id, "x", "--json")
    assert (code, as_json(stdout)["error"]) == (1, "not_a_request")
    assert run("reply", request.id, "once")[0] == 0
    code, stdout, _ = run("reply", request.id, "twice", "--json")
    assert (code, as_json(stdout)["error"]) == (1, "already_replied")


# --- queue ls / show / dead / retry / purge -----------------------------------------


def _dead_letter(db: Path) -> str:
    """A message with one attempt, claimed and nacked: dead with reason max_attempts."""
    with Mailbox(db) as mb:
        msg = mb.send(USER, "alice", "doomed", max_attempts=1)
        [claimed] = mb.claim("alice", owner="t", limit=1)
        mb.nack(claimed.id, owner="t", error="boom")
        assert mb.get(msg.id).status == "dead"
    return msg.id


def test_queue_ls_table_and_filters(run: Run) -> None:
    """`queue ls` prints a table; --to and --status narrow it."""
    run("send", "bob", "for bob")
    run("send", "alice", "for alice")
    run("inbox", "alice", "--ack")
    code, stdout, _ = run("queue", "ls")
    assert code == 0
    header, *rows = stdout.strip().splitlines()
    assert header.split()[:5] == ["ID", "KIND", "FROM", "TO", "STATUS"]
    assert len(rows) == 2
    _, stdout, _ = run("queue", "ls", "--to", "bob", "--json")
    assert [m["body"] for m in as_json(stdout)["messages"]] == ["for bob"]
    _, stdout, _ = run("queue", "ls", "--status", "done", "--json")
    assert [m["body"] for m in as_json(stdout)["messages"]] == ["for alice"]
    _, stdout, _ = run("queue", "ls", "--from", "alice", "--json")
    assert as_json(stdout)["messages"] == []


def test_queue_ls_limit_and_empty(run: Run) -> None:
    """`--limit` caps the rows; an empty queue says so."""
    _, stdout, _ = run("queue", "ls")
    assert "(no messages)" in stdout
    for i in range(4):
        run("send", "bob", f"n{i}")
    _, stdout, _ = run("queue", "ls", "--limit", "3", "--json")
    assert len(as_json(stdout)["messages"]) == 3


def test_queue_show_message_with_related_reply(run: Run, db: Path) -> None:
    """`queue show ID` prints the message in full and its reply as related."""
    with Mailbox(db) as mb:
        request = mb.request(USER, "bob", {"question": "ready?"})
        reply = mb.reply(request.id, "bob", "yes")
    code, stdout, _ = run("queue", "show", request.id)
    assert code == 0
    assert request.id in stdout
    assert '"question": "ready?"' in stdout
    assert reply.id in stdout
    _, stdout, _ = run("queue", "show", request.id, "--json")
    doc = as_json(stdout)
    assert doc["message"]["id"] == request.id
    assert [m["id"] for m in doc["related"]] == [reply.id]


def test_queue_show_unknown_id_exits_3(db: Path, tmp_path: Path) -> None:
    """An unknown message id is exit 3 for a shell."""
    proc = cli("queue", "show", "nope", "--json", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 3
    assert as_json(proc.stdout)["error"] == "not_found"


def test_queue_dead_lists_reason_and_retry_requeues(run: Run, db: Path) -> None:
    """`queue dead` shows dead letters with their error; `queue retry ID` makes one pending."""
    dead_id = _dead_letter(db)
    code, stdout, _ = run("queue", "dead")
    assert code == 0
    assert dead_id in stdout
    assert "ERROR" in stdout.splitlines()[0]
    _, stdout, _ = run("queue", "dead", "--json")
    [dead] = as_json(stdout)["messages"]
    assert (dead["id"], dead["status"]) == (dead_id, "dead")
    assert dead["error"]
    code, stdout, _ = run("queue", "retry", dead_id, "--json")
    assert code == 0
    assert as_json(stdout)["message"]["status"] == "pending"
    _, stdout, _ = run("queue", "dead", "--json")
    assert as_json(stdout)["messages"] == []
    assert run("queue", "retry", "missing")[0] == 3


def test_queue_purge_needs_yes(db: Path, tmp_path: Path) -> None:
    """Without --yes (and no terminal to ask on) purge refuses with exit 2 and deletes nothing."""
    _dead_letter(db)
    proc = cli("queue", "purge", "--db", str(db), cwd=tmp_path, stdin="")
    assert proc.returncode == 2
    assert "--yes" in proc.stderr
    with Mailbox(db) as mb:
        assert len(mb.dead()) == 1


def test_queue_purge_deletes_done_and_dead(run: Run, db: Path) -> None:
    """`purge --yes` deletes done and dead messages and reports how many; pending stay."""
    _dead_letter(db)
    run("send", "bob", "done soon")
    run("inbox", "bob", "--ack")
    run("send", "bob", "still pending")
    code, stdout, _ = run("queue", "purge", "--yes", "--json")
    assert code == 0
    assert as_json(stdout) == {"ok": True, "purged": 2}
    with Mailbox(db) as mb:
        assert [m.body for m in mb.list()] == ["still pending"]


def test_queue_purge_one_status(run: Run, db: Path) -> None:
    """`purge --status dead` leaves done messages alone."""
    _dead_letter(db)
    run("send", "bob", "done")
    run("inbox", "bob", "--ack")
    code, stdout, _ = run("queue", "purge", "--yes", "--status", "dead")
    assert code == 0
    assert "purged 1 message" in stdout
    with Mailbox(db) as mb:
        assert [m.status for m in mb.list()] == ["done"]


def test_queue_without_subverb_is_usage(run: Run) -> None:
    """`queue` alone prints its help and exits 2."""
    assert main(["queue"]) == 2


# --- which database ------------------------------------------------------------------


def test_read_verbs_do_not_create_a_database(tmp_path: Path) -> None:
    """`queue ls` on a missing file fails (exit 3, not found, as `ps` there) and leaves no
    file behind."""
    missing = tmp_path / "nowhere" / "team.db"
    proc = cli("queue", "ls", "--db", str(missing), cwd=tmp_path)
    assert proc.returncode == 3
    assert str(missing) in proc.stderr
    assert not missing.exists()


def test_default_database_is_queue_team_db_in_the_cwd(tmp_path: Path) -> None:
    """Without --db or agents.yaml the CLI uses ./queue/team.db."""
    proc = cli("register", "dora", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "queue" / "team.db").is_file()
    proc = cli("send", "dora", "hi", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_default_database_comes_from_agents_yaml(tmp_path: Path) -> None:
    """With ./agents.yaml the CLI uses its `database` key (relative to that file)."""
    (tmp_path / "agents.yaml").write_text(
        "database: data/custom.db\n"
        "agents:\n  dora:\n    description: d\n    prompt: You are dora.\n"
    )
    proc = cli("register", "dora", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "custom.db").is_file()
    assert not (tmp_path / "queue" / "team.db").exists()


def test_broken_agents_yaml_is_reported(tmp_path: Path) -> None:
    """A broken agents.yaml is an error naming the file, not a silent fallback."""
    (tmp_path / "agents.yaml").write_text("agents: [\n")
    proc = cli("queue", "ls", cwd=tmp_path)
    assert proc.returncode == 1
    assert "agents.yaml" in proc.stderr


def test_db_flag_beats_agents_yaml(tmp_path: Path) -> None:
    """--db wins over agents.yaml (which is then not even read)."""
    (tmp_path / "agents.yaml").write_text("agents: [\n")
    target = tmp_path / "elsewhere.db"
    proc = cli("register", "dora", "--db", str(target), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file()


def test_every_verb_json_is_one_document(run: Run, db: Path) -> None:
    """--json on each verb prints exactly one JSON document with an `ok` field."""
    with Mailbox(db) as mb:
        request = mb.request(USER, "bob", "q")
    dead_id = _dead_letter(db)
    for argv in (
        ["register", "erin"],
        ["send", "bob", "x"],
        ["inbox", "bob"],
        ["reply", request.id, "a"],
        ["queue", "ls"],
        ["queue", "show", request.id],
        ["queue", "dead"],
        ["queue", "retry", dead_id],
        ["queue", "purge", "--yes"],
    ):
        code, stdout, _ = run(*argv, "--json")
        assert code == 0, argv
        assert as_json(stdout)["ok"] is True, argv


def test_every_verb_finds_the_queue_from_inside_an_agents_session(tmp_path: Path) -> None:
    """An agent's tools run with OCTY_DB set and their own working folder: queue verbs and
    team verbs (ps) alike read that database; an explicit -f roster still wins over it."""
    db = tmp_path / "team" / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("worker", "does things")
    elsewhere = tmp_path / "agent-cwd"
    elsewhere.mkdir()
    env = {**os.environ, "OCTY_DB": str(db)}
    for argv in (["queue", "ls", "--json"], ["ps", "--json"]):
        done = cli(*argv, cwd=elsewhere, env=env)
        assert done.returncode == 0, done.stderr
    assert [a["name"] for a in json.loads(done.stdout)["agents"]] == ["worker"]
    missing = cli("ps", "-f", "nowhere.yaml", cwd=elsewhere, env=env)
    assert missing.returncode == 1
    assert "nowhere.yaml" in missing.stderr


def test_inbox_of_an_unknown_name_says_no_participant_not_recipient(db: Path) -> None:
    """Walking the README: `inbox nosuch` said "unknown recipient 'nosuch'; known agents:
    alice, bob, supervisor" (nothing was sent, and the supervisor's inbox is not one to
    read), and a name holding a newline split the one-line error in two."""
    with Mailbox(db) as mb:
        mb.register_supervisor(4242, {})
    proc = cli("inbox", "nosuch", "--db", str(db), cwd=db.parent)
    assert proc.returncode == 3
    assert proc.stderr == (
        "octy-orchestrate: no participant named 'nosuch' in the team "
        "(participants: alice, bob; and user)\n"
    )
    proc = cli("inbox", "x\ny", "--db", str(db), cwd=db.parent)
    assert proc.returncode == 3
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "'x\\ny'" in proc.stderr


def test_a_newline_in_a_trace_id_or_an_as_name_keeps_the_error_on_one_line(db: Path) -> None:
    """Walking the README ("an error is one line on stderr"): `trace 'a<newline>b'` and
    `send bob hi --as 'a<newline>b'` printed their error over two lines, the second
    starting with what the caller typed. Quoted as Python does now; no `register` hint for
    a name `register` would refuse."""
    for argv in (("trace", "a\nb"), ("send", "bob", "hi", "--as", "a\nb")):
        proc = cli(*argv, "--db", str(db), cwd=db.parent)
        assert proc.returncode == (2 if argv[0] == "trace" else 3), proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "'a\\nb'" in proc.stderr
        assert "register" not in proc.stderr


def test_names_ids_and_reasons_with_newlines_keep_each_error_on_one_line(db: Path) -> None:
    """Walking the README (walk5): `send 'x<newline>y' hi`, `queue show 'a<newline>b'`,
    `approve 'a<newline>b'` and `approve ID` of an approval denied with a reason holding
    a newline and an escape printed their one-line error over two lines, the second
    starting with what somebody else typed. Quoted as Python does now."""
    with Mailbox(db) as mb:
        request = mb.send("bob", USER, {"approval": {"tool": "Bash"}}, kind="request")
    cases = [
        (("send", "x\ny", "hi"), "'x\\ny'"),
        (("queue", "show", "a\nb"), "'a\\nb'"),
        (("approve", "a\nb"), "'a\\nb'"),
    ]
    for argv, quoted in cases:
        proc = cli(*argv, "--db", str(db), cwd=db.parent)
        assert proc.returncode != 0, (argv, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1, (argv, proc.stderr)
        assert quoted in proc.stderr, (argv, proc.stderr)
    denied = cli("deny", request.id, "--reason", "no\n\x1b[31mway", "--db", str(db), cwd=db.parent)
    assert denied.returncode == 0, denied.stderr
    again = cli("approve", request.id, "--db", str(db), cwd=db.parent)
    assert again.returncode == 3, again.stderr
    assert len(again.stderr.splitlines()) == 1, again.stderr
    assert "no\\n\\x1b[31mway" in again.stderr


def test_send_or_ask_to_an_unknown_name_lists_only_names_a_message_can_go_to(db: Path) -> None:
    """Left open by the last session: `send nosuch hi` read "unknown recipient 'nosuch';
    known agents: user, alice, bob, supervisor", and a send to the supervisor is refused.
    The supervisor's row is one a running team writes (here written as it does)."""
    with Mailbox(db) as mb:
        mb.register_supervisor(4242, {})
    for verb in ("send", "ask"):
        proc = cli(verb, "nosuch", "hi", "--db", str(db), cwd=db.parent)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr == (
            "octy-orchestrate: unknown recipient 'nosuch'; known agents: user, alice, bob\n"
        )
        as_json = cli(verb, "nosuch", "hi", "--json", "--db", str(db), cwd=db.parent)
        assert json.loads(as_json.stdout)["error"] == "recipient_unknown"


def test_an_id_no_message_can_have_is_a_usage_error_on_every_verb_taking_one(db: Path) -> None:
    """Left open by the last session: `approve ''` and `deny ''` ended 3, "no message ''",
    as if looked up and not found; so did `reply`, `queue show`, `queue retry` and `trace`
    with an empty id or one holding a space. Such an id is bad input: exit 2, one line
    naming it and saying what an id looks like, in JSON with --json; nothing answered. A
    well-formed id that is not there stays exit 3."""
    with Mailbox(db) as mb:
        request = mb.send("bob", USER, {"approval": {"tool": "Bash"}}, kind="request")
    verbs = [
        ("approve",),
        ("deny",),
        ("reply", "@", "text"),
        ("queue", "show"),
        ("queue", "retry"),
        ("trace",),
    ]
    for verb in verbs:
        for bad in ("", "a b", "a/b", "x" * 129, "a\x1b[31m"):
            argv = [w if w != "@" else bad for w in verb]
            argv += [] if "@" in verb else [bad]
            proc = cli(*argv, "--db", str(db), cwd=db.parent)
            assert proc.returncode == 2, (argv, proc.stderr)
            lines = proc.stderr.splitlines()
            assert len(lines) == 1, (argv, lines)
            assert f"{bad!r} is not a message id".replace("\x1b", "\\x1b") in lines[0], lines
            assert "letters, digits, '-' and '_'" in lines[0]
            as_json = cli(*argv, "--json", "--db", str(db), cwd=db.parent)
            assert as_json.returncode == 2, (argv, as_json.stderr)
            assert json.loads(as_json.stdout)["error"] == "usage"
        missing = cli(
            *verb[:2] if verb[0] == "queue" else verb[:1],
            "0000000000000000",
            *(["text"] if verb[0] == "reply" else []),
            "--db",
            str(db),
            cwd=db.parent,
        )
        assert missing.returncode == 3, (verb, missing.stderr)
    with Mailbox(db) as mb:
        assert mb.get(request.id).status == "pending"  # nothing answered it


def test_a_message_a_plain_sql_writer_named_is_shown_retried_and_answered(
    run: Run, db: Path
) -> None:
    """Found by review: queue/README.md's plain-SQL writers may set a message's id (the
    column is TEXT: a UUID, `job-42`). `queue ls` listed such a message, and `queue show`,
    `queue retry`, `reply` and `trace` refused its id as one "no message can have" (exit
    2): a dead one could not be requeued from the CLI at all. Ids of ASCII letters, digits,
    `-` and `_` (1 to 128) are looked up; others stay a usage error."""
    uuid, job = "9b2f6c1e-4c1a-4f7e-9d1e-2A6F3B7C8D90", "Job_42"
    with sqlite3.connect(db) as sql:
        sql.execute(
            "INSERT INTO messages (id, kind, sender, recipient, body)"
            " VALUES (?, 'request', 'alice', 'bob', '\"q\"')",
            (uuid,),
        )
        sql.execute(
            "INSERT INTO messages (id, sender, recipient, body, status, error)"
            " VALUES (?, 'alice', 'bob', '\"n\"', 'dead', 'max_attempts')",
            (job,),
        )
    code, stdout, stderr = run("queue", "show", uuid, "--json")
    assert code == 0, stderr
    assert as_json(stdout)["message"]["id"] == uuid
    assert run("queue", "retry", job)[0] == 0
    with Mailbox(db) as mb:
        assert mb.get(job).status == "pending"
    assert run("reply", uuid, "answer", "--as", "bob")[0] == 0
    with Mailbox(db) as mb:
        answer = mb.find_reply(uuid)
    assert answer is not None
    assert answer.body == "answer"
    assert run("queue", "show", "x" * 129)[0] == 2
