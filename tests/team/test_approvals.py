"""Approvals through the queue (`approve:`): a matching call waits for the approver; approve,
deny, timeout, and a pending approval across a supervisor SIGKILL and restart (issue 11).
Real CLI, scripted model, the operator's verbs run as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runner import octy
from team_harness import Team, agent_rule

from orchestrator.approve_rules import rule_matches

TeamFactory = Callable[..., Team]


def pending(t: Team) -> list[dict[str, Any]]:
    out = octy("approvals", "--json", cwd=t.folder)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)["approvals"]
    return rows


@pytest.mark.parametrize(
    ("rule", "tool", "tool_input", "expected"),
    [
        ("Bash(git push:*)", "Bash", {"command": "git push origin main"}, True),
        ("Bash(git push:*)", "Bash", {"command": "make && git push"}, True),
        ("Bash(git push:*)", "Bash", {"command": "git pushy"}, False),
        ("Bash(git push:*)", "Bash", {"command": "git status"}, False),
        ("Bash(npm run *)", "Bash", {"command": "npm run build"}, True),
        ("Write", "Write", {"file_path": "x", "content": ""}, True),
        ("Write(src/**)", "Write", {"file_path": "src/a/b.py", "content": ""}, True),
        ("Write(src/**)", "Write", {"file_path": "docs/a.md", "content": ""}, False),
        ("mcp__octy__send", "mcp__octy__send", {}, True),
        ("mcp__octy", "mcp__octy__ask", {}, True),
        ("mcp__octy", "mcp__octyx__ask", {}, False),
        ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://example.com/a"}, True),
    ],
)
def test_rules_in_the_clis_syntax(
    rule: str, tool: str, tool_input: dict[str, Any], expected: bool, tmp_path: Path
) -> None:
    """`approve:` rules read as the CLI's permission rules; a compound shell line is
    checked part by part."""
    assert rule_matches(rule, tool, tool_input, tmp_path) is expected


def deploy_rules(agent: str) -> list[dict[str, Any]]:
    return [
        {"agent": agent_rule(agent), "tool_result": r"DEPLOYED-(\w+)", "text": "done {1}"},
        {"agent": agent_rule(agent), "tool_result": r"(?s)^(.+)$", "text": "REFUSED {1}"},
        {
            "agent": agent_rule(agent),
            "match": r"deploy (\w+)",
            "tool_use": {"name": "Bash", "input": {"command": "echo DEPLOYED-{1}"}},
        },
    ]


def wait_pending(t: Team, n: int = 1) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = t.wait_for(
        lambda: (r := pending(t)) and len(r) >= n and r, 60, "a pending approval"
    )
    return rows


@pytest.mark.cli
def test_approve_deny_and_timeout(team: TeamFactory, tmp_path: Path) -> None:
    """A call matching `approve:` waits (state blocked (approval) in ps) until `approve ID`
    lets it run; `deny ID --reason` refuses it with the reason; with no answer within
    approval_timeout it is denied, saying so. Logs and trace show the approval."""
    t = team(
        [*deploy_rules("alpha"), *deploy_rules("beta")],
        {
            "alpha": {"tools": ["Bash"], "approve": ["Bash(echo:*)"]},
            "beta": {"tools": ["Bash"], "approve": ["Bash"], "approval_timeout": "2s"},
        },
    )
    t.up()
    t.wait_ready("alpha", "beta")
    first = t.request("alpha", "deploy one")
    (row,) = wait_pending(t)
    assert (row["agent"], row["approver"], row["tool"]) == ("alpha", "user", "Bash")
    assert row["input"] == {"command": "echo DEPLOYED-one"}
    t.wait_for(lambda: t.states().get("alpha") == "blocked", 30, "alpha blocked")
    assert "blocked (approval)" in octy("ps", cwd=tmp_path).stdout
    assert "echo DEPLOYED-one" in octy("approvals", cwd=tmp_path).stdout
    assert octy("approve", row["id"], cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        assert mb.wait_for_reply(first.id, 60).body == "done one"
    t.wait_for(lambda: t.states().get("alpha") == "ready", 30, "alpha ready")
    again = octy("approve", row["id"], cwd=tmp_path)
    assert again.returncode == 3
    assert "already answered" in again.stderr

    second = t.request("alpha", "deploy two")
    (row,) = wait_pending(t)
    assert octy("deny", row["id"], "--reason", "not on a Friday", cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        answer = mb.wait_for_reply(second.id, 60).body
    assert answer.startswith("REFUSED")
    assert "denied by user: not on a Friday" in answer

    third = t.request("beta", "deploy three")
    with t.mailbox() as mb:
        answer = mb.wait_for_reply(third.id, 60).body
    assert "no answer from the approver within 2s: denied" in answer
    assert pending(t) == []
    dead = [m for m in t.messages(sender="beta") if m.kind == "request"]
    assert [(m.status, m.error) for m in dead] == [("dead", "timeout")]

    events = [
        json.loads(line)["event"]
        for line in (tmp_path / "logs" / "alpha.jsonl").read_text().splitlines()
    ]
    assert events.count("approval_requested") == 2
    assert events.count("approval_granted") == 1
    assert events.count("approval_denied") == 1
    trace = octy("trace", first.id, cwd=tmp_path)
    assert "approval_requested" in trace.stdout
    assert "approval_granted" in trace.stdout


@pytest.mark.cli
def test_pending_approval_survives_supervisor_sigkill(team: TeamFactory, tmp_path: Path) -> None:
    """SIGKILL the supervisor while a call waits for approval: the approval stays pending in
    the queue; after `up` again the redelivered turn waits on the same approval (not a
    second one), and approving it completes the original request, once."""
    t = team(deploy_rules("alpha"), {"alpha": {"tools": ["Bash"], "approve": ["Bash"]}})
    t.up()
    t.wait_ready("alpha")
    request = t.request("alpha", "deploy four")
    (row,) = wait_pending(t)
    old_cli = t.agent_pid("alpha")
    assert t.proc is not None
    os.kill(t.proc.pid, signal.SIGKILL)
    t.proc.wait(30)
    assert old_cli
    deadline = time.monotonic() + 30
    while _alive(old_cli):  # the parent-death signal ends it
        assert time.monotonic() < deadline, "the old claude process outlived its supervisor"
        time.sleep(0.05)
    assert [r["id"] for r in pending(t)] == [row["id"]]  # still pending, with nobody running

    t.up()
    t.wait_for(lambda: t.states().get("alpha") == "blocked", 90, "alpha blocked again")
    assert [r["id"] for r in pending(t)] == [row["id"]]
    assert octy("approve", row["id"], cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 60).body == "done four"
    asked = [m for m in t.messages(sender="alpha") if m.kind == "request"]
    assert len(asked) == 1
    assert len([m for m in t.messages() if m.correlation_id == request.id]) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.cli
def test_an_agent_as_approver_decides_and_a_yes_runs_a_tool_not_in_tools(
    team: TeamFactory, tmp_path: Path
) -> None:
    """approver: reviewer. The approval reaches the reviewer agent as a normal request; its
    answer "approve…" lets the call run (Bash is not in alpha's tools: the yes is what
    allows it), "deny: …" refuses it with the reviewer's words. Nobody else may answer."""
    t = team(
        [
            *deploy_rules("alpha"),
            {"agent": agent_rule("reviewer"), "match": "DEPLOYED-good", "text": "approve, fine"},
            {"agent": agent_rule("reviewer"), "match": "DEPLOYED-bad", "text": "deny: too risky"},
        ],
        {
            "alpha": {"approve": ["Bash"], "approver": "reviewer"},
            "reviewer": {},
        },
    )
    t.up()
    t.wait_ready("alpha", "reviewer")
    assert t.ask("alpha", "deploy good") == "done good"
    answer = t.ask("alpha", "deploy bad")
    assert answer.startswith("REFUSED")
    assert "denied by reviewer: deny: too risky" in answer
    asked = [m for m in t.messages(sender="alpha") if m.kind == "request"]
    assert [m.recipient for m in asked] == ["reviewer", "reviewer"]


