"""Operating a live team with the habits of compose (issue 9, points 1, 5 and 6): the real
`octy-orchestrate` command in subprocesses, a real team (real claude CLI) against the
scripted model."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator.agent_meta import AgentMeta
from orchestrator.mailbox import SUPERVISOR

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
RUN_TIMEOUT_S = 120  # safety net for a wedged subprocess, not a measurement


def rows(t: Team, *agents: str) -> dict[str, dict[str, Any]]:
    listing = json.loads(t.octy("ps", "--json", *agents).stdout)
    return {a["name"]: a for a in listing["agents"]}


def two_agents(team: TeamFactory) -> Team:
    return team(
        [
            {"agent": agent_rule("a"), "match": "ping", "text": "pong"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {"depends_on": ["b"]}, "b": {}},
    )


BREAKAGES = {
    "yaml syntax": "agents:\n  a:\n    prompt: [unclosed\n",
    "unknown key": "agents:\n  a:\n    prompt: A.\n    modle: x\n  b:\n    prompt: B.\n",
    "missing dependency": "agents:\n  a:\n    prompt: A.\n    depends_on: [gone]\n",
}


def test_a_broken_roster_never_locks_the_operator_out(team: TeamFactory) -> None:
    """Regression (issue 9.1): one bad edit to agents.yaml made down, ps, stop, start,
    restart, reload, ask, send and queue ls exit 1 with the roster error. Broken three ways
    (YAML syntax, an unknown key, a dependency on a missing agent), each verb finds the
    running team's database through the supervisor's record, prints one warning line that
    the file is invalid and the team runs the last good version, and does its job; `config`
    and `up` still refuse with every error; `down` stops the team."""
    t = two_agents(team)
    state = t.folder / "state"
    t.env["XDG_STATE_HOME"] = str(state)  # where the supervisor records the team
    t.octy("up", "-d")
    t.wait_ready("a", "b")
    good = t.roster_path.read_text()
    [record] = [
        p
        for p in (state / "octy-orchestrate" / "teams").glob("*.json")
        if json.loads(p.read_text())["roster"] == str(t.roster_path.resolve())
    ]
    assert record.stat().st_mode & 0o777 == 0o600
    assert record.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(record.read_text())["database"] == str(t.db_path)
    for how, text in BREAKAGES.items():
        t.roster_path.write_text(text, encoding="utf-8")

        def warned(done: subprocess.CompletedProcess[str], how: str = how) -> str:
            lines = [line for line in done.stderr.splitlines() if "warning" in line]
            assert len(lines) == 1, (how, done.stderr)
            assert "invalid" in lines[0]
            assert "last good version" in lines[0]
            return done.stdout

        listing = json.loads(warned(t.octy("ps", "--json")))
        assert {a["name"]: a["state"] for a in listing["agents"]} == {"a": "ready", "b": "ready"}
        assert warned(t.octy("ask", "a", "ping")).strip() == "pong", how
        sent = json.loads(warned(t.octy("send", "b", f"note {how}", "--json")))
        assert any(m["id"] == sent["message"]["id"] for m in _ls(t)), how
        request_id = json.loads(t.octy("ask", "a", "ping", "--json").stdout)["request"]["id"]
        assert "pong" in warned(t.octy("trace", request_id)), how
        warned(t.octy("inbox", "b"))
        warned(t.octy("logs", "--tail", "3"))
        old_pid = t.agent_pid("a")
        assert "restart: a restarting" in warned(t.octy("restart", "a"))
        t.wait_for(
            lambda old=old_pid: t.states().get("a") == "ready" and t.agent_pid("a") != old,
            what=f"a restarted ({how})",
        )
        warned(t.octy("stop", "b"))
        assert t.states()["b"] == "stopped"
        warned(t.octy("start", "b"))
        t.wait_ready("b")
        reload = t.octy("reload", check=False)
        assert reload.returncode == 1, how
        assert "runs unchanged" in reload.stderr, how
        lines = reload.stderr.splitlines()
        listed = [line.split("agents.yaml", 1)[1] for line in lines if "agents.yaml" in line]
        problems = [line for line in listed if line.startswith(":")]
        assert problems, (how, reload.stderr)
        assert len(problems) == len(set(problems)), (how, reload.stderr)  # each said once
        for refusing in (("config",), ("up", "-d")):
            done = t.octy(*refusing, check=False)
            assert done.returncode == 1, (how, refusing)
            assert "problem(s) in" in done.stderr or "a supervisor" in done.stderr, done.stderr
        assert "problem(s)" in t.octy("config", check=False).stderr
    stopped = t.octy("down")
    assert "team stopped" in stopped.stdout
    assert "invalid" in stopped.stderr
    assert t.states()["a"] == "stopped"
    t.roster_path.write_text(good, encoding="utf-8")


def _ls(t: Team) -> list[dict[str, Any]]:
    return list(json.loads(t.octy("queue", "ls", "--json").stdout)["messages"])


def test_compose_habits_on_a_live_team(team: TeamFactory) -> None:
    """Issue 9.6: start/stop/restart take several agents and none means all; `start` on a
    running agent says so; `ps AGENT` filters and shows CPU % and memory of each claude
    process; an unknown agent is exit 3 everywhere (up, ps, restart, logs); `-f FILE` works
    before the verb."""
    t = two_agents(team)
    assert t.octy("up", "-d", "nosuch", check=False).returncode == 3
    t.octy("-f", str(t.roster_path), "up", "-d")
    t.wait_ready("a", "b")

    only_a = rows(t, "a")
    assert list(only_a) == ["a"]
    assert only_a["a"]["cpu_percent"] is not None
    assert only_a["a"]["rss_bytes"] > 20 * 2**20  # claude's own process, not a shell wrapper
    table = t.octy("ps").stdout
    assert "CPU%" in table
    assert "MiB" in table

    for verb in (("ps", "nosuch"), ("restart", "nosuch"), ("stop", "a", "nosuch")):
        done = t.octy(*verb, check=False)
        assert done.returncode == 3, (verb, done.stderr)
        assert "nosuch" in done.stderr
    assert t.octy("logs", "nosuch", check=False).returncode == 3
    assert t.states()["a"] == "ready"  # `stop a nosuch` stopped nothing

    started = t.octy("start", "a")
    assert "already running" in started.stdout

    stopped = t.octy("stop")  # no agent: all of them
    assert sorted(stopped.stdout.split("\n")[:2]) == ["stop: a stopped", "stop: b stopped"]
    assert {r["state"] for r in rows(t).values()} == {"stopped"}
    # An ask to a stopped agent is refused at once, as an agent's ask is, not after its
    # --timeout (it waited the whole 600 s before), and nothing is queued.
    asked = t.octy("ask", "a", "ping", "--timeout", "600", check=False)
    assert asked.returncode == 1, asked.stderr
    assert "'a' is stopped" in asked.stderr
    assert "octy-orchestrate start a" in asked.stderr
    assert "request" not in asked.stderr  # refused before anything was sent
    listing = json.loads(t.octy("queue", "ls", "--json").stdout)
    assert [m for m in listing["messages"] if m["recipient"] == "a"] == []
    t.octy("start", "a", "b")
    t.wait_ready("a", "b")
    pids = {n: t.agent_pid(n) for n in ("a", "b")}
    t.octy("-f", str(t.roster_path), "restart")
    t.wait_for(
        lambda: all(t.states()[n] == "ready" and t.agent_pid(n) != pids[n] for n in pids),
        what="both restarted",
    )
    assert t.ask("a", "ping") == "pong"

    # Issue 16.15: supervisor.out (the console of `up -d`) escapes a peer's control codes.
    t.octy("send", "a", "hi\x1b]0;pwned\x07\x1b[2J\rgone")
    out = t.folder / "logs" / "supervisor.out"
    t.wait_for(lambda: "pwned" in out.read_text(), what="the notice in supervisor.out")
    assert "\x1b" not in out.read_text()
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\rgone" in out.read_text()
    t.octy("down")


def test_ps_colours_states_on_a_terminal_unless_no_color(team: TeamFactory) -> None:
    """Issue 9.6: on a terminal `ps` colours each state; NO_COLOR turns it off; a pipe gets
    plain text."""
    t = two_agents(team)
    t.octy("up", "-d")
    t.wait_ready("a", "b")
    env = {k: v for k, v in t.env.items() if k != "NO_COLOR"}
    coloured = _on_a_tty(t, ["ps"], env)
    assert "\x1b[32mready" in coloured
    assert "\x1b[" not in _on_a_tty(t, ["ps"], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in t.octy("ps", env={"NO_COLOR": ""}).stdout
    t.octy("down")


def _on_a_tty(t: Team, args: list[str], env: dict[str, str]) -> str:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=t.folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(RUN_TIMEOUT_S) == 0, out
    return out.decode()


def test_logs_follow_ends_when_the_team_stops(team: TeamFactory) -> None:
    """Issue 9.6: `logs -f` ends by itself when the team is stopped (as `compose logs -f`),
    after printing the last events; `logs -f --forever` keeps following; `-n N` is --tail."""
    t = two_agents(team)
    t.octy("up", "-d")
    t.wait_ready("a", "b")
    assert len(t.octy("logs", "-n", "2").stdout.strip().splitlines()) == 2

    def follow(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "logs", "-f", "--no-color", *extra],
            cwd=t.folder,
            env=t.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    ending, forever = follow(), follow("--forever")
    try:
        for proc in (ending, forever):  # each has looked at the team once it prints
            assert proc.stdout is not None
            assert proc.stdout.readline()
        t.octy("down")
        out, err = ending.communicate(timeout=RUN_TIMEOUT_S)
        assert ending.returncode == 0, err
        assert "supervisor_stopped" in out  # the last event is shown before it ends
        assert forever.poll() is None  # still following
    finally:
        for proc in (ending, forever):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=RUN_TIMEOUT_S)


def test_external_participants_show_their_pid_go_stale_and_can_be_unregistered(
    team: TeamFactory,
) -> None:
    """Regression (issue 9.5): a script that joined with `register` stayed `running` in `ps`
    with no pid, and could not be removed. `ps` shows the pid it registered, `stale` once
    its heartbeat is older than the documented limit, `exited` once that process is gone;
    `unregister` removes it, and refuses
    an agent of the running team's roster (exit 1) until the team stops."""
    t = two_agents(team)
    t.octy("up", "-d")
    t.wait_ready("a", "b")
    script = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        t.octy("register", "helper", "--pid", str(script.pid))
        helper = rows(t)["helper"]
        assert helper["pid"] == script.pid
        assert helper["state"] == "registered"
        assert helper["external"] is True
        assert str(script.pid) in t.octy("ps", "helper").stdout
        with sqlite3.connect(t.db_path) as conn:  # as if its last sign of life were old
            conn.execute(
                "UPDATE agents SET heartbeat_at = ? WHERE name = 'helper'", (time.time() - 3600,)
            )
        assert rows(t)["helper"]["state"] == "stale"
        t.octy("inbox", "helper", "--ack")  # taking delivery is a heartbeat
        assert rows(t)["helper"]["state"] == "registered"

        refused = t.octy("unregister", "a", check=False)
        assert refused.returncode == 1
        assert "agent of the running team" in refused.stderr
        assert "a" in rows(t)
        assert t.octy("unregister", "supervisor", check=False).returncode == 2
        script.kill()
        script.wait()
        assert rows(t)["helper"]["state"] == "exited"  # its process is gone
        t.octy("unregister", "helper")
        assert "helper" not in rows(t)
        assert t.octy("unregister", "helper", check=False).returncode == 3
        t.octy("down")
        t.octy("unregister", "b")  # no supervisor runs it any more
        assert "b" not in rows(t)
    finally:
        script.kill()
        script.wait()


