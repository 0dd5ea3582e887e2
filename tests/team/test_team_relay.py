"""Peer-to-peer relay between real claude sessions (real CLI, scripted model).

Each test starts `octy-orchestrate up` as a subprocess on a roster in tmp_path
and talks to the team through its queue database, as a script would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator.mailbox import USER

pytestmark = [pytest.mark.cli]

TeamFactory = Callable[..., Team]


def ask_rule(agent: str, pattern: str, to: str, message: str) -> dict[str, Any]:
    return {
        "agent": agent_rule(agent),
        "match": pattern,
        "tool_use": {"name": "mcp__octy__ask", "input": {"to": to, "message": message}},
    }


def text_rule(
    agent: str, text: str, *, match: str | None = None, tool_result: str | None = None, **extra: Any
) -> dict[str, Any]:
    rule: dict[str, Any] = {"agent": agent_rule(agent), "text": text, **extra}
    if match:
        rule["match"] = match
    if tool_result:
        rule["tool_result"] = tool_result
    return rule


def replies_to(t: Team, request_id: str) -> list[Any]:
    return [m for m in t.messages() if m.kind == "response" and m.correlation_id == request_id]


def test_ask_returns_the_peers_answer_inside_the_same_turn(team: TeamFactory) -> None:
    """alpha asks beta with the ask tool; beta's answer is the tool result, and alpha's
    final text (built from it) is the reply to the user's request."""
    t = team(
        [
            text_rule("alpha", "alpha heard: {1}", tool_result=r"(BETA-\w+)"),
            ask_rule("alpha", r"capital of (\w+)", "beta", "what is the capital of {1}?"),
            text_rule("beta", "BETA-{1}", match=r"capital of (\w+)\?"),
        ],
        {"alpha": {}, "beta": {}},
    )
    t.up()
    t.wait_ready("alpha", "beta")
    assert t.ask("alpha", "what is the capital of France") == "alpha heard: BETA-France"
    asks = [m for m in t.messages(sender="alpha") if m.kind == "request"]
    assert [(m.recipient, m.status) for m in asks] == [("beta", "done")]
    assert asks[0].cause_id is not None  # the ask records the delivery that caused it


def test_chain_of_asks_a_to_b_to_c(team: TeamFactory) -> None:
    """A asks B, B asks C while A waits: the answer travels back down the chain."""
    t = team(
        [
            text_rule("a", "A got [{1}]", tool_result=r"(B got \[.*\])"),
            ask_rule("a", r"start (\w+)", "b", "relay {1}"),
            text_rule("b", "B got [{1}]", tool_result=r"(C says \w+)"),
            ask_rule("b", r"relay (\w+)", "c", "finish {1}"),
            text_rule("c", "C says {1}", match=r"finish (\w+)"),
        ],
        {"a": {}, "b": {}, "c": {}},
    )
    t.up()
    t.wait_ready("a", "b", "c")
    assert t.ask("a", "start xyz") == "A got [B got [C says xyz]]"


