"""Script extras for spend and context tests: set usage figures, answer "prompt is too long".

A rule's ``usage`` sets the token counts the answer reports (the CLI prices a
turn from them, and the runner reads the context in use from them)::

    usage: {input_tokens: 150000, output_tokens: 800,
            cache_read_input_tokens: 20000, cache_creation_input_tokens: 4000}

The names are the API's ``usage`` fields. Left-out figures keep the server's
estimate (input, output) or 0 (cache reads and writes).
``error: prompt_too_long`` answers with the API's error for a request over the
model's context window: HTTP 400, ``invalid_request_error``, message
``prompt is too long: 215000 tokens > 200000 maximum`` (the wording the CLI
recognises).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ScriptError

USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
PROMPT_TOO_LONG_MESSAGE = "prompt is too long: 215000 tokens > 200000 maximum"
NAMED_ERRORS: Mapping[str, tuple[int, str, str]] = {
    "prompt_too_long": (400, "invalid_request_error", PROMPT_TOO_LONG_MESSAGE),
}


@dataclass(frozen=True)
class Usage:
    """Token figures an answer reports; None keeps the server's own estimate."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def head(self, estimated_input: int) -> dict[str, int]:
        """The ``usage`` of ``message_start`` (and of a whole non-streamed message)."""
        return {
            "input_tokens": estimated_input if self.input_tokens is None else self.input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }

    def output(self, estimated: int) -> int:
        return estimated if self.output_tokens is None else self.output_tokens


DEFAULT_USAGE = Usage()


def parse_usage(raw: Any, source: str, rule: str) -> Usage:
    if raw is None:
        return DEFAULT_USAGE
    if not isinstance(raw, Mapping):
        raise ScriptError(
            source, rule, "usage", "must be a mapping like {input_tokens: 1000, output_tokens: 50}"
        )
    figures: dict[str, int] = {}
    for key, value in raw.items():
        if key not in USAGE_KEYS:
            raise ScriptError(
                source, rule, "usage", f"unknown figure '{key}'; allowed: {', '.join(USAGE_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScriptError(
                source, rule, "usage", f"'{key}' must be a whole number of tokens >= 0"
            )
        figures[str(key)] = value
    return Usage(**figures)


def named_error(name: str, source: str, rule: str) -> tuple[int, str, str]:
    """(status, type, message) for an error given by name, like ``prompt_too_long``."""
    if name not in NAMED_ERRORS:
        raise ScriptError(
            source,
            rule,
            "error",
            f"unknown named error '{name}'; named errors: {', '.join(NAMED_ERRORS)} "
            "(or a mapping with 'status')",
        )
    return NAMED_ERRORS[name]
