"""How an approver's answer reads, and that it is written for the approval: only a leading
"approve"/"approved" grants, and an approval request is delivered alone, so an approver
agent's final text written for another message never answers it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule
from test_prompts import message

from orchestrator.approvals import answer_of
from orchestrator.batching import batch_of
from orchestrator.prompts import APPROVAL_GRAMMAR, frame

TeamFactory = Callable[..., Team]


def reply_saying(body: Any) -> Any:
    return message(body, sender="reviewer", kind="response", id="r-1")


@pytest.mark.parametrize(
    ("text", "granted"),
    [
        ("approve", True),
        ("Approved!", True),
        ("approve, the tests pass", True),
        ("  APPROVED: fine", True),
        ("approve\nlooks good", True),
        ("OK, I checked: deny, the tests fail", False),
        ("Yes, but not now. deny", False),
        ("Allow me to explain why not: deny", False),
        ("approve? no.", False),
        ("approvement of nothing", False),
        ("granted", False),
        ("yes", False),
        ("**approve**", False),
        ("I approve", False),
        ("", False),
    ],
)
def test_only_a_leading_approve_grants(text: str, granted: bool) -> None:
    ok, reason = answer_of(reply_saying(text))
    assert ok is granted
    if not granted:  # the text is the reason given
        assert reason == f"denied by reviewer: {text or '(no reason given)'}"


def test_a_json_body_with_approve_in_it_is_not_a_grant() -> None:
    assert answer_of(reply_saying(["approve"]))[0] is False
    assert answer_of(reply_saying({"approval": "granted"}))[0] is True  # `approve ID`


def approval(id: str) -> Any:
    body = {"approval": {"key": "k", "tool": "Bash"}, "text": "alpha asks to run Bash"}
    return message(body, sender="alpha", kind="request", id=id)


def test_an_approval_request_is_delivered_alone() -> None:
    question = message("is the build green?", sender="user", kind="request", id="q-1")
    note = message("fyi", id="n-1")
    ask = approval("a-1")
    assert batch_of([question, ask, note]) == [question]  # the approval waits its turn
    assert batch_of([ask, question, note]) == [ask]
    assert batch_of([question, note]) == [question, note]
    turn = frame([ask])
    assert "This is an approval request" in turn
    assert APPROVAL_GRAMMAR in turn


@pytest.mark.cli
def test_an_approver_busy_with_other_work_answers_the_approval_for_itself(
    team: TeamFactory, tmp_path: Path
) -> None:
    """The reviewer is busy while alpha's approval and a user's question queue up for it:
    its "Yes, the build is green." answers the question, not the approval, which gets a
    turn of its own and is denied in the reviewer's own words."""
    a, r = agent_rule("alpha"), agent_rule("reviewer")
    t = team(
        [
            {"agent": a, "tool_result": r"DEPLOYED-(\w+)", "text": "done {1}"},
            {"agent": a, "tool_result": r"(?s)^(.+)$", "text": "REFUSED {1}"},
            {
                "agent": a,
                "match": r"deploy (\w+)",
                "tool_use": {"name": "Bash", "input": {"command": "echo DEPLOYED-{1}"}},
            },
            {"agent": r, "tool_result": "went", "text": "finished"},
            {
                "agent": r,
                "match": "slow job",
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": "while [ ! -e go ]; do sleep 0.05; done; echo went"},
                },
            },
            {"agent": r, "match": "build green", "text": "Yes, the build is green."},
            {"agent": r, "text": "deny: not reviewed"},
        ],
        {"alpha": {"approve": ["Bash"], "approver": "reviewer"}, "reviewer": {"tools": ["Bash"]}},
    )
    t.up()
    t.wait_ready("alpha", "reviewer")
    busy = t.request("reviewer", "slow job")
    t.wait_for(lambda: t.states().get("reviewer") == "busy", 60, "the reviewer busy")
    deploy = t.request("alpha", "deploy prod")
    (asked,) = t.wait_for(
        lambda: [m for m in t.messages(sender="alpha") if m.kind == "request"], 60, "the approval"
    )
    assert asked.body["text"].endswith(APPROVAL_GRAMMAR)  # the approver is told how to answer
    question = t.request("reviewer", "is the build green?")
    (tmp_path / "go").touch()
    with t.mailbox() as mb:
        assert mb.wait_for_reply(busy.id, 60).body == "finished"
        assert mb.wait_for_reply(question.id, 60).body == "Yes, the build is green."
        answer = mb.wait_for_reply(deploy.id, 60).body
    assert answer.startswith("REFUSED")
    assert "denied by reviewer: deny: not reviewed" in answer


def test_an_input_is_shortened_only_when_a_body_could_not_carry_it() -> None:
    from orchestrator.approvals import shown_input
    from orchestrator.mailbox.model import encode_body

    edits = {"file_path": "a.py", "edits": [{"old_string": "a", "new_string": "b"}] * 60}
    assert shown_input(edits) == (edits, False)
    deep: dict[str, Any] = {"x": 1}
    for _ in range(150):
        deep = {"x": deep}
    shown, shortened = shown_input(deep)
    assert shortened
    assert shown["x"].startswith('{"x": {"x"')  # too deep: the JSON text of the rest
    encode_body({"approval": {"input": shown}})  # the queue takes it
    many = {f"k{i}": "y" * 30_000 for i in range(40)}  # 1.2 MB of short-enough strings
    shown, shortened = shown_input(many)
    assert shortened
    encode_body({"approval": {"input": shown}})
