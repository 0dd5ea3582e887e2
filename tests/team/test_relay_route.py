"""The relay's direct tool route with the real bundled claude CLI (issue 14.4).

``relay_route.install`` reaches into the SDK's private bridge table; this pins that
it finds it with the SDK this project installs, and that the CLI's tool calls are
then answered by the route while the handshake and ``tools/list`` still go through
the SDK's own bridge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import AssistantMessage, ClaudeSDKClient, ResultMessage, TextBlock

from orchestrator.mailbox import AsyncMailbox
from orchestrator.prompts import SERVER
from orchestrator.relay import Relay
from orchestrator.relay_route import DirectRoute, install
from orchestrator.roster._build import parse_roster

pytestmark = [pytest.mark.cli]

ROSTER = """
agents:
  alpha: {prompt: You are alpha.}
  bob: {prompt: You are bob.}
"""


async def test_the_clis_tool_calls_take_the_direct_route(
    tmp_path: Path, scripted_model: Any, claude_options: Any
) -> None:
    model = scripted_model(
        [
            {
                "match": "tell bob",
                "tool_use": {"name": "mcp__octy__send", "input": {"to": "bob", "message": "hi"}},
            },
            {"tool_result": r"(sent to bob)", "text": "done: {1}"},
        ]
    )
    roster = parse_roster(ROSTER, tmp_path / "agents.yaml", environ={})
    async with AsyncMailbox(tmp_path / "team.db") as mailbox:
        for name in ("alpha", "bob"):
            await mailbox.register(name)
        relay = Relay("alpha", mailbox, lambda: roster)
        options = claude_options(
            model, mcp_servers={SERVER: relay.server()}, allowed_tools=["mcp__octy__send"]
        )
        async with ClaudeSDKClient(options) as client:
            assert install(client, SERVER, relay.tools())
            route = client._query._sdk_mcp_bridges[SERVER]  # type: ignore[union-attr]
            assert isinstance(route, DirectRoute)
            passed_on: list[str] = []
            bridge_handle = route._fallback.handle

            async def spy(message: dict[str, Any]) -> dict[str, Any] | None:
                passed_on.append(str(message.get("method")))
                return await bridge_handle(message)

            route._fallback.handle = spy  # type: ignore[method-assign]
            await client.query("please tell bob")
            texts: list[str] = []
            async for message in client.receive_response():
                if isinstance(message, AssistantMessage):
                    texts += [b.text for b in message.content if isinstance(b, TextBlock)]
                elif isinstance(message, ResultMessage):
                    assert message.is_error is False
        [sent] = await mailbox.peek("bob")
        assert (sent.sender, sent.body) == ("alpha", "hi")
        assert texts[-1] == "done: sent to bob"
        assert "tools/call" not in passed_on