def test_cycle_is_refused_with_would_deadlock(team: TeamFactory) -> None:
    """a waits on b; b asking a back would hang both: the closing ask fails at once
    with would_deadlock, b answers with that, and a's turn completes."""
    t = team(
        [
            text_rule("a", "a final: {1}", tool_result=r"(?s)^(.*)$"),
            ask_rule("a", r"go", "b", "please ask me back"),
            text_rule("b", "b saw: {1}", tool_result=r"(error would_deadlock)"),
            ask_rule("b", r"ask me back", "a", "loop?"),
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    answer = t.ask("a", "go", timeout=60)
    assert answer.startswith("a final: b saw: error would_deadlock")
    assert not [m for m in t.messages(sender="b") if m.kind == "request"]  # nothing was written


def test_unknown_recipient_and_can_message_refusal(team: TeamFactory) -> None:
    """Sending to a name nobody has is refused at send time with the known names; sending
    outside can_message is refused with not_allowed. Both reach the model as tool errors."""
    t = team(
        [
            text_rule("a", "second: {1}", tool_result=r"(error not_allowed[^\n]*)"),
            {
                "agent": agent_rule("a"),
                "tool_result": r"error recipient_unknown",
                "tool_use": {"name": "mcp__octy__send", "input": {"to": "c", "message": "hi"}},
            },
            {
                "agent": agent_rule("a"),
                "match": "try",
                "tool_use": {"name": "mcp__octy__send", "input": {"to": "nobody", "message": "hi"}},
            },
        ],
        {"a": {"can_message": ["b"]}, "b": {}, "c": {}},
    )
    t.up()
    t.wait_ready("a", "b", "c")
    answer = t.ask("a", "try")
    assert answer.startswith("second: error not_allowed")
    results = t.model.requests_matching(tool_result="recipient_unknown")
    assert results, "the unknown-recipient error reached the model"
    assert "known agents:" in str(results[-1]["body"])
    assert t.messages(recipient="c") == []


def test_broadcast_reaches_every_other_agent_once(team: TeamFactory) -> None:
    """A broadcast is one notice to each other agent, delivered once each; not to the sender."""
    t = team(
        [
            {
                "agent": agent_rule("a"),
                "match": "announce",
                "tool_use": {"name": "mcp__octy__broadcast", "input": {"message": "standup now"}},
            },
            text_rule("a", "announced", tool_result="broadcast to"),
            text_rule("b", "b noted"),
            text_rule("c", "c noted"),
        ],
        {"a": {}, "b": {}, "c": {}},
    )
    t.up()
    t.wait_ready("a", "b", "c")
    assert t.ask("a", "announce") == "announced"
    t.wait_for(
        lambda: all(m.status == "done" for m in t.messages() if m.kind == "broadcast"),
        what="broadcasts handled",
    )
    casts = [m for m in t.messages() if m.kind == "broadcast"]
    assert sorted(m.recipient for m in casts) == ["b", "c"]
    for name in ("b", "c"):
        seen = t.model.requests_matching("standup now", agent=agent_rule(name))
        assert len(seen) == 1, f"{name} saw the broadcast in exactly one turn"


def test_explicit_reply_is_not_duplicated_by_the_final_text(team: TeamFactory) -> None:
    """An agent that answers with the reply tool gets exactly one response on the queue;
    its final text does not produce a second one."""
    t = team(
        [
            {
                "agent": agent_rule("a"),
                "match": r'request_id="(\w+)"',
                "tool_use": {
                    "name": "mcp__octy__reply",
                    "input": {"request_id": "{1}", "message": "explicit answer"},
                },
            },
            text_rule("a", "and some final words", tool_result="reply sent"),
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    request = t.request("a", "hello")
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 60).body == "explicit answer"
    t.wait_for(lambda: t.messages(status="done", recipient="a"), what="request acked")
    assert len(replies_to(t, request.id)) == 1
    assert USER in {m.recipient for m in replies_to(t, request.id)}


def test_the_cli_run_by_an_agents_tool_speaks_only_as_that_agent(team: TeamFactory) -> None:
    """With ``sandbox: false`` (the opt-out), an agent allowed Bash that runs
    `octy-orchestrate send` reaches the team's queue as itself (OCTY_AGENT / OCTY_DB in its
    environment); `--as` another agent is refused. A courtesy, not a boundary: see
    test_team_identity for what the sandbox guarantees."""
    cli = f"{sys.executable} -m orchestrator.cli"
    command = f"{cli} send b 'via bash' && {cli} send b spoofed --as b; echo rc=$?"
    t = team(
        [
            text_rule("a", "bash said {1}", tool_result=r"(rc=\d)"),
            {
                "agent": agent_rule("a"),
                "match": "go",
                "tool_use": {"name": "Bash", "input": {"command": command}},
            },
            text_rule("b", "b noted"),
        ],
        {"a": {"tools": ["Bash"], "sandbox": False}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    assert t.ask("a", "go") == "bash said rc=1"
    to_b = [m for m in t.messages(recipient="b") if m.kind == "notice"]
    assert [(m.sender, m.body) for m in to_b] == [("a", "via bash")]
    result = t.model.requests_matching(tool_result="rc=1")[-1]
    assert "may speak only as 'a'" in str(result["body"]["messages"][-1])
