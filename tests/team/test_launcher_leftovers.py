"""Launcher folders ($TMPDIR/octy-*) of supervisors that are gone: the watchman's cleanup
(orchestrator/watchman.py) and `up`'s safety net (supervision/leftovers.py), on real
folders, real processes and a real socat left in a dead claude's process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from polling import until

from orchestrator import procid, watchman
from orchestrator.launcher import MAKER_FILE, Maker, make_launcher, remove_launcher
from orchestrator.supervision.leftovers import remove_dead_launchers

MAKE_AND_EXIT = "import sys, pathlib; from orchestrator.launcher import make_launcher; " + (
    "make_launcher(pathlib.Path(sys.argv[1]))"
)


def made_by_a_dead_process(folder: Path) -> Path:
    """A launcher folder whose maker (a process of its own) has exited."""
    subprocess.run([sys.executable, "-c", MAKE_AND_EXIT, str(folder)], check=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        maker = Maker.read(fd)
    finally:
        os.close(fd)
    assert maker is not None
    assert maker.gone()
    return folder


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Processes in a session of their own, as the launcher starts claude; killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True))
        return procs[-1]

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        procid.kill_orphaned_helpers(proc.pid, shutil.which("socat"))  # on a failure
        assert proc.stdout is not None
        proc.stdout.close()


def claude_with_a_proxy(
    spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, *, stays: bool
) -> tuple[subprocess.Popen[bytes], int]:
    """A stand-in for a sandboxed claude: the leader of its own session, with a real socat
    listening on a /claude-http-… socket in its group, as the CLI's sandbox starts it.
    ``stays``: the leader lives on (until killed); else it exits, the socat orphaned."""
    sock = tmp_path / f"claude-http-{len(list(tmp_path.iterdir()))}.sock"
    leader = spawn(
        [
            "sh",
            "-c",
            f'socat UNIX-LISTEN:"{sock}",fork /dev/null & echo $!; '
            + ("exec sleep 600" if stays else "exit 0"),
        ]
    )
    assert leader.stdout is not None
    helper = int(leader.stdout.readline())
    until(sock.exists, "socat listening")
    return leader, helper


def record_cli(folder: Path, agent: str, pid: int) -> None:
    (folder / "pids" / agent).write_text(f"{pid}\n")


needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")


@needs_socat
def test_up_removes_only_the_folders_of_supervisors_provably_gone(
    tmp_path: Path, processes: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """A dead supervisor's folder goes, with the proxy its dead claude's sandbox left. Left
    alone: a live supervisor's folder, a folder without a maker record (an older
    version's: nothing proves its supervisor is gone), a dead one whose claude still runs
    (until it is gone), a link named octy-* (its target untouched), a file."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = made_by_a_dead_process(tmp / "octy-dead")
    leader, helper = claude_with_a_proxy(processes, tmp_path, stays=False)
    leader.wait(10)  # gone (reaped): its socat lives on in its group
    record_cli(dead, "a", leader.pid)
    live_folder = tmp / "octy-live"
    live = make_launcher(live_folder)  # made by this process, which lives
    assert live is not None
    legacy = made_by_a_dead_process(tmp / "octy-legacy")
    (legacy / MAKER_FILE).unlink()
    running = made_by_a_dead_process(tmp / "octy-running")
    still, _ = claude_with_a_proxy(processes, tmp_path, stays=True)
    record_cli(running, "a", still.pid)
    target = made_by_a_dead_process(tmp_path / "octy-target")
    (tmp / "octy-link").symlink_to(target)
    (tmp / "octy-file").write_text("not a folder")

    assert remove_dead_launchers(str(tmp)) == [str(dead)]
    assert not dead.exists()
    until(lambda: not procid.running(helper), "the dead claude's proxy killed")
    for kept in (live_folder, legacy, running, target, tmp / "octy-file"):
        assert (kept / "pids").is_dir() or kept.is_file(), kept
    assert (tmp / "octy-link").is_symlink()
    assert remove_dead_launchers(str(tmp)) == []

    os.killpg(still.pid, signal.SIGKILL)
    still.wait(10)
    assert remove_dead_launchers(str(tmp)) == [str(running)]
    remove_launcher(live)


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's folder needs root")
def test_a_folder_of_another_user_is_left_alone(tmp_path: Path) -> None:
    """Another user's folder named octy-*, its maker gone: neither `up` nor a watchman
    removes it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    theirs = made_by_a_dead_process(tmp / "octy-theirs")
    for path in (theirs, *theirs.rglob("*")):
        os.lchown(path, 65534, 65534)
    assert remove_dead_launchers(str(tmp)) == []
    watchman.clean(str(theirs), shutil.which("socat"))
    assert (theirs / "pids").is_dir()


def test_the_watchman_follows_no_link(tmp_path: Path) -> None:
    """A watchman pointed at a link (in /tmp anyone can make one) removes nothing: a real
    watchman process, let go as after a clean stop."""
    target = made_by_a_dead_process(tmp_path / "octy-target")
    link = tmp_path / "octy-link"
    link.symlink_to(target)
    w = watchman.start(str(link), shutil.which("socat"))
    w.release()
    assert w.proc.returncode == 0
    assert link.is_symlink()
    assert (target / "pids").is_dir()


FAKE_SUPERVISOR = """
import sys
from orchestrator.launcher import launcher_folder
from orchestrator.supervision.launch import write_launcher
path, w = write_launcher()
print(launcher_folder(path), w.proc.pid, flush=True)
sys.stdin.read()
"""


@needs_socat
def test_a_watchman_waits_for_its_claudes_then_cleans_up(
    tmp_path: Path, processes: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Its supervisor SIGKILLed, the watchman waits for the folder's claude to be gone
    (through a pidfd, not a poll), then kills the proxy it left, removes the folder and
    exits."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    sup = subprocess.Popen(
        [sys.executable, "-c", FAKE_SUPERVISOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp)},
        start_new_session=True,
    )
    assert sup.stdout is not None
    assert sup.stdin is not None
    made, pid = sup.stdout.readline().split()
    sup.stdout.close()
    folder, watcher = Path(made.decode()), int(pid)
    assert folder.parent == tmp
    claude, helper = claude_with_a_proxy(processes, tmp_path, stays=True)
    record_cli(folder, "a", claude.pid)
    sup.kill()
    sup.wait(10)
    sup.stdin.close()

    def waits_on_a_pidfd() -> bool:
        for fd in Path(f"/proc/{watcher}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if "pidfd" in os.readlink(fd):
                    return True
        return False

    until(waits_on_a_pidfd, "the watchman waiting for the claude")
    assert (folder / "pids").is_dir()
    assert procid.running(helper)
    os.kill(claude.pid, signal.SIGKILL)  # the claude only: its socat is left in its group
    claude.wait(10)
    until(lambda: not folder.exists(), "the folder removed")
    until(lambda: not procid.running(helper), "the proxy killed")
    until(lambda: not procid.running(watcher), "the watchman gone")
