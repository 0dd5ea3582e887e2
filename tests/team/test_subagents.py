"""Subagents (`subagents:`): the SDK's AgentDefinitions per roster agent; a subagent asks a
peer agent of the team through mcp__octy__ask and gets the answer (issue 11)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import octy
from team_harness import Team, agent_rule

from orchestrator.errors import RosterErrors
from orchestrator.roster import load_roster

TeamFactory = Callable[..., Team]
SCOUT = "You are the scout subagent"


def test_subagent_settings_are_checked(tmp_path: Path) -> None:
    """A subagent needs a description and exactly one prompt; unknown keys get a hint."""
    path = tmp_path / "agents.yaml"
    path.write_text(
        textwrap.dedent("""\
        agents:
          lead:
            prompt: p
            subagents:
              scout: {prompt: x, tols: [Read]}
              helper: {description: d}
        """)
    )
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    assert [str(e) for e in info.value.errors] == [
        f"{path}:5: key 'agents.lead.subagents.scout': unknown key 'tols'; did you mean 'tools'?",
        f"{path}:6: key 'agents.lead.subagents.helper': give exactly one of 'prompt' or "
        "'prompt_file'",
    ]


@pytest.mark.cli
def test_a_subagent_asks_a_peer_agent_and_gets_the_answer(
    team: TeamFactory, tmp_path: Path
) -> None:
    """lead delegates to its subagent scout (the CLI's Agent tool); scout asks the peer
    agent beta with mcp__octy__ask; beta's answer comes back to scout, scout's to lead,
    lead's to the user. The queue's sender is lead; the logs and trace name scout."""
    t = team(
        [
            # the subagent (its system prompt is its own prompt)
            {"agent": SCOUT, "tool_result": r"(BETA-\w+)", "text": "scout found {1}"},
            {
                "agent": SCOUT,
                "match": r"find out about (\w+)",
                "tool_use": {
                    "name": "mcp__octy__ask",
                    "input": {"to": "beta", "message": "what about {1}?"},
                },
            },
            # the roster agents
            {
                "agent": agent_rule("lead"),
                "tool_result": r"scout found (BETA-\w+)",
                "text": "lead says {1}",
            },
            {
                "agent": agent_rule("lead"),
                "match": r"investigate (\w+)",
                "tool_use": {
                    "name": "Agent",
                    "input": {
                        "description": "ask beta",
                        "prompt": "find out about {1}",
                        "subagent_type": "scout",
                    },
                },
            },
            {"agent": agent_rule("beta"), "match": r"what about (\w+)\?", "text": "BETA-{1}"},
        ],
        {
            "lead": {
                "subagents": {
                    "scout": {
                        "description": "Finds things out by asking the team.",
                        "prompt": f"{SCOUT}. Ask the team with mcp__octy__ask.",
                        "tools": [],
                    }
                }
            },
            "beta": {},
        },
    )
    t.up()
    t.wait_ready("lead", "beta")
    request = t.request("lead", "investigate KIWI")
    with t.mailbox() as mb:
        assert mb.wait_for_reply(request.id, 90).body == "lead says BETA-KIWI"
    asks = [m for m in t.messages(recipient="beta") if m.kind == "request"]
    assert [(m.sender, m.body, m.cause_id) for m in asks] == [
        ("lead", "what about KIWI?", request.id)
    ]
    events = [
        json.loads(line) for line in (tmp_path / "logs" / "lead.jsonl").read_text().splitlines()
    ]
    asked = [e for e in events if e["event"] == "asked"]
    assert [(e["to"], e.get("subagent")) for e in asked] == [("beta", "scout")]
    answered = [e for e in events if e["event"] == "answered"]
    assert [(e["body"], e.get("subagent")) for e in answered] == [("BETA-KIWI", "scout")]
    trace = octy("trace", request.id, "--no-color", cwd=tmp_path)
    assert "(subagent scout) what about KIWI?" in trace.stdout, trace.stdout + trace.stderr
