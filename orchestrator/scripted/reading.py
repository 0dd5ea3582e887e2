"""Reading a Messages API request: what the model is being asked.

Shared by the rule matcher and by the helpers tests use to assert on what the
CLI sent, so both see a request the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The CLI folds its own notes into user turns as <system-reminder> blocks (git
# attribution, environment, ...). They are not what the user said, and a rule
# matching "commit" must not fire on the attribution reminder.
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>\s*", re.DOTALL)


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, Mapping)]
    return []


def _plain_text(content: Any) -> str:
    parts = [str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text"]
    return "\n".join(part for part in parts if part)


def system_text(body: Mapping[str, Any]) -> str:
    """The system prompt as one string (the API takes a string or a list of text blocks)."""
    return _plain_text(body.get("system"))


def model_name(body: Mapping[str, Any]) -> str:
    return str(body.get("model") or "")


def last_user_message(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The latest ``user``-role message.

    Not simply the last message: the CLI may append a ``system``-role message
    after the user's turn (environment notes), seen on CLI 2.1.331.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message
    return None


def user_text(message: Mapping[str, Any] | None) -> str:
    """A user message's own text: its text blocks, without the CLI's system reminders."""
    if message is None:
        return ""
    parts = []
    for block in _blocks(message.get("content")):
        if block.get("type") != "text":
            continue
        text = _REMINDER.sub("", str(block.get("text", ""))).strip()
        if text:
            parts.append(text)
    return "\n".join(parts)


def tool_results(message: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Tool results in a user message: ``tool_use_id``, ``content`` (text), ``is_error``."""
    if message is None:
        return []
    results = []
    for block in _blocks(message.get("content")):
        if block.get("type") != "tool_result":
            continue
        results.append(
            {
                "tool_use_id": str(block.get("tool_use_id", "")),
                "content": _plain_text(block.get("content")),
                "is_error": bool(block.get("is_error", False)),
            }
        )
    return results


def tools_offered(body: Mapping[str, Any]) -> list[str]:
    """Names of the tools the request offers the model, in order."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [str(t.get("name")) for t in tools if isinstance(t, Mapping) and t.get("name")]


def is_side_request(body: Mapping[str, Any]) -> bool:
    """A request that offers no tools: one of the CLI's own helper calls.

    The agent loop always offers tools (built-in ones, MCP ones); the CLI's side
    requests (a session title, seen on 2.1.331) offer none.
    """
    return not tools_offered(body)


def output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema a structured-output request asks the answer to follow, if any."""
    config = body.get("output_config")
    if not isinstance(config, Mapping):
        return None
    fmt = config.get("format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, Mapping):
            return schema
    return None
