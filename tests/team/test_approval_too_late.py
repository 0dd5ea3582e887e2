"""An approval whose time ran out is over for both sides: the agent is told it was not
approved in time, nothing stays pending, and the operator's late ``approve`` says it came
too late instead of granting into nothing.

Measured with the bundled CLI (2.1.332): it waits for the PreToolUse hook exactly the
matcher's timeout (``approval_timeout`` + 60 s here; a hook given 2 s was cancelled at
1.995 s; hours of approval_timeout, up to the roster's ten years, were waited out), then
cancels the callback, and the model reads "PreToolUse hook did not respond before its
timeout (host client may be unreachable)". The approval request was left pending, and a
later ``approve`` of it was accepted: used by nobody, or by the same call redelivered
long after."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage
from cli_runner import octy
from polling import until

from orchestrator import approvals, errors, policy
from orchestrator.approval_wait import Approvals
from orchestrator.mailbox import USER, AsyncMailbox, Mailbox
from orchestrator.policy import Policy
from orchestrator.roster import parse_roster
from orchestrator.scripted_model import tool_results


@pytest.mark.cli
async def test_a_wait_the_cli_would_cut_short_ends_first_denied_and_not_left_pending(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook's check took long before the approval wait (git state read where a git
    waits out its 5 s timeout, a slow queue): the request's own approval_timeout now ends
    after the CLI gives up on the hook. Here the CLI's 60 s are 1 s (and the margin for
    the answer 0.5 s), the check 2 s, the approval_timeout 3 s. Before, the CLI cut the
    wait: the model read that the hook did not respond, and the request stayed pending
    (a late approve was accepted)."""
    monkeypatch.setattr(policy, "HOOK_SLACK_S", 1.0)
    monkeypatch.setattr(policy, "HOOK_MARGIN_S", 0.5)
    checked = Policy._asks

    def slow_check(self: Policy, *args: Any) -> Any:
        time.sleep(2.0)  # the check runs in a thread, as git's reads do
        return checked(self, *args)

    monkeypatch.setattr(Policy, "_asks", slow_check)
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": "touch ran-it"}}},
        ]
    )
    roster = parse_roster(
        'agents:\n  a: {prompt: p, tools: [Bash], approve: ["Bash(touch:*)"], '
        "approval_timeout: 3s}\n",
        tmp_path / "agents.yaml",
        {},
    )
    work = tmp_path / "work"
    work.mkdir()
    db = tmp_path / "team.db"

    async def on_event(*_args: Any) -> None:
        pass

    async with await AsyncMailbox(db).open() as mailbox:
        waits = Approvals("a", mailbox, lambda: (USER, 3.0), lambda: None, on_event)
        hook = Policy("a", lambda: roster, lambda: work, waits.decide)
        options = claude_options(model, cwd=work, hooks=hook.hooks(), allowed_tools=["Bash"])
        async with ClaudeSDKClient(options) as client:
            await client.query("GO")
            async for message in client.receive_response():
                if isinstance(message, ResultMessage):
                    break
    (results,) = [tool_results(r) for r in model.requests_matching(tool_result=r"(?s).")]
    said = str(results[0]["content"])
    assert "not approved in time" in said, said
    assert not (work / "ran-it").exists()
    with Mailbox(db) as mb:
        (asked,) = [m for m in mb.list(sender="a", limit=10) if m.kind == "request"]
        assert mb.find_reply(asked.id) is not None, "the request was left pending"
    with pytest.raises(errors.ApprovalNotFound, match="came too late"):
        approvals.answer(db, asked.id, granted=True)


def test_an_approve_after_the_time_ran_out_says_it_came_too_late(tmp_path: Path) -> None:
    """The agent's wait ended without answering the request (the CLI gave up on its hook,
    the supervisor was stopped): past its approval_timeout `approve` refuses, saying it
    came too late, and ends the request. Before, it was granted (exit 0), for nobody."""
    db = tmp_path / "team.db"
    with Mailbox(db) as mb:
        body = {"approval": {"key": "k", "agent": "a", "tool": "Bash", "timeout_s": 0.2}}
        asked = mb.request("a", USER, {**body, "text": "'a' asks to run Bash"})
    until(lambda: approvals.pending(db) == [], "the approval's time to run out")
    late = octy("approve", asked.id, "--db", str(db), cwd=tmp_path)
    assert late.returncode == 3, late
    assert "came too late" in late.stderr
    assert "no answer from the approver within 0.2s: denied" in late.stderr
    with Mailbox(db) as mb:
        reply = mb.find_reply(asked.id)
        assert reply is not None
        assert reply.error == errors.RequestTimeout.code
    again = octy("approve", asked.id, "--db", str(db), cwd=tmp_path)
    assert (again.returncode, "came too late" in again.stderr) == (3, True), again
