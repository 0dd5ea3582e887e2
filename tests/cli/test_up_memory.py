"""`up` refuses to start more claude processes than the memory available holds.

Real `octy-orchestrate up` subprocesses, in a real memory cgroup with a small limit (as a
container's), where this machine lets the test make one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_cgroup import memory_cgroup

from orchestrator import capacity
from orchestrator.capacity import MIB, PER_AGENT_BYTES, Fit
from orchestrator.lockfile import SupervisorLock

LIMIT = 300 * MIB  # room for one claude, not for three


def test_the_arithmetic_of_a_fit() -> None:
    assert Fit(3, 1000 * MIB, "x").fits
    assert not Fit(3, 3 * PER_AGENT_BYTES - 1, "x").fits
    assert Fit(3, 3 * PER_AGENT_BYTES, "x").tight  # fits, but takes it all: a warning
    assert not Fit(1, 100 * PER_AGENT_BYTES, "x").tight
    unknown = Fit(50, None, "x")
    assert unknown.fits
    assert not unknown.tight
    assert "cannot be read" in unknown.describe()


def test_this_machines_available_memory_is_read() -> None:
    """MemAvailable (or a smaller cgroup room) is found, and is no more than the machine has."""
    meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
    total = int(next(ln for ln in meminfo.splitlines() if ln.startswith("MemTotal:")).split()[1])
    found = capacity.fit(2)
    assert found.available is not None
    assert 0 < found.available <= total * 1024
    assert found.needed == 2 * PER_AGENT_BYTES


@pytest.fixture
def cgroup() -> Iterator[Path]:
    with memory_cgroup(LIMIT) as folder:
        yield folder


def up(folder: Path, cgroup: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`up` of the three-agent roster in ``folder``, run inside ``cgroup``."""
    procs = cgroup / "cgroup.procs"

    def join() -> None:
        procs.write_text(str(os.getpid()))

    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test-not-a-key", "HOME": str(folder)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "up", "--no-model-check", *extra],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=join,  # only a write, before exec
        check=False,
    )


@pytest.fixture
def three(tmp_path: Path) -> Path:
    (tmp_path / "agents.yaml").write_text(
        textwrap.dedent(
            """\
            name: big
            defaults:
              prompt: hi
              disallowed_tools: [Bash]
            agents:
              a:
              b:
              c:
            """
        ),
        encoding="utf-8",
    )
    return tmp_path


def test_up_refuses_agents_that_would_not_fit_and_says_what_to_do(
    three: Path, cgroup: Path
) -> None:
    done = up(three, cgroup)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("octy-orchestrate: not enough memory: 3 agent(s) need ~600 MiB")
    assert (
        f"available (memory cgroup /{cgroup.relative_to(capacity.CGROUP_ROOT / 'memory')})" in line
    )
    assert "up AGENT…" in line
    assert "--no-memory-check" in line
    assert "Traceback" not in done.stderr
    assert not (three / "queue" / "team.db").exists()  # nothing was started


def test_no_memory_check_starts_them_anyway_with_a_warning(three: Path, cgroup: Path) -> None:
    """Past the memory check, with a warning; this `up` then stops at the next check (a
    supervisor holds the team: the test's lock), so no claude starts in the small cgroup."""
    lock = SupervisorLock(three / "queue" / "team.db")
    lock.acquire()
    try:
        done = up(three, cgroup, "--no-memory-check")
    finally:
        lock.release()
    assert done.returncode == 1
    warning, error = done.stderr.splitlines()
    assert warning.startswith("octy-orchestrate: warning: 3 agent(s) need ~600 MiB")
    assert "agents may be killed when memory runs out" in warning
    assert f"(pid {os.getpid()}) is already running this team" in error
