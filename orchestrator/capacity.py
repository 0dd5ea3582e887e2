"""Will the claude processes ``up`` is about to start fit in this machine's memory?

Each agent is one ``claude`` process. Measured with the bundled CLI 2.1.332 against the
scripted model, after a few turns: 203-219 MB resident each, of which ~89 MB is the
CLI's binary, mapped from one file and shared by every claude (proportional share:
143-159 MB each; anonymous memory: 114-128 MB each). A conversation grows that. So an
agent is counted as :data:`PER_AGENT_BYTES` against the memory the kernel says is
available (``MemAvailable``, which counts reclaimable cache as free), or the room left
under this process's memory cgroup (a container's limit) when that is smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

MIB: Final = 1024 * 1024
PER_AGENT_BYTES: Final = 200 * MIB  # a claude's resident size, measured (see above)
WARN_SHARE: Final = 0.75  # above this share of the available memory: a warning
UNLIMITED: Final = 2**62  # cgroup v1 writes "no limit" as a number near 2**63
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Fit:
    """``agents`` claudes against ``available`` bytes (None: this machine cannot tell)."""

    agents: int
    available: int | None
    source: str  # where ``available`` comes from, for the message

    @property
    def needed(self) -> int:
        return self.agents * PER_AGENT_BYTES

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    @property
    def tight(self) -> bool:
        return self.available is not None and self.needed > self.available * WARN_SHARE

    def describe(self) -> str:
        if self.available is None:
            left = "the memory available cannot be read here"
        else:
            left = f"{self.available // MIB} MiB is available ({self.source})"
        return (
            f"{self.agents} agent(s) need ~{self.needed // MIB} MiB "
            f"(~{PER_AGENT_BYTES // MIB} MiB per claude) and {left}"
        )


def fit(agents: int) -> Fit:
    """How ``agents`` new claudes fit in the memory available now."""
    available, source = _meminfo_available(), "MemAvailable"
    room = _cgroup_room()
    if room is not None and (available is None or room[0] < available):
        available, source = room
    return Fit(agents, available, source)


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable" and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024
    return None


def _cgroup_room() -> tuple[int, str] | None:
    """(bytes, where) left under this process's memory cgroup limit, the tightest of it and
    its parents; None without a limit (or without cgroups). Usage counts the page cache,
    whose inactive part the kernel reclaims before it kills: left out, as ``docker stats``
    does."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if "memory" in controllers.split(","):  # cgroup v1: the limit covers the parents
            folder = CGROUP_ROOT / "memory" / path.lstrip("/")
            stat = _stat(folder)
            limit = stat.get("hierarchical_memory_limit")
            used = _number(folder / "memory.usage_in_bytes")
            if limit is not None and limit < UNLIMITED and used is not None:
                room = limit - max(0, used - stat.get("total_inactive_file", 0))
                return max(0, room), f"memory cgroup {path}"
    for line in lines:
        if line.startswith("0::"):  # cgroup v2: a limit on any folder up to the root counts
            best: tuple[int, str] | None = None
            folder = CGROUP_ROOT / line[3:].lstrip("/")
            while folder != CGROUP_ROOT.parent and CGROUP_ROOT in (folder, *folder.parents):
                limit = _number(folder / "memory.max")
                used = _number(folder / "memory.current")
                if limit is not None and used is not None:
                    room = max(0, limit - max(0, used - _stat(folder).get("inactive_file", 0)))
                    if best is None or room < best[0]:
                        best = room, f"memory cgroup /{folder.relative_to(CGROUP_ROOT)}"
                folder = folder.parent
            return best
    return None


def _number(path: Path) -> int | None:
    """A cgroup file holding one number; None for "max" (no limit) or no such file."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _stat(folder: Path) -> dict[str, int]:
    try:
        text = (folder / "memory.stat").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return {}
    pairs = (line.split() for line in text.splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


__all__ = ["PER_AGENT_BYTES", "Fit", "fit"]
