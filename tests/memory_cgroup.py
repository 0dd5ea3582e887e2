"""A real memory cgroup (v1) with a small limit, as a container's, for tests of what
`up` and a reload do when the agents would not fit (orchestrator/capacity.py). Skips
where this machine does not let the test make one."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import capacity


@contextlib.contextmanager
def memory_cgroup(limit: int | None = None) -> Iterator[Path]:
    """A child of this process's memory cgroup, limited to ``limit`` bytes (None: not yet;
    write ``memory.limit_in_bytes`` later). Removed once its last process is gone."""
    lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    v1 = [ln.split(":", 2)[2] for ln in lines if "memory" in ln.split(":", 2)[1].split(",")]
    if not v1:
        pytest.skip("no cgroup v1 memory controller here")
    folder = capacity.CGROUP_ROOT / "memory" / v1[0].lstrip("/") / f"octy-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir()
        if limit is not None:
            (folder / "memory.limit_in_bytes").write_text(str(limit))
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here: {exc}")
    try:
        yield folder
    finally:
        # A cgroup is removed once empty: its last process may still be exiting.
        deadline = time.monotonic() + 30
        while (folder / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            folder.rmdir()
