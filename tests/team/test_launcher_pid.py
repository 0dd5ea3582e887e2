"""The claude process's pid comes from the launcher the supervisor writes, not from the
SDK's private process object (issue 15.3): the launcher writes its own pid, which exec
keeps for the CLI, to a file in the supervisor's private folder, and hides the file's
name from the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import launcher as launcher_module
from orchestrator.launcher import (
    LAUNCHER_PREFIX,
    PID_FILE_ENV,
    bundled_cli,
    cli_pid_file,
    kill_unlaunched,
    make_launcher,
    read_cli_pid,
    remove_launcher,
    restore_launcher,
)


def test_the_launcher_writes_the_pid_of_the_cli_it_becomes(tmp_path: Path) -> None:
    launcher = make_launcher(tmp_path / f"{LAUNCHER_PREFIX}test")
    assert launcher is not None
    pid_file = cli_pid_file(launcher, "alpha")
    assert pid_file is not None
    assert pid_file.parent.stat().st_mode & 0o777 == 0o700
    # `claude -p` waits for its prompt on stdin: alive while we look at it.
    proc = subprocess.Popen(
        [launcher, "-p"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, PID_FILE_ENV: str(pid_file)},
    )
    cli = os.path.realpath(str(bundled_cli()))
    try:
        exe = ""
        while exe != cli:  # the launcher (sh), setsid, setpriv, then the CLI: one pid
            assert proc.poll() is None, "the CLI ended before it was seen"
            with contextlib.suppress(OSError):
                exe = os.path.realpath(f"/proc/{proc.pid}/exe")
            time.sleep(0.005)  # a poll for a condition, not a wait for time to pass
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert read_cli_pid(pid_file) == proc.pid
        assert pid_file.stat().st_mode & 0o777 == 0o600
        assert PID_FILE_ENV.encode() not in environ  # no tool the agent runs sees it
    finally:
        proc.kill()
        proc.communicate()  # closes its stdin pipe too
    remove_launcher(launcher)
    assert not pid_file.parent.parent.exists()


@pytest.mark.parametrize("text", ["", "abc", "-5", "1", "12 13", "99999999999", "\xff"])
def test_a_bad_pid_file_reads_as_no_pid(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pid"
    path.write_text(text, encoding="latin-1")
    assert read_cli_pid(path) is None
    assert read_cli_pid(tmp_path / "missing") is None


def test_no_pid_file_beside_a_cli_that_is_not_our_launcher(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    assert cli_pid_file(str(tmp_path / "claude"), "alpha") is None
    assert cli_pid_file(None, "alpha") is None


def test_without_setsid_there_is_still_a_launcher_to_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without util-linux, make_launcher returned the bundled CLI itself, which the
    supervisor's cleanup then unlinked; now the launcher (no setsid) is always ours."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no setsid, no setpriv
    cli = bundled_cli()
    launcher = make_launcher(tmp_path / f"{LAUNCHER_PREFIX}bare")
    assert launcher is not None
    assert launcher != cli
    assert "setsid" not in Path(launcher).read_text()
    assert cli_pid_file(launcher, "alpha") is not None
    remove_launcher(launcher)
    assert cli is not None
    assert Path(cli).is_file()


def _stopped_before_its_first_line(launcher: str, pid_file: Path) -> subprocess.Popen[bytes]:
    """Our launcher as the SDK starts it (a child of this process, the pid file named in its
    environment), stopped before its first line: a shell that stops itself, then would
    exec the launcher (one pid throughout)."""
    proc = subprocess.Popen(
        ["sh", "-c", 'kill -STOP $$; exec "$0" "$@"', launcher, "-p"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, PID_FILE_ENV: str(pid_file)},
    )
    state = ""
    while state != "T":  # a poll for a condition, not a wait for time to pass
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        state = stat[stat.rfind(")") + 2]
        time.sleep(0.005)
    return proc


def test_a_launcher_stuck_before_writing_its_pid_is_found_and_killed(tmp_path: Path) -> None:
    """A claude stuck before the launcher wrote its pid could not be killed at the connect
    timeout: the SDK's close ended it ~15 s later (measured: 18 s after it started, for a
    3 s timeout). It is found by the pid file its environment names, among our children;
    another agent's launcher is left alone."""
    launcher = make_launcher(tmp_path / f"{LAUNCHER_PREFIX}test")
    assert launcher is not None
    mine, theirs = cli_pid_file(launcher, "alpha"), cli_pid_file(launcher, "beta")
    assert mine is not None
    assert theirs is not None
    stuck = _stopped_before_its_first_line(launcher, mine)
    other = _stopped_before_its_first_line(launcher, theirs)
    try:
        assert read_cli_pid(mine) is None
        assert kill_unlaunched(mine) == [stuck.pid]
        assert stuck.wait(10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for proc in (stuck, other):
            proc.kill()
            proc.wait(10)
    remove_launcher(launcher)


def _write_refused(path: str, flags: int) -> bool:
    try:
        fd = os.open(path, flags)
    except PermissionError:
        return True
    try:
        os.write(fd, b"#!/bin/sh\necho PWNED\n")
        os.ftruncate(fd, 0)
    except PermissionError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_launcher_is_sealed_and_in_no_folder(tmp_path: Path) -> None:
    """Found by review: an agent's Write tool rewrote the launcher (a file in the folder
    that holds the agents' temp folders) and the next start ran its code outside the
    sandbox; putting it back before each start left a check-then-exec window. Now it is a
    sealed memory file: nothing in the folder to write, and the file itself refuses every
    write, truncation or growth, even opened anew by path as this user."""
    folder = tmp_path / f"{LAUNCHER_PREFIX}test"
    launcher = make_launcher(folder)
    assert launcher is not None
    assert launcher.startswith(f"/proc/{os.getpid()}/fd/")
    original = Path(launcher).read_bytes()
    assert b"exec " in original
    assert sorted(p.name for p in folder.iterdir()) == ["pids", "supervisor"]
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_TRUNC):
        # A new open of the same file, as this user: refused (0500, not as root), or its
        # write refused by the seals.
        assert _write_refused(launcher, flags)
    assert Path(launcher).read_bytes() == original
    assert restore_launcher(launcher) is False  # nothing to put back
    fd = int(launcher.rsplit("/", 1)[1])
    remove_launcher(launcher)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)  # closed with the folder's removal
    assert not folder.exists()


def test_without_a_sealed_memory_file_the_launcher_on_disk_is_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a memory file cannot be executed (vm.memfd_noexec=2, no memfd), the wrapper
    is written in the private folder as before and put back before each start, never
    written through a link."""
    monkeypatch.setattr(launcher_module, "_sealed_script", lambda _text: None)
    folder = tmp_path / f"{LAUNCHER_PREFIX}disk"
    launcher = make_launcher(folder)
    assert launcher == str(folder / "claude")
    path = Path(launcher)
    original = path.read_text(encoding="utf-8")
    assert cli_pid_file(launcher, "alpha") == folder / "pids" / "alpha"
    assert restore_launcher(launcher) is False
    path.write_text("#!/bin/sh\necho PWNED\n", encoding="utf-8")
    assert restore_launcher(launcher) is True
    assert path.read_text(encoding="utf-8") == original
    planted = tmp_path / "planted"
    planted.write_text("#!/bin/sh\necho PWNED\n", encoding="utf-8")
    path.unlink()
    path.symlink_to(planted)
    assert restore_launcher(launcher) is True
    assert not path.is_symlink()
    assert planted.read_text(encoding="utf-8") == "#!/bin/sh\necho PWNED\n"
    remove_launcher(launcher)
    assert not folder.exists()
