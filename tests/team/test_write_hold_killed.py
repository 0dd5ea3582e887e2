"""A supervisor SIGKILLed while its write hold has the team's commands stopped
(orchestrator/write_hold.py): what of them outlives it, and its watchman continues it.
Real `up`, the real CLI in its bubblewrap sandbox, real signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from team_harness import Team, agent_rule
from test_watchman import launcher_folder, until, watchman_of

from orchestrator import hold_procs, procid, write_hold
from orchestrator.sandbox import missing_programs
from orchestrator.supervision import leftovers

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap"),
]

COUNTER = """\
import contextlib
import os
n = 0
while True:
    n += 1
    with open("count.tmp", "w") as f:
        f.write(str(n))
    os.replace("count.tmp", "count")
"""


def read(count: Path) -> int:
    try:
        return int(count.read_text() or 0)
    except (OSError, ValueError):
        return 0


@pytest.fixture
def own_tmpdir() -> Iterator[str]:
    """Launcher folders of its own (test_watchman.sandboxed_team's reason)."""
    tmp = tempfile.mkdtemp(prefix="hold-test-")
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("cleaner", ["watchman", "up", None])
def test_commands_held_by_a_killed_supervisor_go_on(
    team: Callable[..., Team], tmp_path: Path, own_tmpdir: str, cleaner: str | None
) -> None:
    """The agent's sandboxed Bash runs a counter; its claude's tree is held as the hook
    holds it (stopped, recorded in the launcher folder), and the supervisor is SIGKILLed.
    The claude dies (its parent-death signal); without the record (``cleaner`` None)
    what lives on of its tree stays stopped for ever (measured: 13 of 14, the command,
    the sandbox's shells, bwrap, socat); with it, the watchman continues them, or, when
    it was killed too, the next `up` (leftovers.remove_dead_launchers)."""
    (tmp_path / "counter.py").write_text(COUNTER, encoding="utf-8")
    me = agent_rule("r")
    t = team(
        [
            {
                "agent": me,
                "match": "GO",
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": "python3 counter.py", "timeout": 600000},
                },
            }
        ],
        {"r": {"tools": ["Bash"]}},
    )
    t.env["TMPDIR"] = own_tmpdir
    t.up()
    t.wait_ready("r")
    cli = t.agent_pid("r")
    assert cli is not None
    t.request("r", "GO")
    count = tmp_path / "count"
    t.wait_for(lambda: read(count) > 0, what="the counter running")
    folder = launcher_folder(cli)
    tree = write_hold.descendants([cli])
    hold = write_hold.Hold()
    # The hold as the hook makes it, from this process (descendants does not ask whose).
    # No timer of this process's may continue them: only the cleaner under test.
    hold.hold("w", [cli], folder / write_hold.RECORD if cleaner else None, max_s=3600)
    assert t.proc is not None
    if cleaner == "up":
        watchman = watchman_of(t.proc.pid)
        assert watchman is not None
        os.kill(watchman, signal.SIGKILL)
    t.proc.send_signal(signal.SIGKILL)
    t.proc.wait(30)
    until(lambda: not procid.running(cli), "the claude gone with its supervisor")
    if cleaner == "up":
        assert folder.exists()
        assert str(folder) in leftovers.remove_dead_launchers(own_tmpdir)
    until(lambda: not folder.exists(), "the watchman's cleanup")
    alive = {p: hold_procs.run_state(p) for p in tree if procid.running(p)}
    stopped = sorted(p for p, s in alive.items() if s in ("T", "t"))
    names = [
        os.path.basename(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]) for p in stopped
    ]
    print(f"HELD-KILLED cleaner={cleaner} tree={len(tree)} alive={len(alive)} stopped={names}")
    try:
        if cleaner:
            # Continued, they end (bwrap dies with its parent, the shells find their
            # pipes closed): none is left stopped.
            assert stopped == []
        else:
            assert stopped  # the leak the record closes
    finally:
        for p in alive:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        hold.release_all()  # its timer (the processes are gone: start times differ)
