"""`trace` of requests a real team answered in one shared turn (reviewer G, finding 2).

Messages delivered together are one turn; every ask that turn makes carries the first
message's id as its cause. Tracing the second request showed a turn that asked no one,
and tracing the first claimed the shared turn's hops and cost as its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from team_harness import agent_rule

from orchestrator.mailbox import USER
from orchestrator.prompts import text_of

LEAD, HELPER = agent_rule("lead"), agent_rule("helper")
RULES: list[dict[str, Any]] = [
    {"agent": LEAD, "tool_result": "Facts: (\\w+)", "text": "both answered: {1}"},
    {
        "agent": LEAD,
        "match": "(?s)Question A.*Question B",
        "tool_use": {
            "name": "mcp__octy__ask",
            "input": {"to": "helper", "message": "facts for A and B"},
        },
    },
    {"agent": HELPER, "match": 'from="lead"', "text": "Facts: plenty"},
]


def test_each_request_of_a_shared_turn_traces_to_its_hops(team: Any) -> None:
    t = team(RULES, {"lead": {}, "helper": {}})
    # Queued before the team starts, so lead's first claim delivers both in one turn.
    with t.mailbox() as mb:
        mb.register("lead")  # as `up` would; a message to an unknown name is refused
        a = mb.request(USER, "lead", "Question A?")
        b = mb.request(USER, "lead", "Question B?")
    t.up()
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(a.id, 90).body) == "both answered: plenty"
        assert text_of(mb.wait_for_reply(b.id, 90).body) == "both answered: plenty"
    turns = t.wait_for(
        lambda: [e for e in t.log_events("turn", "lead") if b.id in e.get("messages", [])],
        what="lead's turn logged",
    )
    assert turns[0]["messages"] == [a.id, b.id]  # the scene: one turn for both
    (hop,) = [m for m in t.messages(sender="lead") if m.kind == "request"]
    t.wait_for(lambda: t.log_events("turn", "helper"), what="helper's turn logged")

    for traced, mate in ((b, a), (a, b)):
        doc = json.loads(t.octy("trace", traced.id, "--json").stdout)
        ids = {m["id"] for m in doc["messages"]}
        assert hop.id in ids, (traced, doc)  # the ask the shared turn made, and its answer
        steps = doc["steps"]
        replies = {m["correlation_id"] for m in doc["messages"] if m["kind"] == "response"}
        assert replies == {traced.id, hop.id}  # not the other request's own reply
        (ask,) = [s for s in steps if s["kind"] == "request" and s["message_id"] == hop.id]
        assert (ask["actor"], ask["target"], ask["depth"]) == ("lead", "helper", 1)
        assert any(s["kind"] == "turn" and s["actor"] == "helper" for s in steps)
        (turn,) = [s for s in steps if s["kind"] == "turn" and s["actor"] == "lead"]
        assert turn["text"].endswith(f"(shared: handled in one turn with {mate.id})")

        text = t.octy("trace", traced.id, "--no-color").stdout
        (line,) = [x for x in text.splitlines() if "lead  turn " in x]
        # The turn's own figures, marked shared, at the default width (not cut).
        assert re.search(
            rf"tokens, \$\d+\.\d{{4}} \(shared: handled in one turn with {mate.id}\)$", line
        )
        assert "lead → helper  request" in text, text
