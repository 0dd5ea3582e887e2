"""Bad input: unusable files, bad bodies, bad addresses.

Each is a clear error and nothing is written half-way (row counts are compared).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from mailbox_workers.support import counts, run_worker, start_worker

from orchestrator import errors
from orchestrator.mailbox import MAX_BODY_BYTES, SCHEMA_VERSION, Mailbox


def _make_db(path: Path) -> None:
    with Mailbox(path) as mb:
        mb.register("bob")
        mb.send("user", "bob", "keep me")


# --- the file -----------------------------------------------------------------


def test_new_database_is_private(tmp_path: Path) -> None:
    """The folder is created 0700; the database, WAL, shared-memory and wake-up files 0600."""
    path = tmp_path / "queue" / "team.db"
    with Mailbox(path) as mb:
        mb.register("bob")
        mb.send("user", "bob", "x")  # rings bob's bell
        mb.ack([m.id for m in mb.claim("bob", owner="b")], owner="b")
        assert mb.purge() == 1  # rings the bell for everyone (team.db-wake)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for name in ("team.db", "team.db-wal", "team.db-shm", "team.db-wake"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name


def test_not_a_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A text file at the db path: DatabaseError saying what to do; the file is not touched."""
    path = tmp_path / "team.db"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(errors.DatabaseError) as info:
        Mailbox(path)
    assert info.value.path == str(path)
    assert "not a usable SQLite database" in info.value.reason
    assert "--db" in info.value.reason
    assert path.read_bytes() == before


def test_corrupt_database_is_refused(tmp_path: Path) -> None:
    """A real queue file whose schema page was overwritten: DatabaseError, not a crash later."""
    path = tmp_path / "team.db"
    _make_db(path)
    with path.open("r+b") as f:  # keep the 100-byte header, trash the rest of page 1
        f.seek(100)
        f.write(os.urandom(3996))
    with pytest.raises(errors.DatabaseError, match="not a usable SQLite database"):
        Mailbox(path)


