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

import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage
from cli_runner import octy
from polling import until

from orchestrator import approval_wait, approvals, errors, policy, write_hold
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

    async with await AsyncMailbox(db).open() as mailbox:
        waits = Approvals("a", mailbox, lambda: (USER, 3.0), lambda: None, _no_event)
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


BASH: Any = {"tool_name": "Bash", "tool_input": {"command": "touch x"}}


async def test_an_approved_command_held_until_its_hook_must_answer_keeps_its_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approved, then kept back by other agents' writes (back to back) until its hook had
    to answer (approval_timeout + 55 s from the call; here the CLI's 60 s are 1 s and the
    margin 0.5 s): refused, as it must be, but the approval stands, and the same call
    again runs on it without asking. Before, its use had been recorded: the approval was
    thrown away, and the agent asked, and the operator had to approve, again."""
    monkeypatch.setattr(policy, "HOOK_SLACK_S", 1.0)
    monkeypatch.setattr(policy, "HOOK_MARGIN_S", 0.5)
    monkeypatch.setattr(write_hold, "HOLD_MAX_S", 0.0)
    await _held_then_called_again(tmp_path, BASH, BASH)


async def test_a_grant_given_after_the_time_ran_out_is_not_used_by_the_call_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor was stopped while a call waited for approval, so nobody ended the
    request at its approval_timeout; the operator answered past it with `reply ID
    approve` (the way a script or an approver answers; on a NATS team the only one, as
    `approve` reads a SQLite file), which checks no time. The turn, redelivered, makes
    the same call: it is denied, saying the answer came too late, as README promises
    ("no late grant is used"). Before, the late grant ran the command. (The slack for a
    grant `approve` checked in time and wrote just after, 5 s, is none here.)"""
    monkeypatch.setattr(approval_wait, "LATE_SLACK_S", 0.0)
    db = tmp_path / "team.db"
    tool_input = {"command": "touch x"}
    with Mailbox(db) as mb:
        mb.register("a")
        body = {
            "approval": {
                "key": approvals.key_of("a", "Bash", tool_input, None),
                "agent": "a",
                "tool": "Bash",
                "input": tool_input,
                "timeout_s": 0.2,
            },
            "text": "'a' asks to run Bash",
        }
        asked = mb.request("a", USER, body)
    until(lambda: approvals.pending(db) == [], "the approval's time to run out")
    octy("reply", asked.id, "approve", "--db", str(db), cwd=tmp_path, check=True)

    async with await AsyncMailbox(db).open() as mailbox:
        waits = Approvals("a", mailbox, lambda: (USER, 0.2), lambda: None, _no_event)
        granted, reason = await waits.decide("Bash", tool_input, None)
    assert not granted, reason
    assert "too late" in reason, reason


def test_a_late_approve_of_a_wait_its_hook_cut_short_says_when_it_ended(tmp_path: Path) -> None:
    """The agent's wait ended before the request's approval_timeout (its check had to
    answer first: the request is answered `timeout` then). `approve` says the wait ended
    then; before, it said the approval_timeout "ran out at" a time still to come."""
    db = tmp_path / "team.db"
    with Mailbox(db) as mb:
        body = {"approval": {"key": "k", "agent": "a", "tool": "Bash", "timeout_s": 3600}}
        asked = mb.request("a", USER, {**body, "text": "'a' asks to run Bash"})
        why = "not approved in time: no answer before this call's check had to answer"
        assert mb.fail_request(asked.id, errors.RequestTimeout.code, why)
    late = octy("approve", asked.id, "--db", str(db), cwd=tmp_path)
    assert late.returncode == 3, late
    assert "came too late: its wait ended at" in late.stderr, late.stderr
    assert "before its 3600s approval_timeout ran out" in late.stderr, late.stderr


