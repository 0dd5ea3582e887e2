"""An agent's ``subagents:`` as the SDK's ``AgentDefinition``s.

A subagent runs inside its agent's claude session (started by the CLI's
``Agent`` tool). It gets the relay tools (``mcp__octy__*``) on top of its own
``tools``, so it can ask a peer agent of the team itself; the queue still sees
the roster agent as the sender, and the logs name the subagent
(:mod:`orchestrator.policy` reads it from the ``PreToolUse`` hook input).
"""

from __future__ import annotations

from claude_agent_sdk import AgentDefinition

from orchestrator.prompts import TOOL_NAMES
from orchestrator.roster import AgentSpec


def agent_definitions(spec: AgentSpec) -> dict[str, AgentDefinition]:
    definitions = {}
    for name, sub in spec.subagents.items():
        tools = list(spec.tools if sub.tools is None else sub.tools)
        definitions[name] = AgentDefinition(
            description=sub.description,
            prompt=sub.prompt,
            tools=[*tools, *(t for t in TOOL_NAMES if t not in tools)],
            model=sub.model,
            background=False,
        )
    return definitions
