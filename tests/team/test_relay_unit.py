"""The relay's tools and its direct tool route, without a claude CLI (issue 15.5).

Fast: the relay code under test is the real one (``orchestrator.relay``,
``orchestrator.relay_route``) on the real queue, a SQLite file in tmp_path; only
the SDK's MCP bridge behind the route is a double. The real-CLI tests in
``test_team_relay.py`` and ``test_relay_route.py`` stay the end-to-end tier.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from orchestrator.mailbox import AsyncMailbox, Message
from orchestrator.names import MAX_DESCRIPTION_CHARS
from orchestrator.prompts import SERVER
from orchestrator.relay import Relay, Turn
from orchestrator.relay_route import DirectRoute, install
from orchestrator.roster import Roster
from orchestrator.roster._build import parse_roster


async def messages(queue: AsyncMailbox, kind: str | None = None) -> list[Message]:
    """Everything in the queue (of one kind), oldest first."""
    found = await queue.list(limit=1000)
    return sorted((m for m in found if kind is None or m.kind == kind), key=lambda m: m.id)


def waits(db: Path) -> int:
    """The wait-for edges in the file, read by a plain sqlite3 connection."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM waits").fetchone()[0])
    finally:
        conn.close()


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
async def queue(tmp_path: Path) -> AsyncIterator[AsyncMailbox]:
    q = await AsyncMailbox(tmp_path / "team.db").open()
    for name in ("alpha", "beta", "gamma", "script"):
        await q.register(name, f"{name} does things", state="ready")
    yield q
    await q.aclose()


@pytest.fixture
def relay(queue: AsyncMailbox, tmp_path: Path) -> Relay:
    r = roster(tmp_path)
    return Relay("alpha", queue, lambda: r)


def text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def answer_when_asked(queue: AsyncMailbox, by: str, body: Any) -> None:
    assert await queue.wait_for_messages(by, 10)
    (request,) = await queue.claim(by, owner=by)
    await queue.reply(request.id, by, body)
    await queue.ack([request.id], owner=by)


# --- the tools ----------------------------------------------------------------


async def test_send_is_stamped_with_the_relays_agent_and_the_turns_cause(
    relay: Relay, queue: AsyncMailbox
) -> None:
    cause = await queue.send("user", "alpha", "go")
    relay.turn = Turn([cause])
    result = await relay.send({"to": "beta", "message": "hi", "sender": "gamma"})
    assert "is_error" not in result
    sent = await queue.get(text(result).split("message id ")[1].rstrip(")"))
    assert (sent.sender, sent.recipient, sent.body, sent.cause_id) == (
        "alpha",
        "beta",
        "hi",
        cause.id,
    )


async def test_ask_returns_the_answer_text_and_counts_the_wait(
    relay: Relay, queue: AsyncMailbox
) -> None:
    turn = Turn([])
    relay.turn = turn
    seen_in_flight: list[int] = []

    async def answer() -> None:
        with anyio.fail_after(10):
            # the asker counts its wait, then is answered (the relay has no event for it)
            while turn.asks_in_flight == 0:  # noqa: ASYNC110
                await anyio.sleep(0.001)
        seen_in_flight.append(turn.asks_in_flight)
        await answer_when_asked(queue, "beta", {"text": "forty-two"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer)
        result = await relay.ask({"to": "beta", "message": "the answer?"})
    assert text(result) == "forty-two"
    assert "is_error" not in result
    assert seen_in_flight == [1]
    assert turn.asks_in_flight == 0
    (request,) = await messages(queue, "request")
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
    relay: Relay, queue: AsyncMailbox, args: dict[str, Any], state: str, code: str
) -> None:
    await queue.update_agent("beta", state=state)
    result = await relay.ask(args)
    assert result.get("is_error") is True
    assert text(result).startswith(f"error {code}:")


@pytest.mark.parametrize("timeout_s", [-1, -0.5, float("inf"), float("nan"), 1e300, "soon"])
async def test_an_ask_with_an_impossible_wait_is_refused_unsent(
    relay: Relay, queue: AsyncMailbox, timeout_s: object
) -> None:
    """A negative wait timed out at once while the request stayed queued: the peer did the
    work for nobody. (JSON from the CLI cannot carry inf or NaN; checked all the same.) A
    wait past ten years was sent; text that is no number raised out of the tool."""
    result = await relay.ask({"to": "beta", "message": "x", "timeout_s": timeout_s})
    assert text(result).startswith("error usage: timeout_s ")  # what, the value, the range
    assert await messages(queue, "request") == []


