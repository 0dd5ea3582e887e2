"""The CLI started with a standard stream closed (`>&-`, `<&-`), as a careless script or
cron line does: one clear line, exit 2, nothing done, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.mailbox import Mailbox

CLI = Path(sys.executable).parent / "octy-orchestrate"
RUN_TIMEOUT_S = 60  # safety net for a wedged subprocess, not a measurement


def octy_with(
    redirect: str, *argv: str, cwd: Path, unbuffered: bool | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI through sh, which applies ``redirect`` (``>&-``, ``<&-``) first;
    ``unbuffered``: PYTHONUNBUFFERED set (True) or unset (False), else as in this process."""
    env = {**os.environ, "NO_COLOR": "1"}
    if unbuffered is not None:
        env.pop("PYTHONUNBUFFERED", None)
        env.update({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    return subprocess.run(
        ["sh", "-c", f'exec "$0" "$@" {redirect}', str(CLI), *argv],
        cwd=cwd,
        capture_output=True,  # the shell's `>&-` then closes the pipe given as stdout
        timeout=RUN_TIMEOUT_S,
        check=False,
        env=env,
    )


def _queued(folder: Path) -> list[object]:
    with Mailbox(folder / "queue" / "team.db") as mb:
        return list(mb.list(recipient="a"))


@pytest.mark.parametrize(
    "argv",
    [("send", "a", "hi"), ("ps",), ("queue", "ls"), ("config",), ("inbox", "a", "--json")],
)
def test_a_closed_stdout_is_a_usage_error_before_anything_is_done(
    folder: Path, argv: tuple[str, ...]
) -> None:
    """Regression: with stdout closed every verb ended in a traceback ('NoneType' object has
    no attribute 'write'/'flush'/'isatty'), and `send` first sent its message, then failed
    with exit 1 (a script that retries sends it twice). Now: exit 2, one line saying what to
    do, nothing sent."""
    done = octy_with(">&-", *argv, cwd=folder)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "standard output is closed" in lines[0]
    assert "/dev/null" in lines[0]
    assert _queued(folder) == []


@pytest.mark.parametrize("verb", ["send", "ask"])
def test_a_body_read_from_a_closed_stdin_is_a_usage_error(folder: Path, verb: str) -> None:
    """Regression: `send a - <&-` ended in a traceback ('NoneType' object has no attribute
    'read'). Now: exit 2, one line, nothing sent."""
    done = octy_with("<&-", verb, "a", "-", cwd=folder)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"standard input is closed" in done.stderr
    assert _queued(folder) == []


def test_purge_with_stdin_closed_asks_no_question(folder: Path) -> None:
    """`queue purge` without --yes asks on a terminal; with stdin closed it said nothing
    useful (a traceback): it refuses and says to pass --yes."""
    done = octy_with("<&-", "queue", "purge", cwd=folder)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"--yes" in done.stderr


def test_top_with_stdin_closed_says_it_needs_a_terminal(folder: Path) -> None:
    """The third verb that reads stdin (common.standard_input): `top <&-` refuses in one line."""
    done = octy_with("<&-", "top", cwd=folder)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"top needs a terminal" in done.stderr


def test_a_closed_stdin_leaves_no_file_on_descriptor_zero(folder: Path) -> None:
    """With fd 0 closed, the first file the CLI opened (the queue's database) took number 0:
    a child process would read it as its stdin. The CLI holds 0-2 with /dev/null first; the
    verb itself runs as usual."""
    done = octy_with("<&-", "send", "a", "hi", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert len(_queued(folder)) == 1
    probe = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$0" -c "import os, sys; from orchestrator.cli import _hold_standard_fds; '
            "_hold_standard_fds(); print(os.readlink('/proc/self/fd/0'), file=sys.stderr)\" <&-",
            sys.executable,
        ],
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert probe.stderr.decode().strip() == "/dev/null", probe.stderr


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("argv", [("send", "a", "hi"), ("ps",), ("ps", "--json"), ("config",)])
def test_stdout_that_cannot_be_written_is_one_line_and_exit_1(
    folder: Path, argv: tuple[str, ...], unbuffered: bool
) -> None:
    """Regression: with stdout on a full disk (`>/dev/full`, a cron job's output file on a
    full /var) a verb printed `octy-orchestrate: [Errno 28] No space left on device`, then
    the interpreter's own `Exception ignored in: <_io.TextIOWrapper name='<stdout>'…>` and
    `OSError: …`, and ended 120. Now: one line that says it is standard output and that the
    verb ran (a `send` is sent once: a script must not retry it blindly), exit 1. Buffered,
    the text waits to be written again; unbuffered (PYTHONUNBUFFERED=1, as many units set)
    it is gone after the first failure: both are told."""
    done = octy_with(">/dev/full", *argv, cwd=folder, unbuffered=unbuffered)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot write to standard output (No space left on device)" in lines[0]
    assert "the verb ran" in lines[0]
    assert len(_queued(folder)) == (1 if argv[0] == "send" else 0)


@pytest.mark.parametrize(
    ("argv", "code"),
    [(("logs", "nosuch"), 3), (("ps", "--bogus"), 2), (("send", "nosuch", "hi"), 3)],
)
def test_stderr_that_cannot_be_written_keeps_the_exit_status(
    folder: Path, argv: tuple[str, ...], code: int
) -> None:
    """Regression: with stderr on a full disk (`2>/dev/full`) the error could not be said,
    and its exit status was lost too: 1 or 120 (the interpreter's failed last flush) in
    place of 3 (not found) or 2 (usage). A script or unit reads the status: it is kept."""
    done = octy_with("2>/dev/full", *argv, cwd=folder)
    assert done.returncode == code, done.stdout


def test_json_error_with_stdout_that_cannot_be_written_keeps_the_exit_status(
    folder: Path,
) -> None:
    """`--json` says an error on stdout: when that fails too, the status still says it."""
    done = octy_with(">/dev/full", "logs", "--json", "nosuch", cwd=folder)
    assert done.returncode == 3, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"Exception ignored" not in done.stderr


@pytest.mark.parametrize("argv", [("send", "a", "hi"), ("logs", "nosuch")])
def test_a_closed_stdout_with_stderr_that_cannot_be_written_is_still_exit_2(
    folder: Path, argv: tuple[str, ...]
) -> None:
    """Regression: `>&- 2>/dev/full`: the refusal's line could not be written, its OSError
    escaped and the run ended 1, not 2 (usage). Nothing is sent either way."""
    done = octy_with(">&- 2>/dev/full", *argv, cwd=folder)
    assert done.returncode == 2
    assert _queued(folder) == []


def test_a_warning_that_cannot_be_written_does_not_fail_the_verb(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a warning on stderr (agents.yaml turned invalid: the team's record is
    used, and said so in one line) raised OSError with `2>/dev/full`: `ps` ended 1 and
    listed nothing, `send` ended 1 and sent nothing. Now the line is dropped, the verb runs."""
    from orchestrator.cli import team_record

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    team_record.write(folder / "agents.yaml", folder / "queue" / "team.db", folder / "logs", ("a",))
    (folder / "agents.yaml").write_text("agents: [\n", encoding="utf-8")
    for argv, shown in ((("ps",), b"registered"), (("send", "a", "hi"), b"sent ")):
        done = subprocess.run(
            ["sh", "-c", 'exec "$0" "$@" 2>/dev/full', str(CLI), *argv],
            cwd=folder,
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert done.returncode == 0, argv
        assert shown in done.stdout, done.stdout
    assert len(_queued(folder)) == 1


def _stdout_on_a_full_ext4(
    tmp_path: Path, user: bool
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """`config` run unbuffered with its stdout a file on a real ext4 (25% reserved for
    root), loop-mounted in a private mount namespace, that the same user filled first with
    `dd`. ``user``: as uid 65534 (with only CAP_DAC_READ_SEARCH, to reach this Python);
    else as this root. Returns the file system's `f_bfree f_bavail` as that user saw it
    before, and the run. Skipped but for root with loop devices (CI's machine is not)."""
    import shutil

    if os.geteuid() != 0 or not all(map(shutil.which, ("mkfs.ext4", "setpriv", "unshare"))):
        pytest.skip("needs root, mkfs.ext4, setpriv and unshare: a loop-mounted ext4")
    image, mnt = tmp_path / "ext4.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(
        ["mkfs.ext4", "-q", "-m", "25", "-O", "^has_journal", str(image)],
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
    )
    who = (
        "setpriv --reuid=65534 --regid=65534 --clear-groups "
        "--inh-caps +dac_read_search --ambient-caps +dac_read_search"
        if user
        else ""
    )
    script = (
        f'mount -o loop "{image}" "{mnt}" || exit 77\n'
        f'chmod 1777 "{mnt}" && mkdir "{mnt}/team" && cd "{mnt}/team" && '
        "printf 'agents:\\n  a:\\n    prompt: A.\\n' > agents.yaml && chmod -R a+rwX . || exit 1\n"
        f'{who} dd if=/dev/zero of="{mnt}/filler" bs=1k 2>/dev/null\n'
        f'{who} "{sys.executable}" -c "import os; s = os.statvfs(\'.\'); '
        'print(s.f_bfree, s.f_bavail)" >&2\n'
        f'exec {who} env -i PATH="$PATH" HOME=/nonexistent PYTHONUNBUFFERED=1 NO_COLOR=1 '
        f'"{CLI}" config > "{mnt}/team/out"\n'
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if done.returncode == 77:
        pytest.skip(f"cannot loop-mount an ext4 image here: {done.stderr.strip()}")
    seen, _, said = done.stderr.partition("\n")
    return seen, subprocess.CompletedProcess(done.args, done.returncode, done.stdout, said)


@pytest.mark.parametrize("user", [True, False])
def test_stdout_on_a_disk_full_but_for_reserved_blocks_is_said_to_be_full(
    tmp_path: Path, user: bool
) -> None:
    """Left open by the last session: unbuffered, a failed write to stdout was taken as
    stdout's only when its file system had `f_bfree == 0`. A user's disk is full with
    root's reserved blocks free (f_bavail 0), and ext4 keeps ~2% of f_bfree from every
    write, root's too (measured here: f_bfree 2211 for a user, 164 for root, f_bavail 0
    for both): the line said `[Errno 28] No space left on device`, no file named. Now the
    same line as `>/dev/full`. (A tmpfs has no reserved blocks: f_bfree == f_bavail, it
    cannot tell the two apart; hence ext4.)"""
    seen, done = _stdout_on_a_full_ext4(tmp_path, user)
    bfree, bavail = (int(n) for n in seen.split())
    assert bavail == 0, seen
    assert bfree > 0, seen  # the case `f_bfree == 0` missed
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot write to standard output (No space left on device)" in lines[0]
    assert "the verb ran" in lines[0]
