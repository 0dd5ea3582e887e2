"""CPU and memory of a process, read from Linux's /proc (no psutil: it is only a dev
dependency, and three small files are all `top` needs).

CPU % is the process's user+system time over wall time since a sample at least
WINDOW_S old (the kernel counts CPU time in 10 ms ticks: over one second an idle process
would flicker between 0 and 1 %), so the first sample of a pid has none. Elsewhere than
Linux every figure is None ("-").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
WINDOW_S = 5.0


@dataclass(frozen=True)
class ProcSample:
    cpu_pct: float | None  # of one core, since the previous sample of this pid
    rss_bytes: int | None
    started_at: float | None  # epoch seconds


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces and
    parentheses, so split after its last ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class ProcReader:
    """Samples processes; keeps the previous CPU time per pid to turn it into a rate."""

    clock: Callable[[], float] = time.monotonic
    # per pid: samples (monotonic time, cpu seconds, start ticks), oldest first
    _last: dict[int, list[tuple[float, float, int]]] = field(default_factory=dict)
    _boot: float | None = field(default_factory=_boot_time)

    def sample(self, pid: int | None) -> ProcSample:
        if not pid:
            return ProcSample(None, None, None)
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 22:
            self._last.pop(pid, None)
            return ProcSample(None, None, None)
        # After the name: state is field 3 of stat(5); utime 14, stime 15, starttime 22,
        # rss 24 (pages); here shifted by the two fields before it.
        cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS
        start_ticks = int(fields[19])
        rss = int(fields[21]) * _PAGE
        now = self.clock()
        started = None if self._boot is None else self._boot + start_ticks / _TICKS
        history = [h for h in self._last.get(pid, []) if h[2] == start_ticks]  # same process
        while len(history) > 1 and now - history[1][0] >= WINDOW_S:
            history.pop(0)  # keep one sample at least WINDOW_S old, and the ones since
        pct = None
        if history and now > history[0][0]:
            pct = max(0.0, 100.0 * (cpu_s - history[0][1]) / (now - history[0][0]))
        history.append((now, cpu_s, start_ticks))
        self._last[pid] = history
        return ProcSample(pct, rss, started)

    def forget_except(self, pids: set[int]) -> None:
        """Drop the history of pids no longer shown (an agent restarted: a new pid)."""
        for pid in list(self._last):
            if pid not in pids:
                del self._last[pid]
