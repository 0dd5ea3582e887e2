"""`up` against a hostile registry, and the database taken away under a live team
(real CLI, scripted model, real processes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
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