@pytest.mark.cli
async def test_an_approval_given_near_the_hooks_end_keeps_it_when_writes_hold_the_command(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approved with less of its hook's time left than a write may hold a command (10 s;
    here the CLI's 60 s are 2 s, the margin 1 s, so 2 s is left after a prompt approval),
    then kept back by other agents' writes: it is refused before the CLI gives up on the
    hook, its approval standing. Before, the command waited the 10 s a write may take,
    past the hook's time: the CLI cancelled the hook (the model read that it did not
    respond), and the grant, its use recorded, was lost."""
    monkeypatch.setattr(policy, "HOOK_SLACK_S", 2.0)
    monkeypatch.setattr(policy, "HOOK_MARGIN_S", 1.0)
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": "touch ran-it"}}},
        ]
    )
    roster = parse_roster(
        'agents:\n  a: {prompt: p, tools: [Bash], approve: ["Bash(touch:*)"], '
        "approval_timeout: 1s}\n",
        tmp_path / "agents.yaml",
        {},
    )
    work = tmp_path / "work"
    work.mkdir()
    db = tmp_path / "team.db"
    hold = write_hold.Hold()

    asked, operator_approves = _operator(db, "a")

    async with await AsyncMailbox(db).open() as mailbox:
        await mailbox.register("a")  # its row records the grants used
        waits = Approvals("a", mailbox, lambda: (USER, 1.0), lambda: None, _no_event)
        hook = Policy("a", lambda: roster, lambda: work, waits.decide, hold=hold)
        options = claude_options(model, cwd=work, hooks=hook.hooks(), allowed_tools=["Bash"])
        hold.hold("k", [], max_s=600, agents={"a": 2}, writer="w")  # writes back to back
        try:
            async with anyio.create_task_group() as tg, ClaudeSDKClient(options) as client:
                tg.start_soon(operator_approves)
                await client.query("GO")
                async for message in client.receive_response():
                    if isinstance(message, ResultMessage):
                        break
        finally:
            hold.release_all()
        row = await mailbox.agent("a")
    (results,) = [tool_results(r) for r in model.requests_matching(tool_result=r"(?s).")]
    said = str(results[0]["content"])
    assert "approval stands" in said, said
    assert re.search(r"for \d\.\d s, until its check had to answer", said), said  # not "0 s"
    assert not (work / "ran-it").exists()
    (request,) = asked()
    assert row is not None
    assert request.id not in row.meta.get(approval_wait.USED_META, []), "the grant was lost"


async def test_a_resumed_wait_ends_when_its_request_does(tmp_path: Path) -> None:
    """A call redelivered after its agent's restart resumes the approval it asked (same
    agent, tool, input, cause), asked with an approval_timeout the roster has changed
    since (a reload restarted the agent). The wait ends when the request's own timeout
    does, as `approvals` (which stops listing it) and `approve` (which says it came too
    late) read it. Before, it waited the roster's new timeout (an hour here), blocked,
    on a request the operator could no longer see or answer."""
    db = tmp_path / "team.db"
    tool_input = {"command": "touch x"}
    with Mailbox(db) as mb:
        mb.register("a")
        body = {
            "approval": {
                "key": approvals.key_of("a", "Bash", tool_input, None),
                "agent": "a",
                "tool": "Bash",
                "input": tool_input,
                "timeout_s": 0.5,
            },
            "text": "'a' asks to run Bash",
        }
        asked = mb.request("a", USER, body)

    async with await AsyncMailbox(db).open() as mailbox:
        waits = Approvals("a", mailbox, lambda: (USER, 3600.0), lambda: None, _no_event)
        with anyio.fail_after(60):  # a guard, not a measure: before, it waited an hour
            granted, reason = await waits.decide("Bash", tool_input, None)
    assert not granted, reason
    assert "within 0.5s" in reason, reason
    assert approvals.pending(db) == []
    with Mailbox(db) as mb:
        reply = mb.find_reply(asked.id)
        assert reply is not None
        assert reply.error == errors.RequestTimeout.code


async def test_an_approval_kept_is_used_by_the_same_command_described_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal of an approved command held too long asks the model to make the same
    call again; a model writes the Bash call's `description` (a label shown to people,
    which runs nothing) anew each time. The same command under another description runs
    on the approval kept. Before, it was another call: the operator was asked again and
    the approval kept went unused."""
    monkeypatch.setattr(policy, "HOOK_SLACK_S", 1.0)
    monkeypatch.setattr(policy, "HOOK_MARGIN_S", 0.5)

    def call(description: str) -> Any:
        return {
            "tool_name": "Bash",
            "tool_input": {"command": "touch x", "description": description},
        }

    await _held_then_called_again(tmp_path, call("Create file x"), call("Touch the file x"))


async def _held_then_called_again(tmp_path: Path, first: Any, second: Any) -> None:
    """Agent `s` (Bash(touch:*) to approve, approval_timeout 2 s) makes the call ``first``
    while other agents' writes hold it back to back; the operator approves; the hook,
    which must answer by then, refuses it saying the approval stands. ``second``, made
    next, runs on that approval, and the operator was asked once."""
    (tmp_path / "s").mkdir()
    roster = parse_roster(
        'agents:\n  s: {prompt: p, tools: [Bash], cwd: s, approve: ["Bash(touch:*)"], '
        "approval_timeout: 2s}\n",
        tmp_path / "agents.yaml",
        {},
    )
    db = tmp_path / "team.db"
    hold = write_hold.Hold()

    asked, operator_approves = _operator(db, "s")

    async with await AsyncMailbox(db).open() as mailbox:
        await mailbox.register("s")  # its row records the grants used
        waits = Approvals("s", mailbox, lambda: (USER, 2.0), lambda: None, _no_event)
        hook = Policy("s", lambda: roster, lambda: tmp_path / "s", waits.decide, hold=hold)
        hold.hold("k", [], max_s=600, agents={"s": 2}, writer="w")  # writes back to back
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(operator_approves)
                refused = await hook.pre_tool_use(first, "t1", {"signal": None})
        finally:
            hold.release_all()
        said = refused["hookSpecificOutput"]["permissionDecisionReason"]
        assert refused["hookSpecificOutput"]["permissionDecision"] == "deny"
        assert "approval stands" in said, said
        with anyio.fail_after(30):  # a guard, not a measure: asking again would wait 2 s
            again = await hook.pre_tool_use(second, "t2", {"signal": None})
    assert again["hookSpecificOutput"]["permissionDecision"] == "allow", again
    assert len(asked()) == 1, "the same command asked the operator again"


async def _no_event(*_args: Any) -> None:
    pass


def _operator(
    db: Path, agent: str
) -> tuple[Callable[[], list[Any]], Callable[[], Awaitable[None]]]:
    """What the operator sees (``agent``'s approval requests in ``db``), and the operator
    approving the first as soon as it is there."""

    def asked() -> list[Any]:
        with Mailbox(db) as mb:
            return [m for m in mb.list(sender=agent, limit=10) if m.kind == "request"]

    async def operator_approves() -> None:
        while not (rows := await anyio.to_thread.run_sync(asked)):  # noqa: ASYNC110
            await anyio.sleep(0.01)
        await anyio.to_thread.run_sync(lambda: approvals.answer(db, rows[0].id, granted=True))

    return asked, operator_approves
