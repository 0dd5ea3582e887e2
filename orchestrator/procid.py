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
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; cut at the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


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
