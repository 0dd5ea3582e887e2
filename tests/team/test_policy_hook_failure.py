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
from orchestrator.scripted.recording import tool_results

pytestmark = [pytest.mark.cli]


async def _touch_with_broken(
    scripted_model: Any,
    claude_options: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    roster_text: str,
    part: str,
    error: Exception,
) -> tuple[list[str], Path, Any]:
    """The model asks for `touch ran-it` through the real CLI, the agent's hook having its
    ``part`` replaced by one that raises ``error``: the tools the broken part was called
    for, the agent's folder, and the model."""
    model = scripted_model(
        [
            {"tool_result": r"(?s).", "text": "done"},
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": "touch ran-it"}}},
        ]
    )
    roster = parse_roster(roster_text, tmp_path / "agents.yaml", {})
    work = tmp_path / "work"
    work.mkdir()

    async def decide(*args: Any) -> tuple[bool, str]:
        raise AssertionError("nothing here asks the approver")

    policy = Policy("a", lambda: roster, lambda: work, decide)
    called: list[str] = []

    async def broken(data: Any, *args: Any) -> Any:
        called.append(str(dict(data).get("tool_name")))
        raise error

    monkeypatch.setattr(policy, part, broken)
    options = claude_options(model, cwd=work, hooks=policy.hooks(), allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("GO")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
    return called, work, model


async def test_a_check_that_raises_blocks_the_call(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, work, model = await _touch_with_broken(
        scripted_model,
        claude_options,
        tmp_path,
        monkeypatch,
        roster_text='agents:\n  a: {prompt: p, tools: [Bash], approve: ["Bash(git push:*)"]}\n',
        part="_decide",
        error=IndexError("a bug in the check"),  # none of the errors it turns into a denial
    )
    assert checked == ["Bash"], "the hook never ran"
    assert not (work / "ran-it").exists()
    assert model.requests_matching(tool_result=r"(?s).")  # the model heard of the refusal


async def test_a_hook_callback_that_fails_blocks_the_call(
    scripted_model: Any, claude_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails in the callback itself (here: the whole of it, before any of its own
    handling), the matcher says so to the CLI: the call is blocked."""
    called, work, model = await _touch_with_broken(
        scripted_model,
        claude_options,
        tmp_path,
        monkeypatch,
        roster_text="agents:\n  a: {prompt: p, tools: [Bash]}\n",
        part="pre_tool_use",
        error=RuntimeError("the callback failed"),
    )
    assert called == ["Bash"], "the hook never ran"
    assert not (work / "ran-it").exists()
    # The model heard of the refusal (as its sibling's did), as an error of the hook's.
    (told,) = [tool_results(r) for r in model.requests_matching(tool_result=r"(?s).")]
    assert [r["is_error"] for r in told] == [True], told
    assert "hook error" in told[0]["content"], told
    assert "blocking" in told[0]["content"], told
