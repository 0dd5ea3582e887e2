"""The Messages API on the wire: response bodies, server-sent events, error shapes.

Shapes follow Anthropic's public API reference; the stream is split into
several deltas per block, as the real service does, so clients that only work
with one delta per block are caught.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.scripted.script import Answer

TEXT_CHUNK = 12  # characters of text per text_delta
JSON_CHUNK = 16  # characters of tool input JSON per input_json_delta


@dataclass(frozen=True)
class Block:
    """One content block of an answer: text, or a tool call with its unique id."""

    type: str  # "text" | "tool_use"
    text: str = ""
    id: str = ""
    name: str = ""
    input: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        if self.type == "text":
            return {"type": "text", "text": self.text}
        return {
            "type": "tool_use",
            "id": self.id,
            "name": self.name,
            "input": dict(self.input or {}),
        }


def new_id(prefix: str) -> str:
    """A unique id in the API's style (``msg_...``, ``toolu_...``, ``req_...``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def blocks_for(answer: Answer) -> list[Block]:
    blocks = [Block("text", text=answer.text)] if answer.text else []
    for call in answer.tool_use:
        blocks.append(Block("tool_use", id=new_id("toolu"), name=call.name, input=call.input))
    if not blocks:  # an empty text answer is still one (empty) text block
        blocks.append(Block("text", text=""))
    return blocks


def stop_reason(blocks: list[Block]) -> str:
    return "tool_use" if any(b.type == "tool_use" for b in blocks) else "end_turn"


def estimate_tokens(value: Any) -> int:
    """A rough token count (4 characters a token): the CLI only needs plausible numbers."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def _usage(
    input_tokens: int, output_tokens: int, cache: tuple[int, int], extras: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache[1],
        "cache_read_input_tokens": cache[0],
        **extras,
    }


def message(
    model: str,
    blocks: list[Block],
    input_tokens: int,
    output_tokens: int | None = None,
    cache: tuple[int, int] = (0, 0),  # (cache read, cache write) input tokens
    *,
    extras: Mapping[str, Any] | None = None,  # cache_creation split, inference_geo
) -> dict[str, Any]:
    """A complete (non-streamed) Messages API response."""
    content = [b.as_json() for b in blocks]
    if output_tokens is None:
        output_tokens = estimate_tokens(content)
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(blocks),
        "stop_sequence": None,
        "usage": _usage(input_tokens, output_tokens, cache, extras or {}),
    }


def models_list() -> dict[str, Any]:
    """``GET /v1/models``: one model, in the API's list shape."""
    model = {
        "type": "model",
        "id": "scripted-model",
        "display_name": "Scripted model",
        "created_at": "2025-01-01T00:00:00Z",
    }
    return {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}


def error_body(kind: str, text: str) -> dict[str, Any]:
    """The API's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": kind, "message": text}}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_head(
    model: str,
    input_tokens: int,
    cache: tuple[int, int] = (0, 0),
    extras: Mapping[str, Any] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """What the service sends at once: ``message_start`` and a ``ping``."""
    start: dict[str, Any] = {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(input_tokens, 1, cache, extras or {}),
    }
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}


def stream_body(
    blocks: list[Block], output_tokens: int | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The content blocks, each split over several deltas, then the closing events."""
    for index, block in enumerate(blocks):
        if block.type == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block.text, TEXT_CHUNK)]
        else:
            opening = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            arguments = json.dumps(dict(block.input or {}), ensure_ascii=False)
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in _pieces(arguments, JSON_CHUNK)
            ]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    if output_tokens is None:
        output_tokens = estimate_tokens([b.as_json() for b in blocks])
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(blocks), "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def json_text(value: Any) -> str:
    """JSON as the real API writes it: UTF-8 text, except that a lone surrogate (a script's
    half emoji, "\\ud83d", which no UTF-8 can hold) is sent as its escape, as the API's own
    JSON can carry one to the CLI."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, ensure_ascii=True)
    return text


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json_text(data)}\n\n".encode()


def structured_text(schema: Mapping[str, Any], filler: str) -> str:
    """A JSON answer that fits a structured-output schema, strings set to ``filler``."""
    return json.dumps(_sample(schema, filler), ensure_ascii=False)


def _as_schema(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sample(schema: Mapping[str, Any], filler: str) -> Any:
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(props)
        return {n: _sample(_as_schema(props.get(n)), filler) for n in names}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return filler