async def test_ask_to_a_paused_peer_says_until_when(relay: Relay, queue: AsyncMailbox) -> None:
    meta = {"budget": {"paused": "spent $2.10 of $2.00 per 1h; resumes at 10:00"}}
    await queue.update_agent("beta", state="paused", meta=meta)
    result = await relay.ask({"to": "beta", "message": "x"})
    assert text(result) == "error budget_exceeded: " + str(meta["budget"]["paused"])
    assert await messages(queue, "request") == []


async def test_ask_to_a_stopped_peer_is_refused_and_a_send_still_queues(
    relay: Relay, queue: AsyncMailbox
) -> None:
    """Found by review: an ask to a peer the operator stopped was sent, and the asker waited
    as long as its model chose (86,400 s there), its turn and inbox stalled with it."""
    await queue.update_agent("beta", state="stopped")
    result = await relay.ask({"to": "beta", "message": "x", "timeout_s": 86400})
    assert text(result) == (
        "error recipient_stopped: 'beta' is stopped (not running) and would answer only once "
        "someone starts it; send it a notice instead (it waits in its inbox), or ask another agent"
    )
    assert await messages(queue, "request") == []
    assert not (await relay.send({"to": "beta", "message": "later"})).get("is_error")


async def test_a_refused_request_is_a_tool_error(relay: Relay, queue: AsyncMailbox) -> None:
    await queue.request("beta", "alpha", "busy?", wait_s=60)  # beta now waits on alpha
    result = await relay.ask({"to": "beta", "message": "x"})
    assert text(result).startswith("error would_deadlock:")


