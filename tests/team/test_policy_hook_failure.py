"""A check in the PreToolUse hook that fails must never let the call through. Measured
with the real bundled claude CLI (review6): a hook callback that raises is taken as no
decision, and the Bash call ran; the policy's hook caught only OrchestratorError, OSError
and ValueError. The real CLI, the scripted model calling Bash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from orchestrator.policy import Policy
from orchestrator.roster import Roster, parse_roster

pytestmark = [pytest.mark.cli]


def _roster(folder: Path, name: str) -> Roster:
    tools = json.dumps(["Bash"])
    text = f'agents:\n  {name}: {{prompt: p, tools: {tools}, approve: ["Bash(git push:*)"]}}\n'
    return parse_roster(text, folder / "agents.yaml", {})


async def test_a_check_that_fails_in_the_hook_does_not_let_bash_run(
    scripted_model: Any, claude_options: Any, tmp_path: Path
) -> None:
    """The agent's roster entry gone under its session (a KeyError, not one of the errors
    the hook caught): the hook raised, and the CLI ran the command."""
    marker = tmp_path / "ran-it"
    model = scripted_model(
        [
            {"match": "GO", "tool_use": {"name": "Bash", "input": {"command": f"touch {marker}"}}},
            {"text": "done"},
        ]
    )
    rosters = [_roster(tmp_path, "a")]
    policy = Policy("a", lambda: rosters[-1], lambda: tmp_path, _never_asked)
    options = claude_options(model, allowed_tools=["Bash"], hooks=policy.hooks())
    rosters.append(_roster(tmp_path, "b"))  # from now on the check cannot be made
    async with ClaudeSDKClient(options) as client:
        await client.query("GO")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
    assert not marker.exists(), "the call ran though its check failed"


async def _never_asked(*_args: Any) -> tuple[bool, str]:
    raise AssertionError("no rule asks for this line")
