"""Supervision with real processes and real signals (real CLI, scripted model)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy
from team_harness import Team, agent_rule, stop_claude_as_it_starts

from orchestrator import errors

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def replies_to(t: Team, request_id: str) -> list[Any]:
    return [m for m in t.messages() if m.kind == "response" and m.correlation_id == request_id]


def test_an_agent_starts_only_once_what_it_depends_on_is_ready(team: TeamFactory) -> None:
    """depends_on orders start-up: the dependent's claude is launched after its
    dependency reported ready (the supervisor's state log, in order)."""
    t = team(
        [
            {"agent": agent_rule("base"), "text": "base"},
            {"agent": agent_rule("app"), "text": "app"},
        ],
        {"app": {"depends_on": ["base"]}, "base": {}},
    )
    t.up()
    t.wait_ready("base", "app")
    lines = (t.folder / "logs" / "supervisor.jsonl").read_text().splitlines()
    states = [
        (e["agent"], e["state"])
        for e in map(json.loads, lines)
        if e.get("event") == "state" and e.get("agent") in ("base", "app")
    ]
    assert states.index(("base", "ready")) < states.index(("app", "starting")), states


def test_a_claude_that_never_finishes_starting_is_killed_and_restarted(
    team: TeamFactory,
) -> None:
    """A claude process stuck before its start-up handshake completes (SIGSTOPped as it
    launches) counts as hung after connect_timeout: it is killed, not left behind stopped,
    and a new session starts and answers."""
    t = team(
        [{"agent": agent_rule("a"), "text": "a is up"}],
        {"a": {"connect_timeout": "3s", "backoff": {"initial": "100ms", "max": "1s"}}},
    )
    t.up()
    stuck = stop_claude_as_it_starts("a", t.env["HOME"])
    t.wait_for(lambda: "connect_timeout" in t.output(), what="the connect timed out")
    t.wait_ready("a")
    assert t.agent_pid("a") != stuck
    t.wait_for(lambda: not alive(stuck), timeout=30, what="the stuck process killed")
    assert t.ask("a", "up?") == "a is up"
    # The SDK's own complaint about the killed process is a log line, not raw stderr. It is
    # written when the SDK notices the exit, which a busy machine may delay past the ask.
    t.wait_for(lambda: "library_log" in t.output(), what="the SDK's complaint, as a log line")


def test_claude_killed_mid_turn_is_restarted_resumed_and_replies_once(team: TeamFactory) -> None:
    """SIGKILL of an agent's claude process during a turn: the supervisor restarts it, the
    new session resumes the conversation (the earlier exchange is in the model's context),
    the claimed request is delivered again, and exactly one reply is produced."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "remember KIWI", "text": "noted"},
            {
                "agent": agent_rule("a"),
                "match": "slow question",
                "text": "too late",
                "delay": 30,
                "times": 1,
            },
            {"agent": agent_rule("a"), "match": "slow question", "text": "the answer"},
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "remember KIWI") == "noted"
    first_pid = t.agent_pid("a")
    assert first_pid
    request = t.request("a", "slow question")
    t.model.wait_for_request("slow question")
    os.kill(first_pid, signal.SIGKILL)
    with t.mailbox() as mb:
        reply = mb.wait_for_reply(request.id, 90)
    assert reply.body == "the answer"
    new_pid = t.wait_for(lambda: (p := t.agent_pid("a")) and p != first_pid and p, what="new pid")
    assert new_pid != first_pid
    retried = t.model.requests_matching("slow question")
    assert len(retried) == 2
    assert "remember KIWI" in str(retried[-1]["body"]["messages"]), "conversation resumed"
    t.wait_for(
        lambda: (
            t.messages(recipient="a", status="done")
            and all(m.status == "done" for m in t.messages(recipient="a"))
        ),
        what="acked",
    )
    assert len(replies_to(t, request.id)) == 1
    assert "restarting" in t.output()


def test_crash_loop_marks_agent_failed_while_the_team_runs_on(
    team: TeamFactory, tmp_path: Path
) -> None:
    """An agent whose sessions keep dying is restarted with backoff until max_restarts within
    restart_window, then marked failed; its pending requests are answered recipient_failed;
    another agent keeps answering."""
    workdir = tmp_path / "brokenwork"
    workdir.mkdir()
    t = team(
        [{"agent": agent_rule("good"), "text": "still here"}],
        {"good": {}, "broken": {"cwd": str(workdir), "max_restarts": 2, "restart_window": "60s"}},
    )
    t.up()
    t.wait_ready("good", "broken")
    shutil.rmtree(workdir)  # every new claude process for 'broken' now fails to start
    pid = t.agent_pid("broken")
    assert pid
    os.kill(pid, signal.SIGKILL)
    request = t.request("broken", "anyone?")  # queued while it crash-loops
    t.wait_for(lambda: t.states().get("broken") == "failed", timeout=60, what="broken failed")
    assert t.ask("good", "are you there?") == "still here"
    with t.mailbox() as mb, pytest.raises(errors.RecipientFailed):
        mb.wait_for_reply(request.id, 30)  # answered for it by the supervisor
    out = t.output()
    assert out.count("restarting") >= 2
    assert "failed" in out


def test_sigterm_during_a_turn_stops_gracefully_and_requeues(team: TeamFactory) -> None:
    """SIGTERM while a turn runs past the grace period: the turn is interrupted, the message
    goes back to pending (its attempt not counted), the claude processes are gone, exit 0."""
    t = team(
        [{"agent": agent_rule("a"), "match": "long job", "text": "done", "delay": 60}], {"a": {}}
    )
    t.up(extra=["--grace", "1"])
    t.wait_ready("a")
    cli_pid = t.agent_pid("a")
    assert cli_pid
    request = t.request("a", "long job")
    t.model.wait_for_request("long job")
    t.signal(signal.SIGTERM)
    assert t.wait_exit(60) == 0
    with t.mailbox() as mb:
        message = mb.get(request.id)
    assert message.status == "pending"
    assert message.attempts == 0
    assert not alive(cli_pid)
    assert "interrupting" in t.output()


def test_turn_finishing_within_grace_completes_before_exit(team: TeamFactory) -> None:
    """SIGTERM with a turn that ends inside the grace period: the reply is produced and
    acked before the supervisor exits."""
    t = team(
        [{"agent": agent_rule("a"), "match": "short job", "text": "finished", "delay": 2}],
        {"a": {}},
    )
    t.up(extra=["--grace", "20"])
    t.wait_ready("a")
    request = t.request("a", "short job")
    t.model.wait_for_request("short job")
    t.signal(signal.SIGTERM)
    assert t.wait_exit(60) == 0
    with t.mailbox() as mb:
        assert mb.get(request.id).status == "done"
        assert mb.find_reply(request.id) is not None


def test_supervisor_sigkill_then_up_again_loses_nothing(team: TeamFactory) -> None:
    """kill -9 of the supervisor mid-turn, then `up` again: the leased request and one queued
    while nothing ran are both delivered and answered exactly once, in the resumed session."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "remember KIWI", "text": "noted"},
            {"agent": agent_rule("a"), "match": "first", "text": "lost", "delay": 30, "times": 1},
            {"agent": agent_rule("a"), "match": r"(first|second)", "text": "answered"},
        ],
        {"a": {}},
    )
    proc = t.up()
    t.wait_ready("a")
    assert t.ask("a", "remember KIWI") == "noted"
    cli_pid = t.agent_pid("a")
    first = t.request("a", "first")
    t.model.wait_for_request("first")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    t.proc = None
    t.wait_for(
        lambda: cli_pid is None or not alive(cli_pid),
        timeout=30,
        what="orphaned claude exits when its supervisor is gone",
    )
    second = t.request("a", "second")
    t.up()
    with t.mailbox() as mb:
        # Both are pending at restart, so they arrive together in one turn whose final
        # text answers each request.
        assert mb.wait_for_reply(first.id, 90).body == "answered"
        assert mb.wait_for_reply(second.id, 90).body == "answered"
    assert len(replies_to(t, first.id)) == 1
    assert len(replies_to(t, second.id)) == 1
    with t.mailbox() as mb:
        # The delivery the kill cut short counts, as a dying session's does: a message the
        # supervisor dies on every time ends dead after its max attempts.
        assert (mb.get(first.id).attempts, mb.get(second.id).attempts) == (2, 1)
    after = t.model.requests_matching("second")
    assert "remember KIWI" in str(after[-1]["body"]["messages"]), "conversation resumed"


