"""A call whose input is not of the form the hook reads (a Bash ``command`` that is a
number, a list, null or an object; a file tool's path that is no string; an input that is
no object) is refused by the hook, saying why, and never let through: read as text,
``{"command": ["git", "push"]}`` was judged as a line ``['git', 'push']``, ``5`` as ``5``.
The CLI (2.1) itself refuses such input against its schema before any hook runs: the
hook does not rely on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from orchestrator.policy import Policy
from orchestrator.roster import parse_roster

AGENT = (
    "agents:\n  a: {prompt: p, tools: [Bash, Write, Edit, Read, WebFetch],"
    ' approve: ["Bash(git push:*)", "Read(secret/**)", "WebFetch(domain:example.com)"]}\n'
)


def answer(folder: Path, tool: str, tool_input: Any) -> tuple[Any, list[str]]:
    """The real hook's answer to one call, and what it asked the approver."""
    roster = parse_roster(AGENT, folder / "agents.yaml", {})
    asked: list[str] = []

    async def ask(tool: str, tool_input: Any, subagent: str | None, why: str = "") -> Any:
        asked.append(why)
        return True, "approved"

    policy = Policy("a", lambda: roster, lambda: folder, ask)
    data: Any = {"tool_name": tool, "tool_input": tool_input, "cwd": str(folder)}
    return anyio.run(policy.pre_tool_use, data, None, {"signal": None}), asked


def denied(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


@pytest.mark.parametrize(
    ("tool", "tool_input", "why"),
    [
        ("Bash", {"command": 5}, "its command is a number, not text"),
        ("Bash", {"command": 1.5}, "its command is a number, not text"),
        ("Bash", {"command": True}, "its command is a boolean, not text"),
        ("Bash", {"command": ["git", "push"]}, "its command is a list, not text"),
        ("Bash", {"command": None}, "its command is null, not text"),
        ("Bash", {"command": {"line": "git push"}}, "its command is an object, not text"),
        ("Bash", {}, "it has no command"),
        ("Bash", "git push", "its input is text, not an object"),
        ("Bash", ["git push"], "its input is a list, not an object"),
        ("Bash", None, "its input is null, not an object"),
        ("Write", {"file_path": 5, "content": "x"}, "its file_path is a number, not text"),
        ("Write", {"file_path": ["a"], "content": "x"}, "its file_path is a list, not text"),
        ("Edit", {"file_path": None}, "its file_path is null, not text"),
        ("Edit", {"file_path": {"p": "a"}}, "its file_path is an object, not text"),
        ("NotebookEdit", {"notebook_path": 1}, "its notebook_path is a number, not text"),
        ("Read", {"file_path": ["secret/key"]}, "its file_path is a list, not text"),
        ("Glob", {"pattern": 7}, "its pattern is a number, not text"),
        ("WebFetch", {"url": ["https://example.com"]}, "its url is a list, not text"),
    ],
)
def test_input_of_the_wrong_type_is_refused(
    tool: str, tool_input: Any, why: str, tmp_path: Path
) -> None:
    out, asked = answer(tmp_path, tool, tool_input)
    assert out == denied(f"the {tool} call was refused: {why}")
    assert asked == []  # refused, not put to the approver (who might approve a `5`)


def test_input_of_the_right_type_is_judged_as_before(tmp_path: Path) -> None:
    assert answer(tmp_path, "Bash", {"command": "ls"}) == ({}, [])
    out, asked = answer(tmp_path, "Bash", {"command": "git push"})
    assert asked == ["matches Bash(git push:*): the command is on the line"]
    assert out["hookSpecificOutput"]["permissionDecision"] == "allow"
    out, asked = answer(tmp_path, "Glob", {"pattern": "*.py"})  # its path may be left out
    assert asked == ["matches Read(secret/**)"]  # the whole folder is searched: it asks
    assert out["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert answer(tmp_path, "mcp__octy__send", {}) == ({}, [])  # no field read


@pytest.mark.cli
async def test_the_cli_refuses_it_before_the_hook(
    scripted_model: Any, claude_options: Any, tmp_path: Path
) -> None:
    """What the real CLI does with ``{"command": ["touch", "ran-it"]}``: it answers the
    model with its own validation error, and neither the hook nor the command runs."""
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": ["touch", "x"]}}},
        ]
    )
    roster = parse_roster(AGENT, tmp_path / "agents.yaml", {})
    work = tmp_path / "work"
    work.mkdir()
    checked: list[Any] = []

    async def decide(*args: Any) -> tuple[bool, str]:
        checked.append(args)
        return True, "approved"

    policy = Policy("a", lambda: roster, lambda: work, decide)
    options = claude_options(model, cwd=work, hooks=policy.hooks(), allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("GO")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
    assert not (work / "x").exists()
    assert checked == []
    assert model.requests_matching(tool_result=r"(?s)InputValidationError.*`command`.*array")
