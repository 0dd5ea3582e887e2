"""What the model reads when the CLI asks permission for a call nobody can grant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from team_harness import Team, agent_rule

from orchestrator.prompts import tool_not_allowed
from orchestrator.scripted_model import tool_results


def test_a_refused_call_of_a_tool_the_agent_has_is_not_called_a_missing_tool(
    team: Any, tmp_path: Path
) -> None:
    """Regression, with the real CLI: a Write to .claude/settings.json by an agent whose
    tools include Write is asked about by the CLI (it guards its own settings), and the
    model was told "'Write' is not in this agent's tools (allowed: Bash, Write, Read)".
    Now it reads that this call needs a permission nobody can grant; nothing is written."""
    me = agent_rule("a")
    target = tmp_path / ".claude" / "settings.json"
    t: Team = team(
        [
            {"agent": me, "tool_result": "Write", "text": "done"},
            {
                "agent": me,
                "match": "GO-WRITE",
                "tool_use": {
                    "name": "Write",
                    "input": {"file_path": str(target), "content": '{"hooks": {}}\n'},
                },
            },
        ],
        {"a": {"tools": ["Bash", "Write", "Read"]}},
    )
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "GO-WRITE", timeout=90) == "done"
    results = [
        str(r.get("content"))
        for request in t.model.requests_matching(tool_result="Write", agent=me)
        for r in tool_results(request)
    ]
    assert any("this particular call needs a permission" in r for r in results), results
    assert not any("is not in this agent's tools" in r for r in results), results
    assert not target.exists()


def test_a_tool_missing_from_the_roster_is_still_named_missing() -> None:
    assert "is not in this agent's tools" in tool_not_allowed("WebFetch", ["Bash", "Read"])
    assert "no one can grant it here" in tool_not_allowed("Bash", ["Bash(git:*)", "Read"])
    assert "(allowed: (none))" in tool_not_allowed("Write", [])
