"""The relay's tools and its direct tool route, against a fake of the queue (issue 15.5).

Fast: no claude CLI, no database. The relay code under test is the real one
(``orchestrator.relay``, ``orchestrator.relay_route``); only the queue is a fake
that keeps its messages in memory and records the calls made to it. The real-CLI
tests in ``test_team_relay.py`` stay the end-to-end tier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator import errors
from orchestrator.mailbox import AgentInfo, Message
from orchestrator.prompts import SERVER
from orchestrator.relay import Relay, Turn
from orchestrator.relay_route import DirectRoute, install
from orchestrator.roster import Roster
from orchestrator.roster._build import parse_roster


class FakeQueue:
    """The part of ``AsyncMailboxBackend`` the relay uses, in memory."""

    def __init__(self, states: dict[str, str]) -> None:
        self.registry = {
            n: AgentInfo(n, f"{n} does things", None, s, None, 0.0, {}) for n, s in states.items()
        }
        self.messages: dict[str, Message] = {}
        self.replies: dict[str, Message] = {}
        self._answered: dict[str, anyio.Event] = {}
        self.waits_cleared: list[str] = []
        self.refuse: errors.OrchestratorError | None = None  # what request() raises next
        self.asked = anyio.Event()  # set by the first request

    def _new(self, kind: str, sender: str, to: str, body: Any, **kw: Any) -> Message:
        mid = f"m{len(self.messages) + 1}"
        fields: dict[str, Any] = dict.fromkeys(Message.__dataclass_fields__)
        fields.update(id=mid, kind=kind, sender=sender, recipient=to, body=body, status="ready")
        fields.update(attempts=0, max_attempts=3, available_at=0.0, created_at=0.0, **kw)
        msg = Message(**fields)
        self.messages[mid] = msg
        return msg

    def _known(self, to: str) -> None:
        if to not in self.registry:
            raise errors.RecipientUnknown(to, sorted(self.registry))

    async def agents(self) -> list[AgentInfo]:
        return list(self.registry.values())

    async def agent(self, name: str) -> AgentInfo | None:
        return self.registry.get(name)

    async def send(
        self, sender: str, to: str, body: Any, *, cause_id: str | None = None
    ) -> Message:
        self._known(to)
        return self._new("notice", sender, to, body, cause_id=cause_id)

    async def request(
        self, sender: str, to: str, body: Any, *, cause_id: str | None = None, wait_s: float
    ) -> Message:
        if self.refuse is not None:
            raise self.refuse
        self._known(to)
        msg = self._new("request", sender, to, body, cause_id=cause_id)
        self._answered[msg.id] = anyio.Event()
        self.asked.set()
        return msg

    async def wait_for_reply(self, request_id: str, timeout_s: float) -> Message:
        try:
            with anyio.move_on_after(timeout_s):
                await self._answered[request_id].wait()
                return self.replies[request_id]
            raise errors.RequestTimeout(request_id, timeout_s)
        finally:
            self.waits_cleared.append(request_id)  # as the queue clears its wait-for edge

    async def get(self, message_id: str) -> Message:
        if message_id not in self.messages:
            raise errors.MessageNotFound(message_id)
        return self.messages[message_id]

    async def reply(self, request_id: str, sender: str, body: Any) -> Message:
        request = await self.get(request_id)
        if request_id in self.replies:
            raise errors.AlreadyReplied(request_id)
        msg = self._new("response", sender, request.sender, body, correlation_id=request_id)
        self.replies[request_id] = msg
        if request_id in self._answered:
            self._answered[request_id].set()
        return msg

    async def broadcast(self, sender: str, body: Any) -> list[Message]:
        return [
            self._new("notice", sender, n, body)
            for n in self.registry
            if n not in (sender, "supervisor")
        ]


def roster(tmp_path: Path, can_message: str = "") -> Roster:
    text = f"""
agents:
  alpha:
    prompt: You are alpha.
    description: the asker
{can_message}
  beta:
    prompt: You are beta.
    description: the answerer
  gamma:
    prompt: You are gamma.
