"""Operating a team from another terminal, as a user would: the `octy-orchestrate` command
in subprocesses, a real team (real claude CLI) against the scripted model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from team_harness import Team, agent_rule, text_of

from orchestrator import errors
from orchestrator.mailbox import USER

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def ps(t: Team) -> dict[str, Any]:
    return json.loads(t.octy("ps", "--json").stdout)


def agents_by_name(t: Team) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in ps(t)["agents"]}


def test_detached_team_is_operated_from_another_terminal(team: TeamFactory) -> None:
    """up -d returns once the supervisor holds the team; ps --json shows agents with pids;
    ask gets an answer that logs --tail and trace show; restart gives the agent a new claude
    process; stop and start one agent; a second up -d is refused; down stops everything and
    ps then says no supervisor runs."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "ping", "text": "pong"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {}, "b": {}},
    )
    started = t.octy("up", "-d", "--json")
    sup_pid = json.loads(started.stdout)["pid"]
    t.wait_ready("a", "b")
    listing = ps(t)
    assert listing["supervisor"] == {"running": True, "pid": sup_pid, "responding": True}
    rows = {a["name"]: a for a in listing["agents"]}
    assert rows["a"]["state"] == "ready"
    assert rows["a"]["pid"]
    asked = json.loads(t.octy("ask", "a", "ping", "--json").stdout)
    assert asked["reply"]["body"] == "pong"
    assert t.octy("ask", "a", "ping").stdout.strip() == "pong"
    assert agents_by_name(t)["a"]["turns"] == 2

    request_id = asked["request"]["id"]
    tail = t.wait_for(
        lambda: (
            "replied" in (out := t.octy("logs", "a", "--tail", "5", "--no-color").stdout) and out
        ),
        what="a's reply in its log",
    )
    assert len(tail.strip().splitlines()) == 5
    assert "a " in tail
    timeline = t.octy("trace", request_id).stdout
    assert "user → a" in timeline
    assert "pong" in timeline
    assert "sequenceDiagram" in t.octy("trace", request_id, "--mermaid").stdout

    again = t.octy("up", "-d", check=False)
    assert again.returncode == 1
    assert f"pid {sup_pid}" in again.stderr

    old_pid = rows["a"]["pid"]
    t.octy("restart", "a")
    t.wait_for(
        lambda: (r := agents_by_name(t)["a"])["state"] == "ready" and r["pid"] != old_pid,
        what="a restarted",
    )
    assert agents_by_name(t)["a"]["restarts"] >= 1
    assert agents_by_name(t)["b"]["pid"] == rows["b"]["pid"]  # b untouched

    t.octy("stop", "b")
    assert agents_by_name(t)["b"]["state"] == "stopped"
    t.octy("start", "b")
    t.wait_ready("b")
    assert t.octy("restart", "nobody", check=False).returncode == 3
    empty = t.octy("restart", "", check=False)  # said as '', not as nothing
    assert empty.returncode == 3
    assert "no agent named '' in the running team" in empty.stderr

    down = t.octy("down")
    assert "stopped" in down.stdout
    after = ps(t)
    assert after["supervisor"]["running"] is False
    assert {a["state"] for a in after["agents"]} == {"stopped"}


def test_down_with_no_supervisor_running(team: TeamFactory) -> None:
    """Regression (issue 9.6): down when nothing runs exited 5. As compose: exit 0 and say
    so (the wanted state holds). Verbs that need a supervisor to act still exit 5."""
    t = team([{"text": "x"}], {"a": {}})
    done = t.octy("down", check=False)
    assert done.returncode == 0, done.stderr
    assert "nothing to stop" in done.stdout
    assert json.loads(t.octy("down", "--json").stdout)["running"] is False
    assert t.octy("restart", "a", check=False).returncode == 5