def test_someone_elses_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A SQLite file with foreign tables is not silently turned into a queue."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(errors.DatabaseError, match=r"belongs to something else.*invoices"):
        Mailbox(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"invoices"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer version: DatabaseError asking to upgrade, nothing migrated."""
    path = tmp_path / "team.db"
    _make_db(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(errors.DatabaseError, match=r"newer.*upgrade"):
        Mailbox(path)


def test_missing_file_without_create_is_refused(tmp_path: Path) -> None:
    """create=False on a path with no database raises and creates nothing."""
    path = tmp_path / "nope" / "team.db"
    with pytest.raises(errors.DatabaseError, match="no queue database"):
        Mailbox(path, create=False)
    assert not path.parent.exists()


def test_directory_at_the_db_path_is_refused(tmp_path: Path) -> None:
    """Pointing --db at a folder is reported as such."""
    with pytest.raises(errors.DatabaseError, match="directory"):
        Mailbox(tmp_path)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_database_is_refused_at_open(tmp_path: Path, what: str) -> None:
    """A database this process cannot write (read-only file, or read-only folder so no WAL can be
    made) fails at open with DatabaseError and a fix, and nothing is written.

    Tests run as root, which ignores permissions; the worker drops CAP_DAC_OVERRIDE first (see
    mailbox_workers/readonly_open.py), so the kernel really refuses the writes."""
    folder = tmp_path / "ro"
    path = folder / "team.db"
    _make_db(path)  # closed cleanly: no -wal/-shm left behind
    before = counts(path)
    os.chmod(path, 0o444 if what == "file" else 0o644)
    os.chmod(folder, 0o755 if what == "file" else 0o555)
    try:
        result = run_worker("readonly_open.py", str(path))
    finally:
        os.chmod(folder, 0o700)
        os.chmod(path, 0o600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["probe"]["open_for_write" if what == "file" else "can_write_file"] is (
        what != "file"
    )
    assert report.get("opened") is None, report
    assert report["error"] == "DatabaseError"
    assert "read-only" in report["reason"] or "writable" in report["reason"]
    assert counts(path) == before


def test_a_full_disk_is_a_stall_that_says_what_to_do_and_writes_nothing(mb: Mailbox) -> None:
    """SQLITE_FULL ("database or disk is full") is DatabaseStalled, a QueueStalled a
    session waits out, with what to do; nothing is written. The file is held at its
    size with max_page_count on the mailbox's own connection: SQLite's real error."""
    mb.register("b", "")
    mb.send("user", "b", "fits")
    conn = mb._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(errors.DatabaseStalled) as caught:
        mb.send("user", "b", "x" * 200_000)
    assert isinstance(caught.value, errors.QueueStalled)
    assert isinstance(caught.value, errors.DatabaseError)  # callers of DatabaseError still see it
    assert "no room left" in caught.value.reason
    assert "free space" in caught.value.reason
    conn.execute("PRAGMA max_page_count = 4294967294")
    assert [m.body for m in mb.list(recipient="b")] == ["fits"]
    mb.send("user", "b", "x" * 200_000)  # room again: the same mailbox goes on


def test_a_write_lock_held_past_the_busy_timeout_is_a_stall(tmp_path: Path) -> None:
    """Another connection in BEGIN IMMEDIATE past the busy timeout: DatabaseStalled with
    who can hold it and how to find them (not a crash-worthy DatabaseError)."""
    path = tmp_path / "team.db"
    with Mailbox(path, busy_timeout_ms=50) as mb:
        mb.register("b", "")
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(errors.DatabaseStalled, match="busy timeout") as caught:
                mb.send("user", "b", "later")
            assert "fuser" in str(caught.value)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        mb.send("user", "b", "now")
        assert [m.body for m in mb.list(recipient="b")] == ["now"]


# --- bodies and addresses -----------------------------------------------------


@pytest.mark.parametrize(
    "body", [object(), {1, 2}, {"nan": math.nan}, b"bytes"], ids=["object", "set", "nan", "bytes"]
)
def test_body_that_is_not_json_is_refused(mb: Mailbox, body: object) -> None:
    """A body JSON cannot carry (or other languages cannot read back) raises InvalidBody; no row."""
    before = counts(mb.path)
    with pytest.raises(errors.InvalidBody, match="not JSON-serialisable"):
        mb.send("alice", "bob", body)
    assert counts(mb.path) == before


def test_oversize_body_is_refused(mb: Mailbox) -> None:
    """A body over MAX_BODY_BYTES encoded raises InvalidBody naming the limit; no row."""
    before = counts(mb.path)
    with pytest.raises(errors.InvalidBody, match=str(MAX_BODY_BYTES)):
        mb.send("alice", "bob", "x" * MAX_BODY_BYTES)
    assert counts(mb.path) == before


@pytest.mark.parametrize("body", ["bad \ud800 half", {"k": ["\udfff"]}])
def test_regression_a_lone_surrogate_is_an_invalid_body_not_a_unicode_error(
    mb: Mailbox, body: object
) -> None:
    """A str holding a lone surrogate (what Python makes of invalid UTF-8 bytes) raised a raw
    UnicodeEncodeError from deep in the send; it is InvalidBody naming the character; no row."""
    before = counts(mb.path)
    with pytest.raises(errors.InvalidBody, match="surrogate"):
        mb.send("alice", "bob", body)
    assert counts(mb.path) == before


def test_body_of_exactly_the_limit_is_accepted(mb: Mailbox) -> None:
    """The limit is inclusive and counts encoded UTF-8 bytes (a JSON string adds two quotes)."""
    body = "x" * (MAX_BODY_BYTES - 2)
    assert len(mb.send("alice", "bob", body).body) == MAX_BODY_BYTES - 2
    with pytest.raises(errors.InvalidBody):
        mb.send("alice", "bob", "é" * (MAX_BODY_BYTES // 2))


def test_bad_body_in_a_broadcast_writes_nothing(mb: Mailbox) -> None:
    """A broadcast with a bad body fails before any of its copies is written."""
    before = counts(mb.path)
    with pytest.raises(errors.InvalidBody):
        mb.broadcast("alice", {"when": object()})
    assert counts(mb.path) == before


def test_bad_reply_body_leaves_the_request_answerable(mb: Mailbox) -> None:
    """A failed reply does not use up the request's one reply."""
    r = mb.request("alice", "bob", "q")
    with pytest.raises(errors.InvalidBody):
        mb.reply(r.id, "bob", {1, 2})
    assert mb.find_reply(r.id) is None
    mb.reply(r.id, "bob", "ok")


def test_unknown_recipient_writes_nothing_for_requests_either(mb: Mailbox) -> None:
    """request() to an unknown name raises RecipientUnknown and records neither message nor wait."""
    before = counts(mb.path)
    with pytest.raises(errors.RecipientUnknown):
        mb.request("alice", "bobby", "q", wait_s=30)
    assert counts(mb.path) == before


def test_reply_to_a_response_is_refused(mb: Mailbox) -> None:
    """Responses are not requests: replying to one raises NotARequest and writes nothing."""
    r = mb.request("alice", "bob", "q")
    resp = mb.reply(r.id, "bob", "a")
    before = counts(mb.path)
    with pytest.raises(errors.NotARequest):
        mb.reply(resp.id, "alice", "thanks")
    assert counts(mb.path) == before


def test_closed_mailbox_says_so(tmp_path: Path) -> None:
    """Using a Mailbox after close() raises DatabaseError, not an obscure sqlite3 error."""
    mb = Mailbox(tmp_path / "team.db")
    mb.close()
    mb.close()  # idempotent
    with pytest.raises(errors.DatabaseError, match="closed"):
        mb.agents()


@pytest.mark.slow
def test_regression_processes_racing_to_create_the_database_all_open_it(tmp_path: Path) -> None:
    """Regression: the demo's supervisor and CLI opening a new queue together got "database is
    locked" at once (SQLite refuses one of two processes upgrading a shared lock to write the
    WAL header, without waiting). Six processes released together on a fresh file all succeed."""
    for trial in range(8):
        folder = tmp_path / str(trial)
        folder.mkdir()
        db = folder / "team.db"
        db.touch(mode=0o600)  # an empty file: every opener must write the header
        start = folder / "go"
        procs = [start_worker("open_race.py", str(start), str(db)) for _ in range(6)]
        time.sleep(0.5)  # let the interpreters start and spin on the start file
        start.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"trial {trial}: {out}{err}"
        with Mailbox(db) as mb:
            assert len(mb.agents()) == 6