def test_piping_into_head_never_prints_a_traceback(team: TeamFactory) -> None:
    """Issue 9.6: `octy-orchestrate queue ls | head -1` (and logs, ps) end quietly when the
    reader leaves."""
    t = two_agents(team)
    from orchestrator.mailbox import Mailbox

    t.db_path.parent.mkdir(parents=True, exist_ok=True)
    with Mailbox(t.db_path, create=True) as mb:
        mb.register("a")
        mb.send_many("user", [("a", "x" * 200)] * 3000)
    for verb in ("queue ls --limit 3000", "queue ls --limit 3000 --json"):
        done = subprocess.run(
            f"{sys.executable} -m orchestrator.cli {verb} | head -1",
            shell=True,
            cwd=t.folder,
            env=t.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0
        assert "Traceback" not in done.stderr, done.stderr
        assert "BrokenPipe" not in done.stderr
        assert len(done.stdout.splitlines()) == 1


def test_ps_after_the_supervisor_was_killed_shows_no_live_pids(team: TeamFactory) -> None:
    """Supervisor SIGKILLed (its claude processes die with it): `ps` said the supervisor was
    not running yet still showed each agent's old pid and a ticking uptime, as if alive.
    The recorded states stay (last known); pid and uptime are gone."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.proc is not None
    os.kill(t.proc.pid, signal.SIGKILL)
    t.proc.wait(RUN_TIMEOUT_S)
    listing = json.loads(t.octy("ps", "--json").stdout)
    assert listing["supervisor"]["running"] is False
    (row,) = listing["agents"]
    assert (row["name"], row["state"], row["pid"], row["uptime_s"]) == ("a", "ready", None, None)


def test_a_command_whose_supervisor_dies_before_answering_is_told_at_once(
    team: TeamFactory,
) -> None:
    """The supervisor is frozen when `restart a` is sent, then SIGKILLed: the CLI sees
    its lock dropped and says the supervisor is gone (exit 5, not sure the restart was
    done), instead of waiting out its timeout for a vague error."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.proc is not None
    os.kill(t.proc.pid, signal.SIGSTOP)
    try:
        cli = t.octy_bg("restart", "a", "--timeout", "600")
        t.wait_for(
            lambda: t.messages(recipient=SUPERVISOR, status="pending"), what="command stored"
        )
    finally:
        os.kill(t.proc.pid, signal.SIGKILL)
    t.proc.wait(RUN_TIMEOUT_S)
    out, err = cli.communicate(timeout=RUN_TIMEOUT_S)
    assert cli.returncode == 5, (out, err)
    assert f"(pid {t.proc.pid}) is gone: it stopped before answering 'restart'" in err
    assert "Traceback" not in err


def test_a_frozen_supervisor_is_shown_as_not_responding(team: TeamFactory) -> None:
    """SIGSTOP on the supervisor: it still holds its lock, so `ps` showed its agents as
    live and `restart` waited out its timeout without a word why. Its heartbeat (written
    every 5 s) stops: `ps` says NOT RESPONDING and how to resume it, and the timeout of a
    command says what the heartbeat says. (The heartbeat is set back by plain SQL while
    it is frozen, rather than waiting 20 s.)"""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    assert t.proc is not None
    listing = json.loads(t.octy("ps", "--json").stdout)
    assert listing["supervisor"]["responding"] is True
    os.kill(t.proc.pid, signal.SIGSTOP)
    try:
        conn = sqlite3.connect(t.db_path, timeout=10)
        with conn:
            conn.execute(
                "UPDATE agents SET heartbeat_at = heartbeat_at - 60 WHERE name = ?", (SUPERVISOR,)
            )
        conn.close()
        listing = json.loads(t.octy("ps", "--json").stdout)
        assert listing["supervisor"]["responding"] is False
        assert listing["supervisor"]["silent_s"] >= 60
        shown = t.octy("ps").stdout
        assert f"pid {t.proc.pid}, NOT RESPONDING: no heartbeat for" in shown
        assert f"`kill -CONT {t.proc.pid}`" in shown
        timed_out = t.octy("restart", "a", "--timeout", "1", check=False)
        assert timed_out.returncode == 4, timed_out.stderr
        assert "it has written no heartbeat for" in timed_out.stderr
    finally:
        os.kill(t.proc.pid, signal.SIGCONT)
    t.wait_for(
        lambda: json.loads(t.octy("ps", "--json").stdout)["supervisor"]["responding"],
        what="the heartbeat again",
    )


def test_a_restarted_agent_is_up_since_its_restart_while_it_starts(team: TeamFactory) -> None:
    """Found in a walkthrough: right after `restart researcher`, `ps` showed it `starting`
    with the old session's UPTIME (0m29s); it counts from the restart, as pm2's does."""
    t = two_agents(team)
    t.octy("up", "-d")
    t.wait_ready("a", "b")
    restarted_at = time.time()
    t.octy("restart", "b")
    with t.mailbox() as mb:

        def starting_since() -> float | None:
            info = mb.agent("b")
            if info is None or info.state != "starting":
                return None
            return AgentMeta.read(info.meta).started_at or 0.0

        since = t.wait_for(starting_since, what="b seen starting again")
    assert since >= restarted_at
    t.octy("down")