"""
    return parse_roster(text, tmp_path / "agents.yaml", environ={})


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue({"alpha": "ready", "beta": "ready", "gamma": "ready", "script": "ready"})


@pytest.fixture
def relay(queue: FakeQueue, tmp_path: Path) -> Relay:
    r = roster(tmp_path)
    return Relay("alpha", queue, lambda: r)  # type: ignore[arg-type]  # the fake queue


def text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def answer_when_asked(queue: FakeQueue, by: str, body: Any) -> None:
    await queue.asked.wait()
    request = next(m for m in queue.messages.values() if m.kind == "request")
    await queue.reply(request.id, by, body)


# --- the tools ----------------------------------------------------------------


async def test_send_is_stamped_with_the_relays_agent_and_the_turns_cause(
    relay: Relay, queue: FakeQueue
) -> None:
    cause = await queue.send("user", "alpha", "go")
    relay.turn = Turn([cause])
    result = await relay.send({"to": "beta", "message": "hi", "sender": "gamma"})
    assert "is_error" not in result
    sent = queue.messages[text(result).split("message id ")[1].rstrip(")")]
    assert (sent.sender, sent.recipient, sent.body, sent.cause_id) == (
        "alpha",
        "beta",
        "hi",
        cause.id,
    )


async def test_ask_returns_the_answer_text_and_counts_the_wait(
    relay: Relay, queue: FakeQueue
) -> None:
    turn = Turn([])
    relay.turn = turn
    seen_in_flight: list[int] = []

    async def answer() -> None:
        await answer_when_asked(queue, "beta", {"text": "forty-two"})
        seen_in_flight.append(turn.asks_in_flight)

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer)
        result = await relay.ask({"to": "beta", "message": "the answer?"})
    assert text(result) == "forty-two"
    assert "is_error" not in result
    assert seen_in_flight == [1]
    assert turn.asks_in_flight == 0
    request = next(m for m in queue.messages.values() if m.kind == "request")
    assert (request.sender, request.recipient) == ("alpha", "beta")


@pytest.mark.parametrize(
    ("args", "state", "code"),
    [
        ({"to": "alpha", "message": "me?"}, "ready", "would_deadlock"),
        ({"to": "nobody", "message": "x"}, "ready", "recipient_unknown"),
        ({"to": "beta", "message": "x"}, "failed", "recipient_failed"),
        ({"to": "beta", "message": "x", "timeout_s": 0.01}, "ready", "timeout"),
    ],
)
async def test_ask_failures_come_back_as_tool_errors_with_their_code(
    relay: Relay, queue: FakeQueue, args: dict[str, Any], state: str, code: str
) -> None:
    queue.registry["beta"] = AgentInfo("beta", "", None, state, None, 0.0, {})
    result = await relay.ask(args)
    assert result.get("is_error") is True
    assert text(result).startswith(f"error {code}:")


async def test_ask_to_a_paused_peer_says_until_when(relay: Relay, queue: FakeQueue) -> None:
    meta = {"budget": {"paused": "spent $2.10 of $2.00 per 1h; resumes at 10:00"}}
    queue.registry["beta"] = AgentInfo("beta", "", None, "paused", None, 0.0, meta)
    result = await relay.ask({"to": "beta", "message": "x"})
    assert text(result) == "error budget_exceeded: request '' failed (budget_exceeded): " + str(
        meta["budget"]["paused"]
    )
    assert not any(m.kind == "request" for m in queue.messages.values())


async def test_a_refused_request_is_a_tool_error(relay: Relay, queue: FakeQueue) -> None:
    queue.refuse = errors.WouldDeadlock("", "beta is waiting on alpha")
    result = await relay.ask({"to": "beta", "message": "x"})
    assert text(result).startswith("error would_deadlock:")


async def test_can_message_refuses_others_and_unknown_names_say_so(
    queue: FakeQueue, tmp_path: Path
) -> None:
    r = roster(tmp_path, "    can_message: [beta]")
    relay = Relay("alpha", queue, lambda: r)  # type: ignore[arg-type]
    assert text(await relay.send({"to": "gamma", "message": "x"})).startswith("error not_allowed:")
    assert text(await relay.ask({"to": "gamma", "message": "x"})).startswith("error not_allowed:")
    unknown = await relay.send({"to": "zeta", "message": "x"})
    assert text(unknown).startswith("error recipient_unknown:")
    assert "is_error" not in await relay.send({"to": "beta", "message": "x"})
    assert queue.messages
    assert all(m.recipient == "beta" for m in queue.messages.values())


async def test_reply_only_to_requests_addressed_to_this_agent(
    relay: Relay, queue: FakeQueue
) -> None:
    mine = await queue.request("beta", "alpha", "q1", wait_s=1)
    theirs = await queue.request("beta", "gamma", "q2", wait_s=1)
    relay.turn = Turn([mine])
    ok = await relay.reply({"request_id": mine.id, "message": "a1"})
    assert "is_error" not in ok
    assert relay.turn.replied == {mine.id}
    assert queue.replies[mine.id].sender == "alpha"
    refused = await relay.reply({"request_id": theirs.id, "message": "a2"})
    assert text(refused).startswith("error not_allowed:")
    assert theirs.id not in queue.replies
    again = await relay.reply({"request_id": mine.id, "message": "a3"})
    assert text(again).startswith("error already_replied:")
    missing = await relay.reply({"request_id": "nope", "message": "x"})
    assert text(missing).startswith("error not_found:")


async def test_agents_lists_the_roster_and_registered_scripts(relay: Relay) -> None:
    rows = {row["name"]: row for row in json.loads(text(await relay.agents({})))}
    assert set(rows) == {"alpha", "beta", "gamma", "script"}
    assert rows["alpha"]["you"] is True
    assert rows["beta"]["you"] is False
    assert rows["beta"]["description"] == "the answerer"
    assert rows["beta"]["state"] == "ready"
    assert "you" not in rows["script"]


async def test_broadcast_reaches_everyone_else(relay: Relay, queue: FakeQueue) -> None:
    result = await relay.broadcast({"message": "hello all"})
    assert text(result) == "broadcast to 3 agents: beta, gamma, script"
    assert {m.sender for m in queue.messages.values()} == {"alpha"}


# --- the direct route -------------------------------------------------------------


class FakeBridge:
    """The SDK's bridge behind the route: records what it is given."""

    def __init__(self) -> None:
        self.handled: list[dict[str, Any]] = []
        self.closed = False

    async def handle(self, message: dict[str, Any]) -> dict[str, Any] | None:
        self.handled.append(message)
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": {"from": "bridge"}}

    async def aclose(self) -> None:
        self.closed = True


