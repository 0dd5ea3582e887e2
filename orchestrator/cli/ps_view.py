"""What ``ps`` shows beyond the registry: process figures from /proc, liveness of external
participants, and the table itself (states coloured on a terminal).

CPU and memory are read from ``/proc/PID/stat`` and ``/proc/PID/statm`` directly (Linux,
as the rest of the supervisor): no runtime dependency for two numbers. CPU % is the
process's CPU time over its lifetime, as ``ps(1)`` shows it; ``top`` shows it live.
"""

from __future__ import annotations

import os
import socket
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator import procid
from orchestrator.redact import for_people

# An external participant (registered with `register`, not in the roster) whose heartbeat
# is older than this is shown `stale`: its script has probably exited. A script refreshes
# its heartbeat by registering again, or with every `inbox NAME --ack`.
STALE_AFTER_S = 120.0

_STATE_COLOURS = {
    "ready": "32",  # green
    "running": "32",
    "registered": "32",
    "busy": "36",  # cyan
    "blocked": "35",  # magenta: waits for a person (an approval)
    "paused": "35",  # by a budget: waits for `resume`
    "waiting": "33",  # started: waits for its dependencies (depends_on)
    "starting": "33",  # yellow
    "stopping": "33",
    "backoff": "33",
    "stale": "33",
    "exited": "31",
    "failed": "31",  # red
    "stopped": "2",  # dim
}


@dataclass(frozen=True)
class ProcStats:
    cpu_percent: float
    rss_bytes: int
    stopped: bool = False  # stopped by a signal (SIGSTOP, SIGTSTP) or a tracer: frozen


def runs_here(pid: int | None, pid_start: int | None, host: str | None, *, local: bool) -> bool:
    """Whether ``/proc/PID`` of this machine is the agent's process, so that its CPU and
    memory may be shown. On a NATS team the registry's pid may be another machine's
    (review G, 5: `ps` showed an unrelated local process's figures): the host, when
    recorded, must be this one, and the start time recorded with the pid (``pid_start``)
    must be the process's. Without a start time only a ``local`` team's pid counts (a
    SQLite team's supervisor runs on this machine: it holds the team's lock here)."""
    if not pid:
        return False
    if host is not None and host != socket.gethostname():
        return False
    if pid_start is not None:
        return procid.start_ticks(pid) == pid_start
    return local


def proc_stats(pid: int | None) -> ProcStats | None:
    """CPU % (lifetime average) and resident memory of ``pid``, or None if unreadable."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        with open(f"/proc/{pid}/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
        with open("/proc/uptime", "rb") as f:
            uptime_s = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    except (IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    elapsed = uptime_s - start / ticks
    cpu = 100.0 * (utime + stime) / ticks / elapsed if elapsed > 0 else 0.0
    stopped = fields[0] in ("T", "t")
    return ProcStats(round(cpu, 1), resident_pages * os.sysconf("SC_PAGE_SIZE"), stopped)


def frozen_reason(pid: int | None, stats: ProcStats | None) -> str | None:
    """What `ps` and `top` say beside the state of an agent whose process is stopped by a
    signal: its registry state (busy, ready) is what it was when it froze, and nothing
    else shows why its turn never ends (turn_timeout restarts it, 10 minutes by default)."""
    if pid and stats is not None and stats.stopped:
        return f"process stopped by a signal: `kill -CONT {pid}`"
    return None


def shown_state(
    state: str, heartbeat_at: float | None, *, external: bool, now: float, pid: int | None = None
) -> str:
    """The state a person sees. An external participant whose registered process is gone
    is ``exited``; one silent for longer than :data:`STALE_AFTER_S` is ``stale``."""
    if not external:
        return state
    if pid and not _alive(pid):
        return "exited"
    if heartbeat_at is None or now - heartbeat_at > STALE_AFTER_S:
        return "stale"
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a bogus number
        return True
    return True


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cost(usd: float, estimated: bool) -> str:
    """COST of `ps` and `top`: ``~$0.1200`` when part of it is the runner's estimate (a turn
    cut off before the CLI priced it, charged at the CLI's own prices: prices.py)."""
    return f"{'~' if estimated else ''}${usd:.4f}"


def memory(rss: int | None) -> str:
    if rss is None:
        return "-"
    return f"{rss / 2**20:.0f}MiB" if rss < 10 * 2**30 else f"{rss / 2**30:.1f}GiB"


def cell_len(text: str) -> int:
    """Terminal cells ``text`` takes: two for a wide (East Asian wide or fullwidth)
    character, none for a combining mark or a format character, else one. (rich's
    cell_len, which `top` uses, costs `ps` its start-up: this is the stdlib's view.)"""
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in text
    )


def render(header: Sequence[str], rows: Sequence[Sequence[str]], *, colour: bool) -> list[str]:
    """Columns two spaces apart; every cell escaped for the terminal; the STATE column
    coloured when ``colour`` (padding is computed on the plain text, in terminal cells:
    a wide character such as 漢 takes two, and counting it as one shifted every column
    after it)."""
    table = [list(header)] + [[for_people(c) for c in row] for row in rows]
    widths = [max(cell_len(row[i]) for row in table) for i in range(len(header))]
    state_col = list(header).index("STATE") if "STATE" in header else -1
    lines = []
    for n, row in enumerate(table):
        cells = [cell + " " * (w - cell_len(cell)) for cell, w in zip(row, widths, strict=True)]
        if colour and n > 0 and state_col >= 0:
            code = _STATE_COLOURS.get(row[state_col].split(" ")[0])  # "blocked (why)"
            if code:
                cells[state_col] = f"\x1b[{code}m{cells[state_col]}\x1b[0m"
        lines.append("  ".join(cells).rstrip())
    return lines
