"""API errors a script can name instead of spelling them out: ``error: prompt_too_long``.

``prompt_too_long`` is the API's answer to a request over the model's context
window: HTTP 400, ``invalid_request_error``, message ``prompt is too long:
215000 tokens > 200000 maximum`` (the wording the CLI recognises and reports as
"Prompt is too long" in the turn's result).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ScriptError

PROMPT_TOO_LONG_MESSAGE = "prompt is too long: 215000 tokens > 200000 maximum"
NAMED_ERRORS: Mapping[str, tuple[int, str, str]] = {
    "prompt_too_long": (400, "invalid_request_error", PROMPT_TOO_LONG_MESSAGE),
}


def named_error(name: str, source: str, rule: str) -> dict[str, Any]:
    """The error mapping (status, type, message) for an error given by name."""
    if name not in NAMED_ERRORS:
        raise ScriptError(
            source,
            rule,
            "error",
            f"unknown named error '{name}'; named errors: {', '.join(NAMED_ERRORS)} "
            "(or a mapping with 'status')",
        )
    status, kind, message = NAMED_ERRORS[name]
    return {"status": status, "type": kind, "message": message}