def call(rid: int, name: str, arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def test_route_answers_tool_calls_and_passes_the_rest_to_the_bridge(
    relay: Relay, queue: FakeQueue
) -> None:
    bridge = FakeBridge()
    route = DirectRoute(relay.tools(), bridge)
    out = await route.handle(call(7, "send", {"to": "beta", "message": "hi"}))
    assert out is not None
    assert out["id"] == 7
    assert out["result"]["isError"] is False
    assert out["result"]["content"][0]["text"].startswith("sent to beta")
    assert [m.body for m in queue.messages.values()] == ["hi"]
    for other in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ):
        assert await route.handle(other) == {
            "jsonrpc": "2.0",
            "id": other.get("id"),
            "result": {"from": "bridge"},
        }
    assert [m["method"] for m in bridge.handled] == [
        "initialize",
        "tools/list",
        "notifications/initialized",
    ]
    await route.aclose()
    assert bridge.closed


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("send", {"to": "beta"}, "Input validation error: 'message' is a required property"),
        ("send", {"to": 3, "message": "x"}, "Input validation error: 3 is not of type 'string'"),
        ("send", "not an object", "Input validation error:"),
        ("shout", {}, "Tool 'shout' not found"),
    ],
)
async def test_route_turns_bad_calls_into_tool_errors(
    relay: Relay, queue: FakeQueue, name: str, arguments: Any, says: str
) -> None:
    out = await DirectRoute(relay.tools(), FakeBridge()).handle(call(3, name, arguments))
    assert out is not None
    assert out["result"]["isError"] is True
    assert out["result"]["content"][0]["text"].startswith(says)
    assert not queue.messages


async def test_route_reports_a_handler_that_raises(relay: Relay, queue: FakeQueue) -> None:
    async def boom(_args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the handler broke")

    tools = relay.tools()
    tools[0] = type(tools[0])(tools[0].name, tools[0].description, tools[0].input_schema, boom)
    out = await DirectRoute(tools, FakeBridge()).handle(call(1, tools[0].name, {}))
    assert out is not None
    assert out["result"] == {
        "content": [{"type": "text", "text": "the handler broke"}],
        "isError": True,
    }


async def test_route_cancels_a_waiting_ask_named_by_a_cancellation(
    relay: Relay, queue: FakeQueue
) -> None:
    bridge = FakeBridge()
    route = DirectRoute(relay.tools(), bridge)
    relay.turn = turn = Turn([])
    answers: list[dict[str, Any] | None] = []

    async def ask() -> None:
        answers.append(await route.handle(call(9, "ask", {"to": "beta", "message": "wait"})))

    with anyio.fail_after(10):  # a cancellation the route ignored would hang here
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await queue.asked.wait()
            duplicate = await route.handle(call(9, "ask", {"to": "beta", "message": "again"}))
            assert duplicate is not None
            assert duplicate["error"]["code"] == -32600
            cancel = {"requestId": 9, "reason": "user interrupted"}
            notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}
            assert await route.handle(notice) is None
    assert answers == [
        {"jsonrpc": "2.0", "id": 9, "error": {"code": 0, "message": "Request cancelled"}}
    ]
    assert queue.waits_cleared == ["m1"]
    assert turn.asks_in_flight == 0
    assert bridge.handled == []  # the cancellation was the route's, not passed on
    late = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
    await route.handle(late)  # a call it no longer holds: the bridge's business
    assert bridge.handled == [late]


async def test_install_puts_the_route_in_front_of_the_sdks_bridge(relay: Relay) -> None:
    class Query:
        def __init__(self) -> None:
            self._sdk_mcp_bridges: dict[str, Any] = {SERVER: FakeBridge(), "other": FakeBridge()}

    class Client:
        _query = Query()

    client = Client()
    bridge = client._query._sdk_mcp_bridges[SERVER]
    assert install(client, SERVER, relay.tools())  # type: ignore[arg-type]
    route = client._query._sdk_mcp_bridges[SERVER]
    assert isinstance(route, DirectRoute)
    assert isinstance(client._query._sdk_mcp_bridges["other"], FakeBridge)
    assert install(client, SERVER, relay.tools())  # type: ignore[arg-type]  # idempotent
    assert client._query._sdk_mcp_bridges[SERVER] is route
    await route.aclose()
    assert bridge.closed
    assert not install(object(), SERVER, relay.tools())  # type: ignore[arg-type]
