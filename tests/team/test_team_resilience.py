"""The supervisor must not die (issue 16, A) and reload is done right (issue 9, point 4).

Each test runs a real team (real claude CLI, scripted model) and does to it what an
operator, another process or a file can do; the supervisor must keep running, the
other agents keep answering, and the operation is either applied in order or refused
with a reason.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml
from team_harness import Team, agent_rule

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def events(t: Team, name: str = "supervisor") -> list[dict[str, Any]]:
    path = t.folder / "logs" / f"{name}.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return out


def state_log(t: Team) -> list[tuple[str, str]]:
    return [(e["agent"], e["state"]) for e in events(t) if e.get("event") == "state"]


def roster_yaml(t: Team, agents: Mapping[str, Mapping[str, Any]]) -> str:
    data: dict[str, Any] = {
        "name": "testteam",
        "defaults": {"backoff": {"initial": "50ms", "max": "200ms"}},
        "agents": {
            name: {"prompt": f"You are {name}.", "description": f"{name} agent", **spec}
            for name, spec in agents.items()
        },
    }
    return yaml.safe_dump(data, sort_keys=False)


def write_unseen(t: Team, agents: Mapping[str, Mapping[str, Any]]) -> None:
    """Rewrite agents.yaml so that the watcher cannot see it (same size and mtime, as
    `touch -r` or `rsync -t` can leave it): only `reload` applies it."""
    before = t.roster_path.stat()
    text = roster_yaml(t, agents)
    pad = before.st_size - len(text.encode()) - 2
    assert pad >= 0, "the new roster must not be longer than the old one"
    t.roster_path.write_text(text + "#" + "-" * pad + "\n", encoding="utf-8")
    os.utime(t.roster_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert t.roster_path.stat().st_size == before.st_size


# --- A.1: operations on one agent are serialised -------------------------------------


def test_stop_then_start_while_busy_is_serialised_not_fatal(team: TeamFactory) -> None:
    """`stop a` while a is busy, then `start a` before the stop finished: the start waits
    for the stop (it used to start a second session task: IllegalTransition busy ->
    starting, and the supervisor exited). The other agent answers throughout, and the
    interrupted request is delivered again and answered."""
    t = team(
        [
            {
                "agent": agent_rule("a"),
                "match": "long job",
                "text": "slow",
                "delay": 60,
                "times": 1,
            },
            {"agent": agent_rule("a"), "match": "long job", "text": "long job done"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {}, "b": {}},
    )
    t.up(extra=["--grace", "2"])
    t.wait_ready("a", "b")
    request = t.request("a", "long job")
    t.model.wait_for_request("long job")
    stopping = t.octy_bg("stop", "a")
    t.wait_for(lambda: t.states().get("a") == "stopping", what="a stopping")
    started = t.octy("start", "a")
    assert started.returncode == 0, started.stderr
    _, stop_err = stopping.communicate(timeout=60)
    assert stopping.returncode == 0, stop_err
    t.wait_ready("a")
    assert t.ask("b", "still there?") == "b here"
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 90).body == "long job done"
    # Serialised: the start waited for the stop to end; one session at a time.
    a_states = [s for who, s in state_log(t) if who == "a"]
    assert a_states[:9] == [
        "waiting",
        "starting",
        "ready",
        "busy",
        "stopping",
        "stopped",
        "waiting",
        "starting",
        "ready",
    ], a_states
    assert "IllegalTransition" not in t.output()


def test_start_on_a_running_agent_is_answered_not_applied(team: TeamFactory) -> None:
    """An operation that does not apply in the current state gets an answer saying so:
    `start` on a running agent says it is already running and leaves its process alone;
    `stop` on a stopped agent says it was already stopped."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    pid = t.agent_pid("a")
    done = t.octy("start", "a", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["result"] == "already running"
    assert t.agent_pid("a") == pid
    assert t.octy("stop", "a").returncode == 0
    again = t.octy("stop", "a", "--json")
    assert json.loads(again.stdout)["results"][0]["result"] == "already stopped"


def test_two_reloads_at_once_apply_one_after_the_other(team: TeamFactory) -> None:
    """A watcher reload waiting for a busy agent to stop, and an operator's `reload` of a
    second edit meanwhile: they used to both restart the agent (IllegalTransition
    starting -> starting, the supervisor exited). Now the second waits for the first, and
    the agent ends up running the last version."""
    t = team(
        [
            {
                "agent": agent_rule("a"),
                "match": "long job",
                "text": "slow",
                "delay": 60,
                "times": 1,
            },
            {"agent": r"(?s)VERSION THREE.*You are the agent 'a'", "text": "a v3"},
            {"agent": agent_rule("a"), "text": "a v1"},
        ],
        {"a": {}},
    )
    t.up(extra=["--grace", "3"])
    t.wait_ready("a")
    t.request("a", "long job")
    t.model.wait_for_request("long job")
    t.write_roster({"a": {"prompt": "You are a. VERSION TWO"}})
    t.wait_for(lambda: t.states().get("a") == "stopping", what="the watcher's reload stopping a")
    t.write_roster({"a": {"prompt": "You are a. VERSION THREE"}})
    done = t.octy("reload")
    assert done.returncode == 0, done.stderr
    t.wait_ready("a")
    assert t.ask("a", "version?") == "a v3"
    assert "IllegalTransition" not in t.output()


# --- A.2: another process holding the write lock -------------------------------------


def test_a_write_lock_held_by_another_process_does_not_end_the_supervisor(
    team: TeamFactory,
) -> None:
    """Another connection holds BEGIN IMMEDIATE past the busy timeout (as an sqlite3
    shell in a transaction does): the sweep used to raise "database is locked" and the
    supervisor exited, as did a state change it could not record. Now the chore is
    reported once and retried, the agent's state is kept in memory and written once the
    lock is released; the agent (whose claude was killed meanwhile) answers afterwards."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    first_pid = t.agent_pid("a")
    assert first_pid
    holder = sqlite3.connect(t.db_path, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        t.wait_for(
            lambda: "chore_failed" in t.output(), timeout=90, what="the chore failing on the lock"
        )
        os.kill(first_pid, signal.SIGKILL)  # a state change the registry cannot take now
        t.wait_for(
            lambda: "state_not_recorded" in t.output(), timeout=90, what="a state kept in memory"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    t.wait_for(lambda: "chore_recovered" in t.output(), timeout=60, what="the chore recovered")
    assert t.ask("a", "there?") == "a here"
    t.wait_for(
        lambda: t.states().get("a") == "ready" and t.agent_pid("a") not in (None, first_pid),
        what="the registry up to date again",
    )
    assert t.proc is not None
    assert t.proc.poll() is None


def test_a_write_lock_held_past_the_busy_timeout_at_a_reply_is_waited_out(
    team: TeamFactory,
) -> None:
    """The write lock is held (an sqlite3 shell left in BEGIN) when a turn ends: the
    reply waits past the 10 s busy timeout and fails. That ended the session (a crash, a
    restart, the answer dropped and the model asked again: paid twice, and a crash loop
    into `failed` while the lock stayed); a full disk did the same. Now the session
    waits it out as it does a NATS outage: one warning, the answer written once the lock
    is free, one turn, no restart."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "long job", "text": "long job done", "delay": 5},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    request = t.request("a", "long job")
    t.model.wait_for_request("long job")
    holder = sqlite3.connect(t.db_path, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # before the model's answer (5 s away)
        t.wait_for(
            lambda: "queue_out_of_reach" in t.output() and "doing=reply" in t.output(),
            timeout=90,
            what="the reply refused by the held lock",
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 60).body == "long job done"
    t.wait_for(lambda: "queue_back" in t.output(), what="the session noticing the queue back")
    assert len(t.model.requests_matching("long job", agent="a")) == 1  # asked once, paid once
    out = t.output()
    assert "session_crashed" not in out, out[-3000:]
    assert "restarting" not in out, out[-3000:]
    assert t.ask("b", "still there?") == "b here"


# --- issue 15, 6: a missing roster ---------------------------------------------------


def test_a_missing_roster_is_rejected_once_not_every_second(team: TeamFactory) -> None:
    """agents.yaml deleted under a running team: one reload_rejected, not one per poll
    (its mtime was NaN, which never equals itself). Checked after the supervisor's
    heartbeat moved twice, i.e. after several polls."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    t.roster_path.unlink()
    t.wait_for(lambda: "reload_rejected" in t.output(), what="the deletion noticed")

    def heartbeat() -> float:
        with t.mailbox() as mb:
            info = mb.agent("supervisor")
            return info.heartbeat_at if info and info.heartbeat_at else 0.0

    first = heartbeat()
    second = t.wait_for(lambda: (h := heartbeat()) > first and h, what="a heartbeat")
    t.wait_for(lambda: heartbeat() > second, what="another heartbeat")
    rejected = [e for e in events(t) if e.get("event") == "reload_rejected"]
    assert len(rejected) == 1, rejected
    assert t.ask("a", "there?") == "a here"


# --- issue 9, 4: reload done right -----------------------------------------------------


def test_editing_a_prompt_file_restarts_its_agent(team: TeamFactory) -> None:
    """The watcher sees prompt files, not only agents.yaml: editing the file an agent's
    prompt_file names restarts that agent with the new text; the other agent keeps its
    process."""
    t = team(
        [
            {"agent": r"(?s)EDITED PROMPT.*You are the agent 'a'", "text": "a edited"},
            {"agent": agent_rule("a"), "text": "a original"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {"prompt_file": "prompts/a.md"}, "b": {}},
    )
    (t.folder / "prompts").mkdir()
    (t.folder / "prompts" / "a.md").write_text("You are a.\n", encoding="utf-8")
    # write_roster gave every agent a prompt; a takes its prompt from the file instead.
    data = yaml.safe_load(t.roster_path.read_text())
    del data["agents"]["a"]["prompt"]
    t.roster_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    t.up()
    t.wait_ready("a", "b")
    assert t.ask("a", "who?") == "a original"
    a_pid, b_pid = t.agent_pid("a"), t.agent_pid("b")
    (t.folder / "prompts" / "a.md").write_text("You are a. EDITED PROMPT\n", encoding="utf-8")
    t.wait_for(lambda: (p := t.agent_pid("a")) is not None and p != a_pid, what="a restarted")
    t.wait_ready("a")
    assert t.ask("a", "who?") == "a edited"
    assert t.agent_pid("b") == b_pid


def test_reload_says_what_it_did_and_starts_in_dependency_order(team: TeamFactory) -> None:
    """`reload` prints what it did (added / removed / restarted, or "no change"), and the
    agents it starts come up in depends_on order, as `up` starts them: the dependency is
    ready before its dependent's claude is launched."""
    t = team(
        [{"agent": agent_rule(n), "text": f"{n} here"} for n in ("keep", "gone", "base", "app")],
        {"keep": {}, "gone": {}},
        **{"x-room": "-" * 1000},  # room for write_unseen's longer roster
    )
    t.up()
    t.wait_ready("keep", "gone")
    write_unseen(
        t,
        {"keep": {"prompt": "You are keep, v2"}, "app": {"depends_on": ["base"]}, "base": {}},
    )
    done = t.octy("reload")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["added: app, base", "removed: gone", "restarted: keep"]
    t.wait_ready("keep", "base", "app")
    order = state_log(t)
    assert order.index(("base", "ready")) < order.index(("app", "starting")), order
    again = t.octy("reload", "--json")
    assert json.loads(again.stdout)["changes"] == {
        "added": [],
        "removed": [],
        "restarted": [],
        "started": [],
    }
    assert t.octy("reload").stdout.strip() == "no change"
    assert t.ask("app", "hi") == "app here"


# --- A.3 and A.5 live: hostile edits ---------------------------------------------------


def test_hostile_roster_edits_are_rejected_and_the_watcher_lives_on(team: TeamFactory) -> None:
    """Edits that used to end the team or hang its watcher (YAML 600 levels deep, a
    2,000-deep ${...} chain, a FIFO as prompt_file) are each rejected as roster errors;
    the team runs on, and a good edit afterwards is still applied."""
    t = team(
        [
            {"agent": agent_rule("a"), "text": "a here"},
            {"agent": agent_rule("later"), "text": "later here"},
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    os.mkfifo(t.folder / "fifo.md")
    edits = [
        "agents:\n  a:\n    prompt: hi\n    x-deep: " + "[" * 600 + "]" * 600 + "\n",
        "agents:\n  a:\n    prompt: '" + "${A:-" * 2000 + "x" + "}" * 2000 + "'\n",
        "agents:\n  a:\n    prompt_file: fifo.md\n",
    ]
    for n, text in enumerate(edits, start=1):
        t.roster_path.write_text(text, encoding="utf-8")
        t.wait_for(
            lambda n=n: len([e for e in events(t) if e.get("event") == "reload_rejected"]) >= n,
            what=f"edit {n} rejected",
        )
    reasons = " ".join(
        str(e.get("errors")) for e in events(t) if e.get("event") == "reload_rejected"
    )
    assert "levels deep" in reasons
    assert "FIFO" in reasons
    assert "RecursionError" not in t.output()
    t.write_roster({"a": {}, "later": {}})
    t.wait_ready("later")
    assert t.ask("later", "hi") == "later here"
    assert t.ask("a", "hi") == "a here"


# --- A.4: the log filesystem full ---------------------------------------------------------


def test_a_log_file_that_cannot_be_written_does_not_end_the_team(team: TeamFactory) -> None:
    """Log writes failing (here EFBIG: a file-size limit set on the running supervisor
    with prlimit, which needs no privilege and behaves as a full disk does for the
    writer) used to raise out of the log call and end the supervisor. Now the team keeps
    answering, the failure is reported once on stderr however many lines are lost, and
    writing resumes (with a `log_resumed` line) once there is room again."""
    limit = 64 * 1024 * 1024
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}}, log_max_bytes=2 * limit)
    logs = t.folder / "logs"
    logs.mkdir(mode=0o700)
    sup_log = logs / "supervisor.jsonl"
    with sup_log.open("wb") as f:
        f.truncate(limit)  # sparse: the size limit is reached without using the disk
    t.up()
    t.wait_ready("a")
    assert t.proc is not None
    resource.prlimit(t.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        for n in range(3):  # every turn logs to supervisor.jsonl: each of those lines fails
            assert t.ask("a", f"question {n}") == "a here"
        t.wait_for(lambda: "cannot write the log file" in t.output(), what="the report")
    finally:
        with sup_log.open("r+b") as f:
            f.truncate(0)  # room again
    assert t.ask("a", "after") == "a here"
    t.wait_for(lambda: "log_resumed" in sup_log.read_text(errors="replace"), what="resumed")
    out = t.output()
    assert out.count("cannot write the log file") == 1, out
    assert "log line(s) dropped" in out
    resumed = [e for e in events(t) if e.get("event") == "log_resumed"]
    assert resumed
    assert resumed[0]["dropped"] >= 3
    t.wait_for(
        lambda: any(e.get("event") == "turn" for e in events(t)), what="turn events logged again"
    )
    assert t.proc.poll() is None


# --- A.6: one agent's trouble stays its own ---------------------------------------------


def test_an_agents_registry_row_deleted_under_the_team_is_written_again(
    team: TeamFactory,
) -> None:
    """Another process deletes an agent's registry row (plain SQL on the database): its
    next state change used to raise RecipientUnknown inside the supervisor, which exited
    and took every agent with it. Now the supervisor writes the row again, the other
    agent answers throughout, and the agent is reachable again."""
    t = team(
        [
            {"agent": agent_rule("a"), "text": "a here"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    pid = t.agent_pid("a")
    with sqlite3.connect(t.db_path, timeout=30) as db:
        db.execute("DELETE FROM agents WHERE name = 'a'")
    db.close()
    done = t.octy("restart", "a")
    assert done.returncode == 0, done.stderr
    t.wait_for(lambda: "reregistered" in t.output(), what="a's row written again")
    t.wait_for(
        lambda: t.states().get("a") == "ready" and t.agent_pid("a") != pid, what="a restarted"
    )
    assert t.ask("b", "there?") == "b here"
    assert t.ask("a", "there?") == "a here"
