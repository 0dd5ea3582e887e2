"""The queue's files against a hostile folder, readers next to writers, purge.

Planted links must never be followed (each kind of file the team writes), a folder
that others can write is refused (never chmod-ed), read verbs never take the write
lock, the database replaced under an open mailbox stops its writes, and purge keeps
the reply a live request needs.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import structlog
from cli_runner import CLI, RUN_TIMEOUT_S
from cli_runner import octy as cli

from orchestrator import errors, logconfig
from orchestrator.lockfile import SupervisorLock, holder_pid
from orchestrator.mailbox import Mailbox
from orchestrator.mailbox.wakeup import BUCKETS

SECRET = b"root-owned contents\n"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file elsewhere that a planted link points at; it must stay as it is."""
    path = tmp_path / "elsewhere" / "precious"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def make_queue(folder: Path) -> Path:
    path = folder / "team.db"
    with Mailbox(path) as mb:
        mb.register("bob")
    return path


# --- 13: links and shared folders ------------------------------------------------


def test_a_link_as_the_database_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir(mode=0o700)
    empty = tmp_path / "empty.db"
    empty.touch()  # SQLite would happily write a queue into an empty file
    (folder / "team.db").symlink_to(empty)
    with pytest.raises(errors.UnsafePath, match="symbolic link"):
        Mailbox(folder / "team.db")
    assert empty.read_bytes() == b""


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_link_as_a_side_file_is_refused(tmp_path: Path, target: Path, suffix: str) -> None:
    folder = tmp_path / "q"
    folder.mkdir(mode=0o700)
    db = make_queue(folder)
    Path(f"{db}{suffix}").unlink(missing_ok=True)
    Path(f"{db}{suffix}").symlink_to(target)
    for opener in (lambda: Mailbox(db), lambda: Mailbox(db, readonly=True)):
        with pytest.raises(errors.UnsafePath, match="symbolic link"):
            opener()
    assert target.read_bytes() == SECRET


def test_links_as_bells_are_not_followed(tmp_path: Path, target: Path) -> None:
    """A bell write is a byte at offset 0: through a link it zeroed a root-owned file."""
    folder = tmp_path / "q"
    folder.mkdir(mode=0o700)
    db = make_queue(folder)
    for name in [f"{db.name}-wake", *(f"{db.name}-wake-{k}" for k in range(BUCKETS))]:
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)
    with Mailbox(db) as mb:
        mb.send("user", "bob", "hello")  # rings bob's bucket
        mb.sweep()  # rings the bell for everyone
        assert [m.body for m in mb.claim("bob", owner="t", limit=5)] == ["hello"]
    assert target.read_bytes() == SECRET