def test_only_the_approver_or_the_user_may_answer(tmp_path: Path) -> None:
    """`approve ID --as NAME` from someone who is not the approver is refused; a reply from
    a third party counts as a denial when the agent reads it."""
    from orchestrator.approvals import answer, answer_of
    from orchestrator.errors import ApprovalNotFound
    from orchestrator.mailbox import Mailbox

    db = tmp_path / "team.db"
    with Mailbox(db) as mb:
        for name in ("alpha", "reviewer", "mallory"):
            mb.register(name, "")
        request = mb.request("alpha", "reviewer", {"approval": {"key": "k", "tool": "Bash"}})
    with pytest.raises(ApprovalNotFound, match="cannot answer"):
        answer(db, request.id, granted=True, sender="mallory")
    with pytest.raises(ApprovalNotFound, match="cannot answer"):
        answer(db, request.id, granted=True, sender="alpha")
    with Mailbox(db) as mb:
        forged = mb.reply(request.id, "mallory", {"approval": "granted"})
    assert answer_of(forged, request) == (
        False,
        "denied: answered by 'mallory', who is not the approver ('reviewer')",
    )


@pytest.mark.cli
def test_the_same_call_again_in_one_turn_asks_again(team: TeamFactory, tmp_path: Path) -> None:
    """Denied, the model tries the very same call again in the same turn: that is a new
    question (a new approval), not the old denial replayed; approving it runs the call."""
    t = team(
        [
            {"agent": agent_rule("alpha"), "tool_result": r"DEPLOYED-(\w+)", "text": "done {1}"},
            {
                "agent": agent_rule("alpha"),
                "tool_result": "denied by user",
                "times": 1,
                "tool_use": {"name": "Bash", "input": {"command": "echo DEPLOYED-again"}},
            },
            *deploy_rules("alpha")[1:],
        ],
        {"alpha": {"tools": ["Bash"], "approve": ["Bash"]}},
    )
    t.up()
    t.wait_ready("alpha")
    request = t.request("alpha", "deploy again")
    (first,) = wait_pending(t)
    assert octy("deny", first["id"], cwd=tmp_path).returncode == 0
    second = t.wait_for(
        lambda: [r for r in pending(t) if r["id"] != first["id"]], 60, "a second approval"
    )[0]
    assert octy("approve", second["id"], cwd=tmp_path).returncode == 0
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 60).body == "done again"
