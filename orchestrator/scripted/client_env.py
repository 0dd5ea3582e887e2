"""The environment that points a ``claude`` CLI at a scripted model and keeps it offline.

Every variable here is read by the bundled CLI 2.1.331 (found in its source,
checked by running it): with them, the only connection the CLI opens is to the
base URL (seen with strace); without them it also looks up telemetry and
update hosts and sends side requests (session titles).
"""

from __future__ import annotations

import os

# Any key is accepted; this one only has to look like a key and is plainly not a secret.
FAKE_API_KEY = "sk-ant-scripted-model-not-a-secret"

OFFLINE_ENV = {
    # Telemetry, error reporting, auto-update checks, feature flags, side requests.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}

# Ambient variables that would send the CLI elsewhere or authenticate it
# differently. The SDK passes the parent's environment through and can only
# override, so they are set empty (the CLI reads an empty value as unset;
# checked for ANTHROPIC_AUTH_TOKEN).
_BLANKED = (
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def cli_env(base_url: str) -> dict[str, str]:
    """Variables for a CLI that should talk only to ``base_url``.

    Also ``ENABLE_TOOL_SEARCH=false``: otherwise the CLI hides SDK MCP tools
    behind its ToolSearch tool, and a script names the tools it calls.
    """
    no_proxy = ",".join(p for p in ("127.0.0.1", "localhost", os.environ.get("NO_PROXY")) if p)
    return {
        **{name: "" for name in _BLANKED if os.environ.get(name)},
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "ENABLE_TOOL_SEARCH": "false",
        # A proxy from the environment must not carry requests for 127.0.0.1.
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        **OFFLINE_ENV,
    }