def test_a_link_as_the_lock_file_is_refused(tmp_path: Path, target: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir(mode=0o700)
    db = folder / "team.db"
    (folder / "team.db.supervisor").symlink_to(target)
    with pytest.raises(errors.UnsafePath, match="symbolic link"):
        SupervisorLock(db).acquire()
    assert holder_pid(db) is None
    assert target.read_bytes() == SECRET


def test_links_as_log_files_are_not_followed(tmp_path: Path, target: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    (logs / "supervisor.jsonl").symlink_to(target)
    with pytest.raises(errors.UnsafePath, match="symbolic link"):
        logconfig.configure(logs)
    (logs / "supervisor.jsonl").unlink()
    (logs / "bob.jsonl").symlink_to(target)
    logconfig.configure(logs)
    try:
        # However the router reports a file it cannot open, it never writes through the link.
        with contextlib.suppress(OSError):
            structlog.get_logger().info("hello", agent="bob")
    finally:
        logconfig.shutdown()
    assert target.read_bytes() == SECRET
    assert "hello" in (logs / "supervisor.jsonl").read_text()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_a_folder_others_can_write_is_refused_not_chmodded(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    if mode & stat.S_IWGRP and not mode & stat.S_IWOTH:  # a group that is not only ours
        if os.geteuid() != 0:
            pytest.skip("needs root to give the folder another group")
        os.chown(shared, -1, 65534)
    with pytest.raises(errors.UnsafePath, match="other users can write") as raised:
        logconfig.configure(shared)
    assert "chmod go-w" in str(raised.value)
    assert str(shared) in str(raised.value)
    with pytest.raises(errors.UnsafePath):
        Mailbox(shared / "team.db")
    with pytest.raises(errors.UnsafePath):
        SupervisorLock(shared / "team.db").acquire()
    assert stat.S_IMODE(shared.stat().st_mode) == mode
    assert sorted(shared.iterdir()) == []


def test_a_group_writable_folder_of_ones_own_private_group_is_fine(tmp_path: Path) -> None:
    """umask 002 systems make project folders 0775 with the user's private group."""
    user = pwd.getpwuid(os.geteuid())
    if grp.getgrgid(user.pw_gid).gr_name != user.pw_name:
        pytest.skip("this user has no private group")
    folder = tmp_path / "q"
    folder.mkdir()
    os.chown(folder, -1, user.pw_gid)
    os.chmod(folder, 0o775)
    Mailbox(folder / "team.db").close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o775


def test_cli_names_the_shared_folder_without_a_traceback(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    os.chmod(db.parent, 0o1777)
    for argv in (["ps", "--db", str(db)], ["queue", "ls", "--db", str(db)]):
        done = cli(*argv, cwd=tmp_path)
        assert done.returncode == 1, done
        assert "other users can write" in done.stderr
        assert str(db.parent) in done.stderr
        assert "Traceback" not in done.stderr


def test_a_new_folder_is_created_private(tmp_path: Path) -> None:
    logconfig.configure(tmp_path / "new" / "logs")
    logconfig.shutdown()
    Mailbox(tmp_path / "newq" / "team.db").close()
    assert stat.S_IMODE((tmp_path / "new" / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "newq").stat().st_mode) == 0o700


# --- 17: read verbs read without writing ------------------------------------------


def test_read_verbs_answer_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        mb.send("user", "bob", "waiting for bob")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an sqlite3 shell in a transaction
    writer.execute("UPDATE agents SET description = 'mid-edit'")
    try:
        for argv in (["ps"], ["queue", "ls"], ["inbox", "bob"]):
            done = cli(*argv, "--db", str(db), cwd=tmp_path)
            assert done.returncode == 0, (argv, done.stderr)
            if argv[0] != "ps":
                assert "waiting for bob" in done.stdout
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_readonly_mailbox_never_opens_for_write(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    before = db.read_bytes()
    with Mailbox(db, readonly=True) as mb:
        assert [a.name for a in mb.agents()] == ["bob"]
        assert mb._conn is not None
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            mb._conn.execute("UPDATE agents SET description = 'x'")
        with pytest.raises(errors.DatabaseError, match="read-only"):
            mb.send("user", "bob", "no")
    assert db.read_bytes() == before


def test_read_verbs_work_on_a_read_only_copy(tmp_path: Path) -> None:
    """A 0444 database in a 0555 folder, read by a process that cannot write it (root's
    override dropped by the worker), with no -wal/-shm beside it: the verbs answer."""
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        mb.send("user", "bob", "read me")
    before = db.read_bytes()
    files = sorted(p.name for p in db.parent.iterdir())
    os.chmod(db, 0o444)
    os.chmod(db.parent, 0o555)
    worker = Path(__file__).parent / "mailbox_workers" / "readonly_cli.py"
    try:
        for argv in (["queue", "ls"], ["ps"], ["inbox", "bob"], ["queue", "dead"]):
            done = subprocess.run(
                [sys.executable, str(worker), *argv, "--db", str(db)],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
            assert done.returncode == 0, (argv, done.stderr)
            assert "Traceback" not in done.stderr
            if argv[0] != "ps":
                assert argv[1] == "dead" or "read me" in done.stdout
        denied = subprocess.run(
            [sys.executable, str(worker), "send", "bob", "no", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert denied.returncode == 1  # the write path still says read-only, clearly
        assert "read-only" in denied.stderr
    finally:
        os.chmod(db.parent, 0o700)
        os.chmod(db, 0o600)
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir()) == files  # no -wal/-shm made


def test_read_verbs_work_on_a_read_only_mount(tmp_path: Path) -> None:
    """The real thing: a read-only bind mount in a private mount namespace."""
    probe = subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    if probe.returncode != 0:
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        mb.send("user", "bob", "read me")
    script = (
        f'mount --bind -o ro "{db.parent}" "{db.parent}" && '
        f'"{CLI}" queue ls --db "{db}" && "{CLI}" ps --db "{db}" && '
        f'"{CLI}" inbox bob --db "{db}"'
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "read me" in done.stdout
    assert "bob" in done.stdout


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"this is not sqlite at all\n" * 100, "not a usable SQLite database"),
        (b"", "schema is at version 0"),
    ],
)
def test_a_bad_database_is_a_clear_error(tmp_path: Path, content: bytes, says: str) -> None:
    db = tmp_path / "q" / "team.db"
    db.parent.mkdir(mode=0o700)
    db.write_bytes(content)
    for argv in (["ps"], ["queue", "ls"], ["inbox", "bob"]):
        done = cli(*argv, "--db", str(db), cwd=tmp_path)
        assert done.returncode == 1, done
        assert says in done.stderr
        assert "Traceback" not in done.stderr
    assert db.read_bytes() == content


def test_a_newer_schema_is_refused_by_readers(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(errors.DatabaseError, match="newer than this"):
        Mailbox(db, readonly=True)


# --- 18: the database replaced under an open mailbox -------------------------------


@pytest.mark.parametrize("how", ["rm", "mv"])
def test_writes_stop_when_the_database_leaves_its_path(tmp_path: Path, how: str) -> None:
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        mb.send("user", "bob", "before")
        assert mb._conn is not None
        written = mb._conn.total_changes
        if how == "rm":
            db.unlink()
        else:
            os.replace(make_queue(tmp_path / "other"), db)
        with pytest.raises(errors.DatabaseReplaced, match="deleted" if how == "rm" else "replaced"):
            mb.send("user", "bob", "after")
        with pytest.raises(errors.DatabaseReplaced):
            mb.check_file()
        with pytest.raises(errors.DatabaseReplaced):
            mb.register("carol")
        assert mb._conn.total_changes == written  # not one row to the file that left
    if how == "mv":  # nor to the file that took its place
        with Mailbox(db, readonly=True) as new:
            assert "after" not in [m.body for m in new.list(limit=10)]
            assert [a.name for a in new.agents()] == ["bob"]


# --- 19: purge keeps what a live request needs -------------------------------------


def test_purge_keeps_the_reply_of_a_leased_request(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        request = mb.request("user", "bob", "question")
        [leased] = mb.claim("bob", owner="turn-1", lease_s=30)
        mb.reply(leased.id, "bob", "answer")  # committed; the ack is still to come
        mb.send("user", "bob", "old notice")
        [notice] = mb.claim("bob", owner="turn-1")
        mb.ack([notice.id], owner="turn-1")
        assert mb.purge() == 1  # the done notice, not the reply
        assert mb.find_reply(request.id) is not None
        # The supervisor crashes before its ack; the lease runs out; the request comes back.
        mb.release("turn-1")
        [again] = mb.claim("bob", owner="turn-2")
        assert again.id == request.id
        with pytest.raises(errors.AlreadyReplied):
            mb.reply(again.id, "bob", "a second answer")
        mb.ack([again.id], owner="turn-2")
        assert mb.purge() == 2  # once answered and acked, both go
        assert mb.list(limit=10) == []


def test_cli_purge_during_a_turn_keeps_the_reply(tmp_path: Path) -> None:
    db = make_queue(tmp_path / "q")
    with Mailbox(db) as mb:
        request = mb.request("user", "bob", "question")
        mb.claim("bob", owner="turn-1", lease_s=30)
        mb.reply(request.id, "bob", "answer")
    done = cli("queue", "purge", "--yes", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Mailbox(db) as mb:
        reply = mb.find_reply(request.id)
        assert reply is not None
        assert reply.body == "answer"


@pytest.mark.parametrize("detach", [False, True])
def test_up_refuses_a_shared_logs_folder_and_leaves_its_mode(tmp_path: Path, detach: bool) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nlogs: {shared}\nagents:\n  a:\n    prompt: You are a.\n", encoding="utf-8"
    )
    done = subprocess.run(
        [str(CLI), "up", *(["--detach"] if detach else [])],
        cwd=tmp_path,
        env={**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test-not-used"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1, done
    assert "other users can write" in done.stderr
    assert str(shared) in done.stderr
    assert "Traceback" not in done.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_the_wal_of_a_durable_queue_stops_growing_early(
    tmp_path: Path, synchronous: Literal["FULL", "NORMAL"]
) -> None:
    """With synchronous=FULL every commit fsyncs the WAL, and an fsync of a file that
    grows costs about twice one that overwrites (issue 14.3): the WAL is checkpointed
    every 1,000 pages there, so it stops growing at ~4 MB and is overwritten from then
    on. With NORMAL nothing is fsynced per commit and it keeps its 10,000 pages."""
    db = tmp_path / "q" / "team.db"
    frame = 4096 + 24  # a WAL frame: one page and its header
    with Mailbox(db, synchronous=synchronous) as mb:
        mb.register("bob")
        for i in range(1000):  # one leaf page per message and its index pages: ~4 frames
            mb.send("alice", "bob", {"i": i, "pad": "x" * 3500})
        wal = (db.parent / "team.db-wal").stat().st_size
    if synchronous == "FULL":
        assert wal < 1_100 * frame
    else:
        assert wal > 2_000 * frame  # the sends wrote well past 1,000 pages
