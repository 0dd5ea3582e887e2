"""`up` against a hostile registry, and the database taken away under a live team
(real CLI, scripted model, real processes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from team_harness import Team, agent_rule

from orchestrator import procid
from orchestrator.mailbox import Mailbox
from orchestrator.session_options import bundled_cli

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def answering(*names: str) -> list[dict[str, str]]:
    return [{"agent": agent_rule(n), "text": f"{n} answers"} for n in names]


@pytest.fixture
def spawned() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Processes in their own session (as the launcher starts claude); killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **kw,  # type: ignore[call-overload]
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdin is not None:
            proc.stdin.close()


def test_up_kills_only_its_own_leftover_cli_and_recovers_only_its_own_leases(
    team: TeamFactory, tmp_path: Path, spawned: Callable[..., subprocess.Popen[bytes]]
) -> None:
    t = team(answering("a", "b", "c"), {"a": {}, "b": {}, "c": {}})
    cli = bundled_cli()
    assert cli is not None
    # a: an unrelated process whose command line says claude, its start time forged right.
    decoy = spawned(["bash", "-c", "exec -a claude sleep 600"])
    # b: a real claude left behind by a supervisor that died (recorded when it started).
    waiting = [
        cli,
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--print",
        "--verbose",
    ]  # reads its stdin, which stays open
    leftover = spawned(waiting, env={**t.env, "HOME": str(tmp_path)})
    # c: a real claude too, but not the one recorded: the pid was reused.
    reused = spawned(waiting, env={**t.env, "HOME": str(tmp_path)})
    t.db_path.parent.mkdir(mode=0o700)
    with Mailbox(t.db_path) as mb:
        for name, proc, start in (
            ("a", decoy, procid.start_ticks(decoy.pid)),
            ("b", leftover, procid.start_ticks(leftover.pid)),
            ("c", reused, (procid.start_ticks(reused.pid) or 0) - 1),
        ):
            mb.register(name, pid=proc.pid, state="busy", meta={"pid_start": start})
        mb.register("script")
        external = mb.send("user", "script", "for the script")
        assert mb.claim("script", owner="script@cli-1", lease_s=600)
        orphan = mb.request("user", "a", "asked before the crash")
        assert mb.claim("a", owner="octy-supervisor:1-dead00:a:x", lease_s=600)
    t.up()
    t.wait_ready("a", "b", "c")
    t.wait_for(lambda: leftover.poll() is not None, what="the leftover claude killed")
    assert decoy.poll() is None
    assert reused.poll() is None
    assert "stale_pid_left_alone" in t.output()
    with Mailbox(t.db_path) as mb:
        held = mb.get(external.id)
        assert held.status == "leased"
        assert held.lease_owner == "script@cli-1"
        reply = mb.wait_for_reply(orphan.id, 60)  # the dead supervisor's lease came back
        assert reply.body is not None


def _sandbox_helpers(group: int) -> set[int]:
    """The socat proxies the CLI's sandbox runs in process group ``group``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if argv.startswith(b"socat") and b"/claude-" in argv:
            found.add(int(entry.name))
    return found


