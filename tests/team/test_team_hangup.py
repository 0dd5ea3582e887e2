"""SIGHUP: a foreground `up` whose terminal goes away stops gracefully; a supervisor
without a terminal (`up -d`, a service) reloads agents.yaml on `kill -HUP`.

Before, SIGHUP's default action ended the supervisor on the spot: a closed terminal
window or a dropped ssh session left the registry saying `ready`, the queue's leases
held and the sandboxes' proxies running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

from orchestrator import procid
from orchestrator.lockfile import holder_pid

TeamFactory = Callable[..., Team]

needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
)


def supervisor_events(t: Team) -> list[dict[str, object]]:
    path = t.folder / "logs" / "supervisor.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_tmux
def test_a_terminal_that_hangs_up_stops_the_team_gracefully(team: TeamFactory) -> None:
    """`up` in a real terminal (tmux), then the terminal goes away (kill-server: the pty
    hangs up, the kernel sends SIGHUP to its foreground job)."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    socket = t.folder / "tmux.sock"

    def tmux(*args: str) -> None:
        subprocess.run(["tmux", "-S", str(socket), *args], env=t.env, timeout=30, check=True)

    tmux(
        "new-session", "-d", "-x", "200", "-y", "50", "-c", str(t.folder),
        "--", sys.executable, "-m", "orchestrator.cli", "up", "--no-color",
    )  # fmt: skip
    try:
        t.wait_ready("a")
        pid = holder_pid(t.db_path)
        assert pid
        claude = t.agent_pid("a")
    finally:
        tmux("kill-server")
    t.wait_for(lambda: holder_pid(t.db_path) is None, timeout=90, what="the supervisor's end")
    events = supervisor_events(t)
    names = [e["event"] for e in events]
    assert {"event": "signal", "signal": "SIGHUP"}.items() <= next(
        e for e in events if e["event"] == "signal"
    ).items()
    assert "supervisor_stopped" in names
    assert t.states().get("a") == "stopped"
    with t.mailbox() as mb:
        row = mb.agent("supervisor")
    assert row is not None
    assert row.state == "stopped"
    assert claude is not None
    t.wait_for(lambda: not procid.running(claude), timeout=30, what="its claude's end")


def test_sighup_without_a_terminal_reloads_the_roster(team: TeamFactory) -> None:
    """The harness starts `up` in a session of its own (no controlling terminal, as
    `up -d` does). An edit that keeps agents.yaml's size and mtime is not seen by the
    watcher (README); SIGHUP reloads it, and the team runs on."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {"prompt": "You are A1."}})
    t.up()
    t.wait_ready("a")
    before = t.roster_path.stat()
    text = t.roster_path.read_text()
    assert "You are A1." in text
    t.roster_path.write_text(text.replace("You are A1.", "You are A2."))
    os.utime(t.roster_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    t.signal(signal.SIGHUP)
    t.wait_for(lambda: 'restarted=["a"]' in t.output(), what="the reload SIGHUP asked for")
    assert "signal=SIGHUP action=reload" in t.output()
    t.wait_ready("a")
    assert t.ask("a", "there?") == "a here"
    assert t.proc is not None
    assert t.proc.poll() is None


SAYS = "from orchestrator.supervisor import hangup_means; print(hangup_means())"


@pytest.mark.parametrize(("prefix", "expected"), [(["nohup"], "None"), ([], "reload")])
def test_what_a_hangup_means_to_a_process_without_a_terminal(
    prefix: list[str], expected: str
) -> None:
    """Decided in the process itself, started in a session of its own (no controlling
    terminal, as `up -d`): under `nohup` (SIGHUP ignored) hangups stay ignored, else
    SIGHUP reloads. (With a terminal: the tmux test above.)"""
    done = subprocess.run(
        [*prefix, sys.executable, "-c", SAYS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        start_new_session=True,
    )
    assert done.stdout.strip() == expected