async def test_can_message_refuses_others_and_unknown_names_say_so(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    r = roster(tmp_path, "    can_message: [beta]")
    relay = Relay("alpha", queue, lambda: r)
    assert text(await relay.send({"to": "gamma", "message": "x"})).startswith("error not_allowed:")
    assert text(await relay.ask({"to": "gamma", "message": "x"})).startswith("error not_allowed:")
    unknown = await relay.send({"to": "zeta", "message": "x"})
    assert text(unknown).startswith("error recipient_unknown:")
    assert "is_error" not in await relay.send({"to": "beta", "message": "x"})
    sent = await messages(queue)
    assert [m.recipient for m in sent] == ["beta"]


async def test_reply_only_to_requests_addressed_to_this_agent(
    relay: Relay, queue: AsyncMailbox
) -> None:
    mine = await queue.request("beta", "alpha", "q1", wait_s=1)
    theirs = await queue.request("beta", "gamma", "q2", wait_s=1)
    relay.turn = Turn([mine])
    ok = await relay.reply({"request_id": mine.id, "message": "a1"})
    assert "is_error" not in ok
    assert relay.turn.replied == {mine.id}
    answer = await queue.find_reply(mine.id)
    assert answer is not None
    assert answer.sender == "alpha"
    refused = await relay.reply({"request_id": theirs.id, "message": "a2"})
    assert text(refused).startswith("error not_allowed:")
    assert await queue.find_reply(theirs.id) is None
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


async def test_broadcast_reaches_everyone_else(relay: Relay, queue: AsyncMailbox) -> None:
    result = await relay.broadcast({"message": "hello all"})
    assert text(result) == "broadcast to 3 agents: beta, gamma, script"
    sent = await messages(queue)
    assert sorted(m.recipient for m in sent) == ["beta", "gamma", "script"]
    assert {m.sender for m in sent} == {"alpha"}


async def test_broadcast_reaches_only_whom_can_message_allows(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    """can_message limits broadcast as it limits send and ask; the result names who was
    left out, and the ones reached still get a broadcast (not a plain notice)."""
    r = roster(tmp_path, "    can_message: [beta, user]")
    relay = Relay("alpha", queue, lambda: r)
    assert (await relay.send({"to": "gamma", "message": "x"}))["is_error"] is True
    result = await relay.broadcast({"message": "to all"})
    assert text(result) == (
        "broadcast to 1 agents: beta; not to gamma, script (not in your can_message)"
    )
    sent = await messages(queue)
    assert [(m.recipient, m.kind, m.sender) for m in sent] == [("beta", "broadcast", "alpha")]


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
    relay: Relay, queue: AsyncMailbox
) -> None:
    bridge = FakeBridge()
    route = DirectRoute(relay.tools(), bridge)
    out = await route.handle(call(7, "send", {"to": "beta", "message": "hi"}))
    assert out is not None
    assert out["id"] == 7
    assert out["result"]["isError"] is False
    assert out["result"]["content"][0]["text"].startswith("sent to beta")
    assert [m.body for m in await messages(queue)] == ["hi"]
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


async def test_an_asks_answer_is_logged_after_its_tool_result_is_written(
    relay: Relay, queue: AsyncMailbox
) -> None:
    """Issue 14.4: the "answered" log line (JSON, two log files, the console: 0.15-0.4 ms
    measured) is written once the tool result has gone to the CLI, not before it: the
    asking agent's model waits for the result, not for our bookkeeping. The line is
    still written, whole."""
    steps: list[str] = []

    class Log:
        def info(self, event: str, **fields: Any) -> None:
            steps.append(f"{event} {fields.get('body', '')}".strip())

        warning = info

    relay.log = Log()  # type: ignore[assignment]
    route = DirectRoute(relay.tools(), FakeBridge())

    async def sdk() -> None:  # as the SDK answers the CLI's control request
        out = await route.handle(call(5, "ask", {"to": "beta", "message": "q"}))
        assert out is not None
        async with anyio.Lock():  # its transport.write, before the bytes go out
            steps.append(f"tool result written: {out['result']['content'][0]['text']}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sdk)
            await answer_when_asked(queue, "beta", "forty-two")
        while not any(s.startswith("answered") for s in steps):
            await anyio.lowlevel.checkpoint()
    assert steps == ["asked q", "tool result written: forty-two", "answered forty-two"]


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
    relay: Relay, queue: AsyncMailbox, name: str, arguments: Any, says: str
) -> None:
    out = await DirectRoute(relay.tools(), FakeBridge()).handle(call(3, name, arguments))
    assert out is not None
    assert out["result"]["isError"] is True
    assert out["result"]["content"][0]["text"].startswith(says)
    assert await messages(queue) == []


async def test_route_reports_a_handler_that_raises(relay: Relay, queue: AsyncMailbox) -> None:
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
    relay: Relay, queue: AsyncMailbox, tmp_path: Path
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
            assert await queue.wait_for_messages("beta", 10)
            assert waits(tmp_path / "team.db") == 1  # alpha waits on beta
            duplicate = await route.handle(call(9, "ask", {"to": "beta", "message": "again"}))
            assert duplicate is not None
            assert duplicate["error"]["code"] == -32600
            cancel = {"requestId": 9, "reason": "user interrupted"}
            notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}
            assert await route.handle(notice) is None
    assert answers == [
        {"jsonrpc": "2.0", "id": 9, "error": {"code": 0, "message": "Request cancelled"}}
    ]
    assert waits(tmp_path / "team.db") == 0  # the cancelled ask cleared its edge
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


def test_the_routes_quick_schema_check_never_accepts_what_jsonschema_refuses() -> None:
    """The route recognises a valid call to a plain schema without jsonschema (issue
    14.4: 50-150 us per call); whatever it accepts, jsonschema accepts too, so every bad
    call still gets jsonschema's verdict and message. A schema with any other keyword is
    left to jsonschema alone."""
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]

    from orchestrator.prompts import TOOL_SPECS
    from orchestrator.relay_route import _Plain

    values: list[Any] = ["x", "", 3, 2.5, -1, True, False, None, [], {}, ["a"], {"a": 1}]
    keys = ["to", "message", "timeout_s", "request_id", "other"]
    calls: list[Any] = [None, "text", 3, [], [{"to": "x"}]]
    for n, key in enumerate(keys):  # each key alone, and with every other key set right
        for value in values:
            calls.append({key: value})
            right = {"to": "b", "message": "m", "timeout_s": 5, "request_id": "r"}
            calls.append({**right, key: value})
            calls.append({k: v for k, v in right.items() if k != keys[n - 1]} | {key: value})
    accepted = 0
    for name, (_description, schema) in TOOL_SPECS.items():
        plain = _Plain.of(schema)
        assert plain is not None, name
        validator = Draft7Validator(schema)
        for args in calls:
            if plain.accepts(args):
                accepted += 1
                assert validator.is_valid(args), (name, args)
    assert accepted > 50  # it does accept the valid calls
    for other in (
        {"type": "object", "additionalProperties": False},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"n": {"type": ["string", "null"]}}},
        {"type": "array"},
    ):
        assert _Plain.of(other) is None, other