@pytest.mark.skipif(shutil.which("socat") is None, reason="the CLI's sandbox needs socat")
def test_up_kills_what_a_killed_supervisors_sandbox_left_running(team: TeamFactory) -> None:
    """A SIGKILLed supervisor takes its claude with it (the parent-death signal), but the
    socat proxies the CLI's sandbox started live on, reparented: one or two per agent per
    crash, each holding a socket in /tmp. The next `up` kills them (they are recognised,
    not guessed from the pid), and leaves its new claude's own proxies alone."""
    t = team(answering("a"), {"a": {"tools": ["Bash"]}})
    # Most crashes leave proxies behind, not all: a listener may die too (measured: 1 run
    # in ~15 had none left, likely a write to the dead CLI's stderr pipe). Crash until
    # one leaves some; the `up` between crashes cleans what a crash left, as tested below.
    old: int | None = None
    for _crash in range(4):
        t.up()
        before = old  # the registry shows the dead claude until the new one is recorded
        old = t.wait_for(
            lambda b=before: (
                t.states().get("a") == "ready"
                and t.agent_pid("a") not in (None, b)
                and t.agent_pid("a")
            ),
            what="a ready, a new claude",
        )
        assert old is not None
        helpers = t.wait_for(lambda g=old: _sandbox_helpers(g), what="a's sandbox proxies")
        assert t.proc is not None
        t.proc.send_signal(signal.SIGKILL)
        t.proc.wait(30)
        deadline = time.monotonic() + 30  # (t.wait_for stops at once: its supervisor is dead)
        while procid.running(old) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not procid.running(old), "a's claude dies with its supervisor"
        # ...but its proxies live on (the listeners; a child socat forked for one
        # connection may end by itself, so only those still running count).
        helpers = {pid for pid in helpers if procid.running(pid)}
        if helpers:
            break
    assert helpers, "four crashes in a row left no sandbox proxy running"
    t.up()
    new = t.wait_for(
        lambda: (
            t.states()["a"] == "ready" and t.agent_pid("a") not in (None, old) and t.agent_pid("a")
        ),
        what="a ready again, a new claude",
    )
    t.wait_for(
        lambda: not any(procid.running(pid) for pid in helpers),
        what="the leftover proxies killed",
    )
    assert "killed_stale_sandbox_helpers" in t.output()
    assert t.wait_for(lambda: _sandbox_helpers(new), what="the new claude's proxies")
    assert t.ask("a", "hello") == "a answers"


@pytest.mark.parametrize("how", ["rm", "mv", "rm-mid-turn"])
def test_the_database_taken_away_stops_the_team(team: TeamFactory, how: str) -> None:
    """rm-mid-turn: the agent's own writes (its reply, its ack) meet the missing file."""
    slow = {"agent": agent_rule("a"), "match": "slow", "text": "late", "delay": 2}
    t = team([slow, *answering("a")], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "hello") == "a answers"
    if how == "rm-mid-turn":
        slow_id = t.request("a", "slow one").id
        t.wait_for(
            lambda: [m.status for m in t.messages() if m.id == slow_id] == ["leased"],
            what="the slow request in a's turn",
        )
        how = "rm"
    db = t.db_path
    keep = db.with_name("old-inode")
    os.link(db, keep)  # the old file stays readable after it leaves the path
    if how == "rm":
        db.unlink()
    else:
        other = db.with_name("other.db")
        with Mailbox(other) as mb:
            mb.register("zed")
        os.replace(other, db)
    code = t.wait_exit(90)
    out = t.output()
    assert code == 1, out
    assert "database_replaced" in out
    assert ("was deleted" if how == "rm" else "was replaced") in out
    assert "Traceback" not in out
    # Nothing reached the old file after it left: its last states are the running ones, not
    # the stopping/stopped a normal shutdown writes (its WAL still lies beside the path).
    copy = db.with_name("old-copy.db")
    shutil.copy(keep, copy)
    if Path(f"{db}-wal").exists():
        shutil.copy(f"{db}-wal", f"{copy}-wal")
    with Mailbox(copy, readonly=True) as mb:
        states = {a.name: a.state for a in mb.agents()}
    assert states["a"] in ("ready", "busy"), states
    assert states["supervisor"] == "running", states
    copy.unlink()
    Path(f"{copy}-wal").unlink(missing_ok=True)
    Path(f"{copy}-shm").unlink(missing_ok=True)
    if how == "rm":
        assert not db.exists()  # nothing recreated it
        return
    # As the error says: the -wal and -shm beside the path are the old file's. Aside,
    # the new file is as it was moved in: nothing of the team was written to it.
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db}{suffix}")
        if side.exists():
            shutil.move(side, f"{side}.old")
    with Mailbox(db, readonly=True) as mb:
        assert [a.name for a in mb.agents()] == ["zed"]
        assert mb.list(limit=10) == []