def test_an_unknown_agent_is_said_before_the_missing_supervisor(team: TeamFactory) -> None:
    """`start nosuch` with no supervisor running said "no supervisor is running" (exit 5)
    and, once `up` ran, "no agent named 'nosuch'" (exit 3): the name is the more useful
    error, said first with its own exit code, before any `up` and after `down` alike
    (the roster on disk, the team's registry). A known agent still reads exit 5."""
    t = team([{"text": "x"}], {"a": {}})
    for ran in ("before up", "after down"):
        for verb in ("start", "stop", "restart"):
            done = t.octy(verb, "nosuch", check=False)
            assert done.returncode == 3, (ran, verb, done.stderr)
            assert "no agent named 'nosuch' in the team; agents: a" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
            both = t.octy(verb, "a", "nosuch", "--json", check=False)
            assert (both.returncode, json.loads(both.stdout)["error"]) == (3, "not_found")
            assert t.octy(verb, "a", check=False).returncode == 5, (ran, verb)
        if ran == "before up":
            t.up()
            t.wait_ready("a")
            t.octy("down")


def test_down_when_the_queue_cannot_take_the_command_sends_sigterm(team: TeamFactory) -> None:
    """`down` goes through the queue; when it cannot (here a write lock another program
    holds past the busy timeout; a full disk, a damaged file or a NATS server out of
    reach alike) it used to fail with the queue's error and leave the team running.
    SIGTERM to this machine's supervisor is the same stop: it is sent instead, said on
    stderr, and `down` waits for the stop as usual."""
    t = team([{"text": "x"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    holder = sqlite3.connect(t.db_path, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        down = t.octy_bg("down")
        t.wait_for(lambda: "stopping grace_s" in t.output(), timeout=90, what="the stop")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = down.communicate(timeout=120)
    assert down.returncode == 0, err
    assert "sent SIGTERM to pid" in err, err
    assert "database is locked" in err, err
    assert "team stopped" in out
    assert t.wait_exit() == 0


def test_ask_says_at_once_that_the_supervisor_died_while_it_waited(team: TeamFactory) -> None:
    """`ask a ...` while the supervisor running `a` is SIGKILLed: it used to wait out its
    whole --timeout (300 s by default) and then say "no reply". Like the operator
    commands, it watches the team's lock and says at once that the supervisor is gone,
    exit 5, the request left queued for the next `up`. A participant that answers by
    itself (`register`) is still waited for as before (test_cli_queue)."""
    t = team(
        [{"agent": agent_rule("a"), "match": "long job", "text": "done", "delay": 60}],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    asker = t.octy_bg("ask", "a", "long job", "--timeout", "90")
    t.model.wait_for_request("long job")
    t.signal(signal.SIGKILL)
    _, err = asker.communicate(timeout=150)
    assert asker.returncode == 5, err
    assert "is gone: it stopped while 'a' had request" in err
    assert "stays queued" in err
    with t.mailbox() as mb:
        [request] = mb.list(recipient="a")
    assert request.status in ("pending", "leased")


def test_hot_reload_adds_removes_and_changes_agents(team: TeamFactory) -> None:
    """Editing agents.yaml under a running team: the added agent starts, the removed one
    stops and leaves the registry, the changed one restarts, the untouched one keeps its
    claude process, and a request queued for the changed agent is answered once."""
    t = team(
        [
            {"agent": agent_rule("keep"), "text": "keep here"},
            {"agent": r"(?s)VERSION TWO.*You are the agent 'change'", "text": "changed v2"},
            {"agent": agent_rule("change"), "text": "changed v1", "delay": 2},
            {"agent": agent_rule("added"), "text": "added here"},
            {"agent": agent_rule("gone"), "text": "gone here"},
        ],
        {"keep": {}, "change": {}, "gone": {}},
    )
    t.up()
    t.wait_ready("keep", "change", "gone")
    keep_pid, gone_pid = t.agent_pid("keep"), t.agent_pid("gone")
    queued = t.request("change", "a question for change")
    t.model.wait_for_request("a question for change")
    t.write_roster({"keep": {}, "change": {"prompt": "You are change. VERSION TWO"}, "added": {}})
    t.wait_for(
        lambda: t.states().get("added") == "ready" and "gone" not in t.states(),
        what="reload applied",
    )
    t.wait_ready("keep", "change", "added")
    with t.mailbox() as mb:
        reply = mb.wait_for_reply(queued.id, 60)
    assert reply.body in ("changed v1", "changed v2")
    assert len([m for m in t.messages() if m.correlation_id == queued.id]) == 1
    assert t.agent_pid("keep") == keep_pid
    assert gone_pid is not None
    assert (
        not os.path.exists(f"/proc/{gone_pid}") or "Z" in Path(f"/proc/{gone_pid}/stat").read_text()
    )
    assert t.ask("added", "hello") == "added here"
    assert t.ask("change", "hello") == "changed v2"
    assert "reload" in t.output()


def test_requests_queued_for_a_removed_agent_are_answered_at_once(team: TeamFactory) -> None:
    """Removing an agent while requests wait for it: the request it is answering gets its
    reply, the request still queued is answered recipient_removed (its asker stops waiting
    instead of running into a timeout), a queued notice stays, and a new send is refused."""
    t = team(
        [
            {"agent": agent_rule("gone"), "text": "gone answers", "delay": 4},
            {"agent": agent_rule("keep"), "text": "keep here"},
        ],
        {"keep": {}, "gone": {}},
    )
    t.up()
    t.wait_ready("keep", "gone")
    first = t.request("gone", "first question")
    t.model.wait_for_request("first question")  # gone is busy with it for 4 s
    second = t.request("gone", "second question")
    with t.mailbox() as mb:
        notice = mb.send(USER, "gone", "a notice for later")
    t.write_roster({"keep": {}})
    with t.mailbox() as mb:
        with pytest.raises(errors.RecipientRemoved) as failed:
            mb.wait_for_reply(second.id, 60)
        assert "'gone' was removed from agents.yaml" in str(failed.value)
        assert text_of(mb.wait_for_reply(first.id, 60).body) == "gone answers"
        assert mb.get(notice.id).status == "pending"
        with pytest.raises(errors.RecipientUnknown):
            mb.send(USER, "gone", "hello?")
    assert not t.model.requests_matching("second question")  # never delivered to a model
    assert t.ask("keep", "still there?") == "keep here"


def test_invalid_edit_leaves_the_team_running(team: TeamFactory) -> None:
    """A broken agents.yaml edit is rejected whole: logged with its errors, `reload` exits 1
    naming the problem, and the team runs on unchanged."""
    t = team([{"agent": agent_rule("a"), "text": "still a"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    pid = t.agent_pid("a")
    t.roster_path.write_text("agents:\n  a:\n    prompt: hi\n    modle: x\n", encoding="utf-8")
    t.wait_for(lambda: "reload_rejected" in t.output(), what="edit rejected")
    assert "modle" in t.output()
    done = t.octy("reload", check=False)
    assert done.returncode == 1
    assert "did you mean 'model'?" in done.stderr
    assert t.ask("a", "there?") == "still a"
    assert t.agent_pid("a") == pid


def test_an_edit_adding_an_agent_whose_folder_is_really_not_utf8_is_refused(
    team: TeamFactory, tmp_path: Path
) -> None:
    """Regression (review): an edit adding an agent whose `cwd` is a symlink to a folder
    named with a byte that is not UTF-8 was applied, and the agent restarted until it
    failed (the claude CLI: `Can't access working directory`). Refused now, as `up`
    refuses such a roster: `reload` exits 1 naming the folder, the team runs on."""
    t = team([{"agent": agent_rule("a"), "text": "still a"}], {"a": {}})
    real = tmp_path / os.fsdecode(b"real\xffdir")
    real.mkdir()
    (t.folder / "lnk").symlink_to(real)
    t.up()
    t.wait_ready("a")
    pid = t.agent_pid("a")
    t.write_roster({"a": {}, "b": {"cwd": "lnk"}})
    t.wait_for(lambda: "reload_rejected" in t.output(), what="edit rejected")
    done = t.octy("reload", "--json", check=False)
    assert done.returncode == 1
    message = json.loads(done.stdout)["message"]
    assert (
        f"{t.roster_path}: the working folder {t.folder}/lnk (really {tmp_path}/real\\xffdir) "
        "of b is not valid UTF-8 text: the claude CLI cannot start there" in message
    ), message
    # a prompt file whose real path is such: the sandbox could not keep it read-only
    (real / "c.md").write_text("You are c.", encoding="utf-8")
    (t.folder / "c.md").symlink_to(real / "c.md")
    data = yaml.safe_load(t.roster_path.read_text(encoding="utf-8"))  # a, b refused
    data["agents"].pop("b")
    data["agents"]["c"] = {"prompt_file": "c.md"}
    t.roster_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    t.wait_for(lambda: t.output().count("reload_rejected") >= 3, what="second edit rejected")
    done = t.octy("reload", "--json", check=False)
    assert done.returncode == 1
    message = json.loads(done.stdout)["message"]
    assert (
        f"{t.roster_path}: the prompt file of c, {tmp_path}/real\\xffdir/c.md, is not valid "
        "UTF-8 text" in message
    ), message
    assert t.ask("a", "there?") == "still a"
    assert t.agent_pid("a") == pid
    assert set(t.states()) == {"supervisor", "a"}


def test_a_roster_grown_past_the_agent_limit_is_refused_and_the_team_runs_on(
    team: TeamFactory,
) -> None:
    """An edit to more agents than a roster may hold (each a claude of ~200 MiB) is refused
    as any invalid edit: the watcher and `reload` say the limit, and the running team keeps
    its last good roster (no claude is started for the new names)."""
    from orchestrator.roster import MAX_AGENTS

    t = team([{"agent": agent_rule("a"), "text": "still a"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    pid = t.agent_pid("a")
    t.write_roster({f"a{i}" if i else "a": {} for i in range(MAX_AGENTS + 1)})
    t.wait_for(lambda: "reload_rejected" in t.output(), what="edit rejected")
    done = t.octy("reload", check=False)
    assert done.returncode == 1
    assert f"{MAX_AGENTS + 1} agents defined; a roster holds at most {MAX_AGENTS}" in done.stderr
    assert t.ask("a", "there?") == "still a"
    assert t.agent_pid("a") == pid
    assert set(t.states()) == {"supervisor", "a"}


def test_an_edit_adding_agents_that_would_not_fit_in_memory_is_refused(
    team: TeamFactory,
) -> None:
    """As `up` does, a reload counts ~200 MiB per claude it would add against the memory
    available, here the room under a real memory cgroup (a container's limit) the running
    supervisor is moved into: three more agents do not fit, so the edit is refused (the
    watcher, then `reload`) and the team runs on with its last good roster."""
    from memory_cgroup import memory_cgroup

    from orchestrator.capacity import MIB

    t = team([{"agent": agent_rule("a"), "text": "still a"}], {"a": {}})
    with memory_cgroup() as cgroup:
        try:
            t.up()
            t.wait_ready("a")
            assert t.proc is not None
            (cgroup / "cgroup.procs").write_text(str(t.proc.pid))
            used = int((cgroup / "memory.usage_in_bytes").read_text())
            (cgroup / "memory.limit_in_bytes").write_text(str(used + 300 * MIB))
            t.write_roster({name: {} for name in ("a", "b", "c", "d")})
            t.wait_for(lambda: "reload_rejected" in t.output(), what="edit rejected")
            done = t.octy("reload", check=False)
            assert done.returncode == 1
            assert "not enough memory for the agents this edit adds: 3 agent(s)" in done.stderr
            assert "the team runs on unchanged" in done.stderr
            assert t.ask("a", "there?") == "still a"
            assert set(t.states()) == {"supervisor", "a"}
        finally:
            t.stop()


def test_a_secret_in_an_agents_env_never_reaches_the_logs(team: TeamFactory) -> None:
    """An env value under a secret-looking name is redacted from every log line, and
    `config` shows it as ***."""
    secret = "s3cr3t-VALUE-0123456789"
    t = team(
        [{"agent": agent_rule("a"), "text": f"leaking {secret} here"}],
        {"a": {"env": {"MY_SERVICE_TOKEN": secret}}},
    )
    t.up()
    t.wait_ready("a")
    assert secret in t.ask("a", "say it")  # the reply itself is data, not a log
    logs = t.folder / "logs"

    def logged() -> str:
        return "".join(p.read_text() for p in logs.glob("*.jsonl*"))

    text = t.wait_for(lambda: "leaking" in logged() and logged(), what="the reply logged")
    assert secret not in text
    assert secret not in t.output()
    config = yaml.safe_load(t.octy("config").stdout)
    assert config["agents"]["a"]["env"]["MY_SERVICE_TOKEN"] == "***"
