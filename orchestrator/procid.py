"""Which process a pid is: enough to kill a leftover ``claude`` and nothing else.

A pid in the registry is only a number any database writer can set, and pids are
reused. Before ``up`` kills a process group left by a crashed supervisor it checks
that the process is the one recorded: same start time (clock ticks since boot,
``/proc/PID/stat`` field 22, recorded when the session became ready), its own
process group, our user, and running the ``claude`` binary this installation
launches (``/proc/PID/exe``). A writer who forges the start time of an unrelated
process still fails the last two checks; what remains is another ``claude`` of
the same installation and user, leading its own group (another team's agent),
which only someone who can already write this user's files can point at.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from field 3 (the state) on; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; cut at the last ')'.
    return text[text.rfind(")") + 2 :].split()


def _stat_number(pid: int, index: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return None if fields is None else int(fields[index])
    except (IndexError, ValueError):
        return None


def parent(pid: int) -> int | None:
    """The process's parent pid; None if it is gone."""
    return _stat_number(pid, 1)  # field 4 overall


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if it is gone."""
    return _stat_number(pid, 19)  # field 22 overall


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP, Ctrl-Z, a debugger): it acts on nothing, not even
    SIGTERM, until SIGCONT."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] in ("T", "t")


def is_leftover_cli(pid: int, recorded_start: object, cli_path: str | None) -> str | None:
    """None if ``pid`` is the ``claude`` process recorded (safe to kill its group);
    otherwise why not, for the log."""
    if not isinstance(recorded_start, int) or isinstance(recorded_start, bool):
        return "no start time recorded for it"
    start = start_ticks(pid)
    if start is None:
        return "no such process"
    if start != recorded_start:
        return "another process has that pid now (its start time differs)"
    try:
        if os.getpgid(pid) != pid:
            return "it does not lead its own process group"
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return "it belongs to another user"
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "it cannot be inspected"
    if cli_path is None or exe != os.path.realpath(cli_path):
        return f"it runs {exe}, not this installation's claude"
    return None


# --- what a killed claude leaves behind ---------------------------------------------------
# The CLI's sandbox starts socat proxies in its own process group, listening on
# /tmp/claude-http-<hex>.sock and /tmp/claude-socks-<hex>.sock. When the CLI dies with its
# supervisor (the parent-death signal), nobody kills its group: the proxies are reparented
# and live on, one or two per agent per crash (measured). They are recognised by all of:
# the dead CLI's group and session (the recorded pid), our user, the socat binary, and a
# command line naming the CLI's sockets; a forged registry pid can point at nothing else.
SANDBOX_SOCKETS = ("/claude-http-", "/claude-socks-")


def running(pid: int) -> bool:
    """The process exists and is not a zombie (dead, its parent yet to reap it)."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"


def _is_sandbox_helper(pid: int, group: int, helper_exe: str) -> bool:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 4:
        return False
    try:
        if (int(fields[2]), int(fields[3])) != (group, group):  # pgrp, session
            return False
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return False
        if os.readlink(f"/proc/{pid}/exe") != helper_exe:
            return False
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except (OSError, ValueError):
        return False
    return any(socket in argv for socket in SANDBOX_SOCKETS)


def kill_orphaned_helpers(group: int, helper: str | None) -> list[int]:
    """Kill what the CLI's sandbox left in the process group of ``group``, a claude process
    that is gone (or a zombie); return their pids. Nothing while that claude still runs."""
    if helper is None or group <= 1:
        return []
    if running(group):
        return []
    helper_exe = os.path.realpath(helper)
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == group:
            continue
        pid = int(entry.name)
        if not _is_sandbox_helper(pid, group, helper_exe):
            continue
        try:
            # Checked again through a pidfd: the pid cannot be reused under the signal.
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if _is_sandbox_helper(pid, group, helper_exe):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(pid)
        except OSError:
            pass
        finally:
            os.close(fd)
    return killed