async def test_agents_clips_a_long_description_already_stored(
    relay: Relay, queue: AsyncMailbox
) -> None:
    """Regression (review B.5): descriptions of any length reached every agent's `agents`
    tool (ten of 120 KB made its result too big for the model). The CLI now refuses one over
    MAX_DESCRIPTION_CHARS; what plain SQL or an older version stored is clipped here."""
    await queue.register("script", "x" * 120_000, state="ready")
    rows = {row["name"]: row for row in json.loads(text(await relay.agents({})))}
    shown = rows["script"]["description"]
    assert shown.startswith("x" * MAX_DESCRIPTION_CHARS)
    assert shown.endswith("(119,000 characters left out)")
    assert rows["beta"]["description"] == "the answerer"


async def test_an_unknown_recipient_lists_only_names_a_message_can_go_to(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    """The tools' unknown-recipient error listed `supervisor` (its row, written by a running
    team, is in the registry), and a send to it was taken: "sent to supervisor", read by
    nobody but the control loop. As the CLI's `send` since 9c094c2: only participants
    listed, and the supervisor refused. With can_message, `user` outside it is not
    allowed, not unknown (the list left the user out)."""
    await queue.register_supervisor(4242, {})
    relay = Relay("alpha", queue, lambda: roster(tmp_path))
    participants = "user, alpha, beta, gamma, script"
    for tool in (relay.send, relay.ask):
        for to in ("nosuch", "Bad Name"):
            said = text(await tool({"to": to, "message": "x"}))
            assert said == f"error recipient_unknown: unknown recipient {to!r}; known agents: " + (
                participants
            )
        refused = await tool({"to": "supervisor", "message": "x"})
        assert refused.get("is_error") is True
        assert text(refused) == (
            "error reserved_name: 'supervisor' is not a participant (it runs the team and "
            f"reads no messages); message the user or an agent: {participants}"
        )
    assert await messages(queue) == []
    limited = Relay("alpha", queue, lambda: roster(tmp_path, "    can_message: [beta]"))
    assert text(await limited.send({"to": "user", "message": "x"})).startswith(
        "error not_allowed: 'alpha' may not message 'user'"
    )


async def test_an_agent_replies_to_a_plain_sql_request_with_its_own_id(
    relay: Relay, queue: AsyncMailbox, tmp_path: Path
) -> None:
    """Found by review: queue/README.md's plain-SQL writers may set a message's id (the
    column is TEXT; a UUID is the usual choice, to know it before the insert). An agent
    handed such a request could not answer it: the `reply` tool refused the id as one no
    message can have ("not_found"), and the asker waited out its timeout."""
    uuid = "9b2f6c1e-4c1a-4f7e-9d1e-2A6F3B7C8D90"
    with sqlite3.connect(tmp_path / "team.db") as db:
        db.execute(
            "INSERT INTO messages (id, kind, sender, recipient, body)"
            " VALUES (?, 'request', 'script', 'alpha', '\"ping\"')",
            (uuid,),
        )
    mine = await queue.get(uuid)
    relay.turn = Turn([mine])
    assert "is_error" not in await relay.reply({"request_id": uuid, "message": "pong"})
    answer = await queue.find_reply(uuid)
    assert answer is not None
    assert answer.body == "pong"
    for bad in ("", "a b", "x" * 129, "a\x1b[31m"):  # still none any writer's id is
        refused = await relay.reply({"request_id": bad, "message": "x"})
        assert text(refused).startswith("error not_found:")
