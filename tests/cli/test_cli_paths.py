"""Paths a careless or hostile operator passes for the queue's database (`--db`): a folder,
the root, a file that is not a database, a FIFO, a symlink, a /proc file. Each is one error
line with a meaningful exit code, never a traceback, and nothing is created."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from cli_runner import CLI, RUN_TIMEOUT_S
from cli_runner import octy_bytes as octy


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-800:]
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("verb", [("ps",), ("down",), ("reload",), ("approvals",)])
def test_a_folder_given_as_the_database_is_a_usage_error(tmp_path: Path, verb: tuple[str]) -> None:
    """Regression: `ps --db /` (also down, reload) ended in a traceback (ValueError: '/' has an
    empty name, from the lock file's name); `approvals --db FOLDER` in another one."""
    for folder in ("/", str(tmp_path)):
        done = octy(*verb, "--db", folder, cwd=tmp_path)
        assert done.returncode == 2, done.stderr.decode()[-800:]
        assert "is a folder" in one_error_line(done)


@pytest.mark.parametrize("kind", ["not_a_database", "fifo", "symlink"])
def test_approvals_with_a_database_it_cannot_use_is_one_line(tmp_path: Path, kind: str) -> None:
    """Regression: `approvals` let the queue's own errors through (DatabaseError, UnsafePath):
    their message was good, but it came at the end of a traceback."""
    target = tmp_path / "team.db"
    if kind == "not_a_database":
        target.write_text("not a database\n", encoding="utf-8")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        (tmp_path / "elsewhere.db").write_text("", encoding="utf-8")
        target.symlink_to(tmp_path / "elsewhere.db")
    done = octy("approvals", "--db", str(target), cwd=tmp_path)
    assert done.returncode == 1, done.stderr.decode()[-800:]
    line = one_error_line(done)
    assert str(target) in line


def test_an_untranslated_sqlite_error_is_one_line(tmp_path: Path) -> None:
    """Regression: a --db SQLite cannot do I/O on (/proc/self/mem: a regular file to stat,
    unreadable to SQLite) let sqlite3.OperationalError through as a traceback on ps, queue
    ls, inbox, trace, approvals. The last net names the database and SQLite's reason."""
    for verb in (("ps",), ("queue", "ls"), ("approvals",)):
        done = octy(*verb, "--db", "/proc/self/mem", cwd=tmp_path)
        assert done.returncode == 1, done.stderr.decode()[-800:]
        line = one_error_line(done)
        assert "/proc/self/mem" in line
        assert "check that it is the team's database file" in line
    assert list(tmp_path.iterdir()) == []


EVIL_DIR = "x\x1b]0;pwned\x07\x1b[2Jy"  # retitles the terminal, clears the screen


def no_raw_escape(data: bytes) -> str:
    text = data.decode("utf-8")
    assert "\x1b" not in text, repr(text)
    assert "\x07" not in text, repr(text)
    return text


def test_paths_holding_escapes_are_escaped_in_every_message(tmp_path: Path) -> None:
    """Regression: a folder name is anyone's choice; `down --db` ("no team running (PATH)"),
    `logs`/`trace` with an invalid roster ("PATH has N problem(s)"), `init -f` ("wrote PATH")
    and `logs -f` waiting for a log folder printed it raw: its escapes retitled the terminal
    and cleared the screen."""
    evil = tmp_path / EVIL_DIR
    evil.mkdir()
    (evil / "agents.yaml").write_text("agents:\n  a:\n    modle: x\n", encoding="utf-8")
    outputs = [
        octy("down", "--db", str(evil / "team.db"), cwd=tmp_path),
        octy("logs", "--file", str(evil / "agents.yaml"), cwd=tmp_path),
        octy("trace", "x", "-f", str(evil / "agents.yaml"), cwd=tmp_path),
        octy("init", "-f", str(evil / "new.yaml"), cwd=tmp_path),
    ]
    for done in outputs:
        assert b"Traceback" not in done.stderr
        text = no_raw_escape(done.stdout) + no_raw_escape(done.stderr)
        assert "x\\x1b]0;pwned\\x07" in text, text  # shown, escaped


def test_a_log_line_nested_thousands_deep_is_shown_as_a_foreign_line(tmp_path: Path) -> None:
    """Regression: one line of a log file holding JSON nested 5,000 deep ended `logs` (and
    `logs -n`, `--since`) in RecursionError: the reader only took ValueError for "not an
    event". Such a line is shown as it is, like any line that is not an event."""
    logs = tmp_path / "logs"
    logs.mkdir()
    deep = '{"event": "deep", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    ok = '{"event": "fine", "timestamp": "2026-01-01T00:00:00Z", "agent": "supervisor"}'
    (logs / "supervisor.jsonl").write_text(f"{ok}\n{deep}\n", encoding="utf-8")
    for extra in ((), ("-n", "5"), ("--since", "2000-01-01")):
        done = octy("logs", "--logs", str(logs), *extra, cwd=tmp_path)
        assert done.returncode == 0, done.stderr.decode()[-800:]
        assert b"Traceback" not in done.stderr
        assert b"fine" in done.stdout


@pytest.mark.parametrize("roster_arg", [(), ("-f", "agents.yaml"), ("-f", ".")])
def test_a_symlinked_roster_pointed_at_a_broken_file_still_reaches_the_team(
    tmp_path: Path, roster_arg: tuple[str, ...]
) -> None:
    """Regression: the record of the running team (what lets `ps`, `down`, `send`… reach it
    while agents.yaml is invalid) was keyed by the roster's resolved path. With agents.yaml a
    symlink (to teams/prod.yaml, say) pointed at another, broken file, the lookup took the new
    target's name, found nothing, and every verb failed with the roster's errors. The key is
    the roster's own name in its (resolved) folder."""
    from orchestrator.cli import team_record
    from orchestrator.mailbox import Mailbox

    state = tmp_path / "state"
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "prod.yaml").write_text("agents:\n  a:\n    prompt: A.\n", encoding="utf-8")
    (teams / "broken.yaml").write_text("agents:\n  a:\n    modle: x\n", encoding="utf-8")
    roster = tmp_path / "agents.yaml"
    roster.symlink_to(teams / "prod.yaml")
    database = tmp_path / "queue" / "team.db"
    with Mailbox(database) as mb:
        mb.register("a")
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    os.environ["XDG_STATE_HOME"] = str(state)  # write() reads it; restored below
    try:
        team_record.write(roster, database, tmp_path / "logs", ("a",))
    finally:
        del os.environ["XDG_STATE_HOME"]
    roster.unlink()
    roster.symlink_to(teams / "broken.yaml")
    done = subprocess.run(
        [str(CLI), *roster_arg, "ps"],
        cwd=tmp_path,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        env={**env, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b" is invalid (" in done.stderr
    assert b"using the team it last started" in done.stderr
    assert done.stdout.decode().splitlines()[-1].startswith("a ")


def test_since_further_back_than_any_date_means_everything(tmp_path: Path) -> None:
    """Regression: `logs --since 99999999999d` (or 10**24 hours) ended in OverflowError
    (a timedelta past datetime's range): a traceback. It means "from the beginning"."""
    logs = tmp_path / "logs"
    logs.mkdir()
    line = '{"event": "fine", "timestamp": "2026-01-01T00:00:00Z", "agent": "supervisor"}'
    (logs / "supervisor.jsonl").write_text(line + "\n", encoding="utf-8")
    for since in ("99999999999d", "999999999999999999999999h"):
        done = octy("logs", "--logs", str(logs), "--since", since, cwd=tmp_path)
        assert done.returncode == 0, done.stderr.decode()[-800:]
        assert b"fine" in done.stdout


@pytest.mark.parametrize("force", [(), ("--force",)])
@pytest.mark.parametrize("planted", ["prompts/lead.md", "prompts", "agents.yaml"])
def test_init_never_writes_through_a_symlink(
    tmp_path: Path, planted: str, force: tuple[str, ...]
) -> None:
    """Regression: init wrote the prompt files with a plain open, which follows symlinks, and
    took a dangling link for a free name: in a folder others can write, a planted
    prompts/lead.md -> ~/.bashrc had init create or overwrite the target, even without
    --force. Now a link anywhere init writes is refused before anything is written."""
    folder = tmp_path / "shared"
    folder.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    target = victim / ("prompts" if planted == "prompts" else "bashrc")
    if planted == "prompts/lead.md":
        (folder / "prompts").mkdir()
        target.write_text("precious\n", encoding="utf-8")
    elif planted == "agents.yaml":
        target.write_text("precious\n", encoding="utf-8")
    else:
        target.mkdir()
    (folder / planted).symlink_to(target)
    done = octy("init", *force, cwd=folder)
    assert done.returncode == 1, done.stderr.decode()
    line = one_error_line(done)
    assert "symbolic link" in line or (not force and "not overwriting" in line), line
    if target.is_dir():
        assert list(target.iterdir()) == []
    else:
        assert target.read_text(encoding="utf-8") == "precious\n"
    assert not (folder / "agents.yaml").exists() or planted == "agents.yaml"


def test_init_does_not_create_the_target_of_a_dangling_link(tmp_path: Path) -> None:
    """The dangling case: prompts/lead.md -> a file that does not exist yet. init said
    'wrote … prompts/lead.md' and created the link's target."""
    (tmp_path / "prompts").mkdir()
    target = tmp_path / "elsewhere.md"
    (tmp_path / "prompts" / "lead.md").symlink_to(target)
    for force in ((), ("--force",)):
        done = octy("init", *force, cwd=tmp_path)
        assert done.returncode == 1, done.stderr.decode()
        assert not target.exists()


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_init_writes_only_regular_files(tmp_path: Path, kind: str) -> None:
    """Regression: `init -f /dev/zero --force` (run as root) changed the device to mode 0600,
    wrote into it, and wrote the prompts into /dev/prompts/; `init -f FIFO --force` hung on
    the open. Anything but a regular file (or a missing one) is refused, untouched, before
    anything is written. (The device is a private node of /dev/zero's numbers, made here.)"""
    target = tmp_path / "roster"
    if kind == "device":
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("mknod needs CAP_MKNOD")
        os.chmod(target, 0o666)
    elif kind == "fifo":
        os.mkfifo(target, 0o644)
    else:
        (tmp_path / "roster").mkdir()
        target = target / "agents.yaml"
        target.mkdir()  # `-f roster` means roster/agents.yaml, here a folder
    before = os.lstat(target)
    done = octy(
        "init",
        "-f",
        str(target if kind != "folder" else tmp_path / "roster"),
        "--force",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr.decode()
    assert "is not a regular file" in one_error_line(done)
    after = os.lstat(target)
    assert (after.st_mode, after.st_size) == (before.st_mode, before.st_size)
    assert not (target.parent / "prompts").exists()
