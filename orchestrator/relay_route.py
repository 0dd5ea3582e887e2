"""A direct route for the relay's tool calls (issue 14.4).

The SDK hands every ``mcp_message`` control request for an in-process server to
an ``SdkMcpBridge``: mcp's in-memory client/server streams, pydantic models each
way and several task hops, 3.8-4.4 ms of an ask->reply on this machine (measured
in ``bench/team.py``). A ``tools/call`` needs none of it: the CLI's JSON-RPC
request already arrives parsed, the answer is a dict. :class:`DirectRoute` takes
the bridge's place for ``octy`` and answers ``tools/call`` itself; everything else
(the handshake, ``tools/list``, ping, a cancellation of a call it does not hold)
still goes through the SDK's bridge, which stays alive behind it.

What the bridge guarantees is kept: arguments are checked against the tool's JSON
Schema and a bad call, an unknown tool or a handler that raises comes back as an
``isError`` result the model can read; each call runs in the SDK's own task per
control request, so calls run concurrently and the CLI's ``control_cancel_request``
cancels one as before; an MCP ``notifications/cancelled`` cancels the call it names;
closing the client cancels what is still running.

The bridge table is the SDK's private state (``Query._sdk_mcp_bridges``). When a
release moves it, :func:`install` says so and the SDK's route keeps working, only
slower; ``tests/team/test_relay_route.py`` pins that it is found with the pinned SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
from claude_agent_sdk import ClaudeSDKClient, SdkMcpTool
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # the SDK's own dep
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Bridge(Protocol):
    """What the SDK's Query calls on the object in its bridge table."""

    async def handle(self, message: dict[str, Any]) -> dict[str, Any] | None: ...
    async def aclose(self) -> None: ...


class DirectRoute:
    """Answers ``tools/call`` for one in-process server; the rest goes to ``fallback``."""

    def __init__(self, tools: Sequence[SdkMcpTool[Any]], fallback: Bridge) -> None:
        self._tools: dict[str, tuple[Draft7Validator, _Plain | None, Handler]] = {}
        for t in tools:
            schema = t.input_schema if isinstance(t.input_schema, dict) else {"type": "object"}
            self._tools[t.name] = (Draft7Validator(schema), _Plain.of(schema), t.handler)
        self._fallback = fallback
        self._running: dict[Any, anyio.CancelScope] = {}  # JSON-RPC id -> its call
        self._closed = False

    async def handle(self, message: dict[str, Any]) -> dict[str, Any] | None:
        method = message.get("method")
        if method == "tools/call" and "id" in message:
            return await self._call(message["id"], message.get("params"))
        if method == "notifications/cancelled":
            params = message.get("params")
            scope = self._running.get(params.get("requestId")) if isinstance(params, dict) else None
            if scope is not None:
                scope.cancel()
                return None
        return await self._fallback.handle(message)

    async def _call(self, request_id: Any, params: Any) -> dict[str, Any]:
        if self._closed:
            return _rpc_error(request_id, -32603, "the relay's tool server is closed")
        if request_id in self._running:  # as the bridge: an id is unique among open calls
            return _rpc_error(request_id, -32600, f"request id {request_id!r} is already in flight")
        params = params if isinstance(params, dict) else {}
        name, args = params.get("name"), params.get("arguments")
        args = {} if args is None else args
        entry = self._tools.get(name) if isinstance(name, str) else None
        if entry is None:
            return _rpc_result(request_id, _tool_error(f"Tool '{name}' not found"))
        validator, plain, handler = entry
        if plain is None or not plain.accepts(args):  # jsonschema decides, and says why
            problem = best_match(validator.iter_errors(args))
            if problem is not None:
                error = _tool_error(f"Input validation error: {problem.message}")
                return _rpc_result(request_id, error)
        with anyio.CancelScope() as scope:
            self._running[request_id] = scope
            try:
                out = await handler(args)
            except Exception as exc:  # as the SDK: a failing handler is the model's to read
                out = _tool_error(str(exc) or type(exc).__name__)
            finally:
                del self._running[request_id]
        if scope.cancelled_caught:  # the CLI gave the call up: what mcp answers then
            return _rpc_error(request_id, 0, "Request cancelled")
        return _rpc_result(request_id, out)

    async def aclose(self) -> None:
        self._closed = True
        for scope in list(self._running.values()):
            scope.cancel()
        await self._fallback.aclose()


_TYPES: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
_PLAIN_KEYS = frozenset({"$schema", "type", "properties", "required", "description"})


class _Plain:
    """The relay's schemas are plain: an object, some required keys, each property a
    simple type. For those, a valid call (nearly every call) is recognised here in a
    few microseconds; jsonschema took 50-150 us per call on the ask path (issue 14.4).
    Anything this does not accept goes to jsonschema, which has the last word and
    the error message; a schema with any other keyword is always left to it."""

    def __init__(self, required: list[str], types: dict[str, Callable[[object], bool]]) -> None:
        self.required = required
        self.types = types

    @classmethod
    def of(cls, schema: dict[str, Any]) -> _Plain | None:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        if (
            not set(schema) <= _PLAIN_KEYS
            or schema.get("type") != "object"
            or not isinstance(props, dict)
            or not isinstance(required, list)
            or not all(isinstance(r, str) for r in required)
        ):
            return None
        types: dict[str, Callable[[object], bool]] = {}
        for name, prop in props.items():
            if not isinstance(prop, dict) or not set(prop) <= {"type", "description"}:
                return None
            kind = prop.get("type")
            check = _TYPES.get(kind) if isinstance(kind, str) else None
            if check is None:
                return None
            types[name] = check
        return cls(required, types)

    def accepts(self, args: object) -> bool:
        if not isinstance(args, dict):
            return False
        if not all(r in args for r in self.required):
            return False
        return all(check(args[k]) for k, check in self.types.items() if k in args)


def install(client: ClaudeSDKClient, server: str, tools: Sequence[SdkMcpTool[Any]]) -> bool:
    """Put a :class:`DirectRoute` in front of ``server``'s bridge in a connected client.
    False (and nothing changed) if this SDK keeps its bridges elsewhere."""
    bridges = getattr(getattr(client, "_query", None), "_sdk_mcp_bridges", None)
    if not isinstance(bridges, dict):
        return False
    bridge = bridges.get(server)
    if isinstance(bridge, DirectRoute):
        return True
    if not all(callable(getattr(bridge, m, None)) for m in ("handle", "aclose")):
        return False
    bridges[server] = DirectRoute(tools, bridge)  # type: ignore[arg-type]  # checked above
    return True


def after_result(fn: Callable[[], object]) -> None:
    """Run ``fn`` (bookkeeping: a log line) once the result the running tool call is about
    to return has gone to the CLI, not before it (issue 14.4).

    The SDK writes a tool result one loop turn after the handler returns (its transport's
    write lock yields once), so ``fn`` runs two turns from now: measured, a log line
    written before the result cost the asker 0.15-0.4 ms (JSON, two log files and the
    console). On another event loop than asyncio, or none, ``fn`` runs at once."""
    try:
        loop = asyncio.get_running_loop()
        import sniffio  # noqa: PLC0415 - anyio's own dependency

        if sniffio.current_async_library() != "asyncio":
            raise RuntimeError("not asyncio")
    except RuntimeError:
        fn()
        return
    loop.call_soon(loop.call_soon, fn)


def _tool_error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "is_error": True}


def _rpc_result(request_id: Any, out: dict[str, Any]) -> dict[str, Any]:
    result = {"content": list(out.get("content", [])), "isError": bool(out.get("is_error"))}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
