"""A check of a tool call that fails unexpectedly (a bug in it raises) must not let the call
through. The CLI counts a hook callback that answers with an error as no decision unless its
matcher says ``on_failure="block"``: the call ran. The real bundled CLI against the scripted
model, the agent's real PreToolUse hook (Policy.hooks), its check broken on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from orchestrator.policy import Policy
from orchestrator.roster import parse_roster

pytestmark = [pytest.mark.cli]


async def test_a_check_that_raises_blocks_the_call(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": "touch ran-it"}}},
        ]
    )
    roster = parse_roster(
        'agents:\n  a: {prompt: p, tools: [Bash], approve: ["Bash(git push:*)"]}\n',
        tmp_path / "agents.yaml",
        {},
    )
    work = tmp_path / "work"
    work.mkdir()

    async def decide(*args: Any) -> tuple[bool, str]:
        raise AssertionError("nothing here asks the approver")

    policy = Policy("a", lambda: roster, lambda: work, decide)
    checked: list[str] = []

    async def broken(data: Any, *args: Any) -> Any:
        checked.append(str(dict(data).get("tool_name")))
        raise IndexError("a bug in the check")  # none of the errors it turns into a denial

    monkeypatch.setattr(policy, "_decide", broken)
    options = claude_options(model, cwd=work, hooks=policy.hooks(), allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("GO")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
    assert checked == ["Bash"], "the hook never ran"
    assert not (work / "ran-it").exists()
    assert model.requests_matching(tool_result=r"(?s).")  # the model heard of the refusal


async def test_a_hook_callback_that_fails_blocks_the_call(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails in the callback itself (here: the whole of it, before any of its own
    handling), the matcher says so to the CLI: the call is blocked."""
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": "touch ran-it"}}},
        ]
    )
    roster = parse_roster(
        "agents:\n  a: {prompt: p, tools: [Bash]}\n", tmp_path / "agents.yaml", {}
    )
    work = tmp_path / "work"
    work.mkdir()

    async def decide(*args: Any) -> tuple[bool, str]:
        raise AssertionError("nothing here asks the approver")

    policy = Policy("a", lambda: roster, lambda: work, decide)
    called: list[str] = []

    async def broken(data: Any, *args: Any) -> Any:
        called.append(str(dict(data).get("tool_name")))
        raise RuntimeError("the callback failed")

    monkeypatch.setattr(policy, "pre_tool_use", broken)
    options = claude_options(model, cwd=work, hooks=policy.hooks(), allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("GO")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
    assert called == ["Bash"], "the hook never ran"
    assert not (work / "ran-it").exists()
