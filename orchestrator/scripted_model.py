"""A local stand-in for Anthropic's Messages API, answering from a script.

It stands where Anthropic's servers stand: point the ``claude`` CLI at it with
``ANTHROPIC_BASE_URL`` and everything else (CLI, SDK, MCP tools) runs for real.
Used by the tests and by the offline demo; nothing else in the package knows
it exists.

    with ScriptedModel("script.yaml") as model:
        env = {**model.cli_env(), "HOME": fresh_home}  # base URL, fake key, offline
        ...  # ClaudeSDKClient(ClaudeAgentOptions(env=env, ...))
        model.requests_matching("hello")  # what the CLI sent

Script format (YAML, or a dict of the same shape)::

    rules:                       # tried in order; the first that matches answers
      - name: greet              # optional label (shown in recordings)
        agent: "You are alice"   # regex searched in the system prompt
        model: "haiku"           # regex searched in the model name
        match: "hello (\\w+)"    # regex searched in the latest user-role message's text
        tool_result: "sum=(\\d+)"  # regex searched in that message's tool results
        times: 1                 # usable this many times, then skipped
        delay: 2.5               # seconds before the answer (streams: after message_start)
        usage: {input_tokens: 1000, output_tokens: 50}  # reported instead of an estimate
        text: "Hi {1}!"          # answer with text ...
        tool_use:                # ... and/or tool calls (a mapping or a list of them)
          - name: mcp__calc__add
            input: {a: "{1}", b: 2}
      - error: {status: 529, type: overloaded_error, message: "busy"}   # or an API error
        times: 1
      - match: "big"
        text: "ok"
        usage: {input_tokens: 150000, cache_read_input_tokens: 20000}  # API usage fields
      - match: "cached"          # of the cache write, 400 kept for 1 hour; served in the US
        text: "ok"
        usage: {cache_creation_input_tokens: 1000, cache_creation_1h_input_tokens: 400,
                inference_geo: us}
      - error: prompt_too_long   # the API's 400 "prompt is too long: ..." (see scripted/usage.py)
    default: {text: "..."}       # when no rule matches (has a built-in default)
    side_reply: "Scripted session"  # text for side requests (below)
    api_key: "sk-right"          # optional: any other key gets HTTP 401 on every endpoint

Every condition is optional; a rule without conditions matches any turn.
Regexes are Python ``re.search``; use inline flags like ``(?i)`` or ``(?s)``.
The user text leaves out the CLI's ``<system-reminder>`` blocks. Placeholders
``{0}`` (whole match), ``{1}``, ``{2}``... and ``{name}`` in text and in tool
inputs take the match's groups (``match`` groups first, then ``tool_result``'s);
unknown placeholders stay as written. ``type`` defaults from ``status``.

Side requests: a request offering no tools is one of the CLI's own helper
calls (a session title, say). It is answered with ``side_reply`` (as JSON
fitting the schema when it asks for structured output) and never consumes a
rule, unless a rule says ``side: true`` (such rules match only side requests).
"""

from __future__ import annotations

from orchestrator.errors import ScriptError
from orchestrator.scripted.client_env import FAKE_API_KEY, OFFLINE_ENV, cli_env
from orchestrator.scripted.recording import (
    RecordedRequest,
    conversation,
    last_user_text,
    system_prompt,
    tool_results,
    tools_offered,
)
from orchestrator.scripted.script import Answer, ApiError, Rule, Script, ToolCall
from orchestrator.scripted.server import ScriptedModel

__all__ = [
    "FAKE_API_KEY",
    "OFFLINE_ENV",
    "Answer",
    "ApiError",
    "RecordedRequest",
    "Rule",
    "Script",
    "ScriptError",
    "ScriptedModel",
    "ToolCall",
    "cli_env",
    "conversation",
    "last_user_text",
    "system_prompt",
    "tool_results",
    "tools_offered",
]
