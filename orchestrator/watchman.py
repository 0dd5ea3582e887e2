"""Cleans up after a supervisor at once, however it dies: a small process per supervisor.

A SIGKILLed (or OOM-killed) supervisor takes its claude processes with it (the
launcher's parent-death signal), but the socat proxies their sandboxes started live on,
reparented, and its private launcher folder (``$TMPDIR/octy-*``) stays: only the next
`up` in the same folder found the proxies, and nothing removed the folder.

The supervisor starts this script (:func:`start`) when it writes its launcher, in a
session of its own (a terminal's Ctrl-C does not reach it) and holding only the read
end of a pipe whose write end only the supervisor holds (close-on-exec: no claude or
socat inherits it). The read returns end-of-file once the supervisor is gone, however it
died; then the watchman continues what a write hold had stopped
(:func:`continue_held`), waits for each claude of the folder's ``pids/`` to be gone, kills
what their sandboxes left (:func:`orchestrator.procid.kill_orphaned_helpers`: proven, never
on a pid alone), removes the folder and exits. After a clean stop (the supervisor removed
the folder itself) it finds nothing and exits.

Run as ``python -I -S <this file> FOLDER FD SOCAT``: no site, no environment, only ``os``,
``select`` and ``sys`` while it waits (~9 MB, ~15 ms to start, measured); what the cleanup
needs is imported when there is one to do. It imports this tree's :mod:`orchestrator`, not
whatever the environment would find.
"""

from __future__ import annotations

import os
import select
import sys

TYPE_CHECKING = False  # not typing's: its import alone would double the watchman's start
if TYPE_CHECKING:
    import subprocess  # the supervisor's side (lazy below), as the watchman imports no more

SCRIPT = os.path.abspath(__file__)  # run by path: see the module's docstring
CLAIM_ROUNDS = 5  # kill rounds: a proxy may fork a child for a connection as it is killed


class Watchman:
    """The supervisor's handle: the pipe's write end and the process."""

    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int) -> None:
        self.proc = proc
        self._write_fd: int | None = write_fd

    def release(self, timeout: float = 5.0) -> None:
        """After a clean stop (the folder removed): the watchman sees end-of-file, finds
        nothing and exits; reaped here so that it leaves no zombie in a long-lived
        process (a test running supervisors in-process)."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        import contextlib  # noqa: PLC0415 - the supervisor's side: not in the watchman
        import subprocess  # noqa: PLC0415

        with contextlib.suppress(subprocess.TimeoutExpired):  # it exits by itself later
            self.proc.wait(timeout)


def start(folder: str, socat: str | None) -> Watchman:
    """Start the watchman of ``folder`` (a launcher folder :func:`make_launcher` made) without
    waiting for it: Popen returns once it is exec'd (~0.3 ms), the interpreter starts
    beside the supervisor."""
    import subprocess  # noqa: PLC0415 - the supervisor's side: not in the watchman

    read_fd, write_fd = os.pipe()  # both close-on-exec: only the watchman gets read_fd
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", SCRIPT, folder, str(read_fd), socat or ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(read_fd,),
            start_new_session=True,
            cwd="/",  # holds no folder of the team's
            # Nothing of the supervisor's environment (its model key, every token): the
            # watchman outlives it and reads none (-I -S); found holding them by review.
            env={},
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return Watchman(proc, write_fd)


# --- the watchman's side -------------------------------------------------------------------


def recorded_cli_pids(folder_fd: int) -> set[int]:
    """The pids the launcher wrote in ``pids/`` (launcher.read_cli_pid's rules)."""
    try:
        pids_fd = os.open("pids", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError:
        return set()
    found = set()
    try:
        for name in os.listdir(pids_fd):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=pids_fd)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                text = f.read(32).strip()
            if text.isdigit() and 1 < int(text) < 2**31:
                found.add(int(text))
    finally:
        os.close(pids_fd)
    return found


def may_be_cli(pid: int) -> bool:
    """``pid`` may still be a claude the launcher started: it leads its own session
    (setsid). False: gone, or a process that is no launched claude (the pid was reused)."""
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


def _wait_gone(pid: int) -> None:
    """Until ``pid`` has exited, if it may be a claude the launcher started. Waited on
    through a pidfd: no polling, and the pid cannot be reused meanwhile."""
    if not may_be_cli(pid):
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # readable once it has exited
        poller.poll()
    finally:
        os.close(fd)


def _start_ticks(pid: int) -> int | None:
    """procid.start_ticks, with ``os`` alone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = text[text.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def continue_held(folder_fd: int) -> list[int]:
    """Continue what the dead supervisor's write hold had stopped (orchestrator/write_hold.py
    records ``pid start`` lines in ``held``): a sandboxed command in a pid namespace or
    session of its own may outlive its claude, stopped for ever. Each checked through a
    pidfd against its recorded start time; the pids continued."""
    try:
        fd = os.open("held", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        lines = f.read(1 << 20).splitlines()
    import signal  # noqa: PLC0415 - only once there is something to continue

    continued = []
    for line in lines:
        words = line.split()
        if len(words) != 2 or not all(w.isdigit() for w in words):
            continue
        pid, start = int(words[0]), int(words[1])
        if not 1 < pid < 2**31:
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if _start_ticks(pid) == start:
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)
                continued.append(pid)
        except OSError:
            pass
        finally:
            os.close(pidfd)
    return continued


def clean(folder: str, socat: str | None) -> None:
    """What a supervisor that is gone left in ``folder``: its claudes waited for, their
    sandboxes' proxies killed, the folder removed. Nothing if the folder is gone (a clean
    stop), or is no folder of this user's (never followed through a link)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return
        continue_held(fd)  # first: the claudes' exits below may wait on them
        waited: set[int] = set()
        # Again until no new pid: a launcher the supervisor started as it died may write
        # its pid late.
        while pids := recorded_cli_pids(fd) - waited:
            for pid in pids:
                _wait_gone(pid)
            waited |= pids
    finally:
        os.close(fd)
    if socat:
        _insert_tree()
        from orchestrator import procid  # noqa: PLC0415 - only once there is a cleanup

        for _ in range(CLAIM_ROUNDS):
            if not [k for pid in waited for k in procid.kill_orphaned_helpers(pid, socat)]:
                break
    import shutil  # noqa: PLC0415 - only once there is a cleanup

    shutil.rmtree(folder, ignore_errors=True)  # fd-based on Linux: follows no link


def _insert_tree() -> None:
    """This file's tree first on sys.path (-I -S left it off): its own orchestrator."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(SCRIPT)))


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit():
        return 2
    folder, fd, socat = argv[0], int(argv[1]), argv[2] or None
    while os.read(fd, 4096):  # the supervisor never writes: this returns at end-of-file
        pass
    os.close(fd)
    clean(folder, socat)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