def test_second_up_is_refused_while_a_supervisor_runs(team: TeamFactory) -> None:
    """Two supervisors on one database would double-deliver: the second `up` exits 1 and says
    which pid holds the team."""
    t = team([{"text": "hi"}], {"a": {}})
    proc = t.up()
    t.wait_ready("a")
    second = t.octy("up", "-f", str(t.roster_path), check=False)
    assert second.returncode == 1
    assert f"pid {proc.pid}" in second.stderr


def test_up_without_credentials_points_at_the_demo(tmp_path: Path) -> None:
    """No API key, no login: `up` says so plainly and names the offline demo, instead of
    letting every agent crash-loop."""
    (tmp_path / "home").mkdir()
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: hi\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE"))}
    env["HOME"] = str(tmp_path / "home")
    done = octy("up", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "no Claude credentials" in done.stderr
    assert "octy-orchestrate demo" in done.stderr


def test_a_turn_silent_past_turn_timeout_restarts_the_session(team: TeamFactory) -> None:
    """A turn with no output for turn_timeout counts as hung: the session is restarted and
    the message delivered again, then answered once."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "hang", "text": "never", "delay": 60, "times": 1},
            {"agent": agent_rule("a"), "match": "hang", "text": "unstuck"},
        ],
        {"a": {"turn_timeout": "2s"}},
    )
    t.up()
    t.wait_ready("a")
    first_pid = t.agent_pid("a")
    request = t.request("a", "hang")
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 90).body == "unstuck"
    assert t.agent_pid("a") != first_pid
    assert "turn_timeout" in t.output()
    assert len(replies_to(t, request.id)) == 1


def test_second_sigint_forces_the_stop(team: TeamFactory) -> None:
    """Ctrl-C twice: the second one does not wait for the grace period; the turn's message
    is still returned to pending and the claude process is gone."""
    t = team(
        [{"agent": agent_rule("a"), "match": "long job", "text": "done", "delay": 60}], {"a": {}}
    )
    t.up(extra=["--grace", "120"])
    t.wait_ready("a")
    cli_pid = t.agent_pid("a")
    assert cli_pid
    request = t.request("a", "long job")
    t.model.wait_for_request("long job")
    t.signal(signal.SIGINT)
    t.wait_for(lambda: "stopping" in t.output(), what="graceful stop begun")
    t.signal(signal.SIGINT)
    assert t.wait_exit(60) == 0  # well inside the 120 s grace
    assert "forced_stop" in t.output()
    with t.mailbox() as mb:
        assert mb.get(request.id).status == "pending"
    assert not alive(cli_pid)


def test_up_on_a_corrupt_database_says_what_to_do(tmp_path: Path) -> None:
    """A file at the queue's path that is not SQLite: `up` exits 1 naming the file and the
    fix, and leaves the file as it was."""
    (tmp_path / "agents.yaml").write_text("agents:\n  a:\n    prompt: hi\n", encoding="utf-8")
    (tmp_path / "queue").mkdir()
    db = tmp_path / "queue" / "team.db"
    db.write_bytes(b"not a database at all")
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test-not-used", "HOME": str(tmp_path)}
    done = octy("up", "--no-model-check", cwd=tmp_path, env=env)  # no model here: offline
    assert done.returncode == 1
    assert "not a usable SQLite database" in done.stderr
    assert "move the file aside" in done.stderr
    assert db.read_bytes() == b"not a database at all"


def test_up_with_a_broken_roster_lists_every_problem_and_starts_nothing(tmp_path: Path) -> None:
    """`up` validates the whole file first: every problem is printed with file, line, key and
    the fix, exit 1, and no database or log is created."""
    (tmp_path / "agents.yaml").write_text(
        "agents:\n"
        "  a:\n"
        "    prompt: hi\n"
        "    modle: sonnet\n"
        "    depends_on: [b]\n"
        "  b:\n"
        "    prompt_file: prompts/missing.md\n"
        "    depends_on: [a]\n",
        encoding="utf-8",
    )
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test-not-used", "HOME": str(tmp_path)}
    done = octy("up", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "agents.yaml:4: key 'agents.a.modle': unknown key 'modle'; did you mean 'model'?" in (
        done.stderr
    )
    assert "agents.yaml:7: key 'agents.b.prompt_file': prompt file not found" in done.stderr
    assert "dependency cycle" in done.stderr
    assert not (tmp_path / "queue").exists()
    assert not (tmp_path / "logs").exists()
