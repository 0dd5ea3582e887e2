"""The relay's tools on a real nats-server whose answers get lost: a write tried again
after the queue refused it is stored once, and the model reads queue_unavailable only
once the queue stayed out of reach past the relay's bound.

The proxy (natsproxy.AckCutter) forwards one publish to the server whole, then cuts
the relay's connection and turns its reconnects away: the server stored the write,
the relay never heard so. Each primitive's own retries are cut to 1 s here, so the
relay's tool sees the error and its own retry is what is tested."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from natsproxy import AckCutter
from natsserver import NatsServer

from orchestrator import outage
from orchestrator.mailbox import Message
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox, faults
from orchestrator.relay import Relay
from orchestrator.roster import Roster
from orchestrator.roster._build import parse_roster


@pytest.fixture
async def cutter(nats_server: NatsServer) -> AsyncIterator[AckCutter]:
    proxy = await AckCutter(nats_server.port).start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
def fast_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "RETRY_S", 1.0)  # a primitive gives up after 1 s
    monkeypatch.setattr(outage, "RETRY_S", 0.2)  # the relay tries again 0.2 s later


def _roster(tmp_path: Path) -> Roster:
    text = "agents:\n  alpha:\n    prompt: a\n  beta:\n    prompt: b\n"
    return parse_roster(text, tmp_path / "agents.yaml", environ={})


class Sides:
    """alpha's relay through the proxy; beta's side straight to the server."""

    def __init__(self, server: NatsServer, cutter: AckCutter) -> None:
        self.namespace = f"t{uuid.uuid4().hex[:8]}"
        self.direct = NatsConfig((server.url,), namespace=self.namespace)
        self.proxied = NatsConfig((cutter.url,), namespace=self.namespace, request_timeout_s=1)
        self.cutter = cutter

    async def call_while_cut(
        self, relay: Relay, tool: str, args: dict[str, Any], subject: str
    ) -> dict[str, Any]:
        """``relay.<tool>(args)`` with the ack of its first publish to ``subject`` lost and
        the queue out of reach until the relay has tried again (a retry under way)."""
        self.cutter.cut_after_publish_to(f"$KV.{self.namespace}.{subject}")
        out: list[dict[str, Any]] = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                out.append(await getattr(relay, tool)(args))

            tg.start_soon(call)
            with anyio.fail_after(60):
                await self.cutter.cut.wait()
                while relay._outage.since is None:  # noqa: ASYNC110 - no event says it
                    await anyio.sleep(0.02)  # the tool heard the error: it tries again
            await self.cutter.release()
        return out[0]


async def test_a_send_whose_ack_was_lost_is_tried_again_and_stored_once(
    nats_server: NatsServer, cutter: AckCutter, fast_outage: None, tmp_path: Path
) -> None:
    """The relay's send is stored, its answer lost, the queue out of reach past the
    primitive's retries: the tool tries again under the id it drew once and the model
    reads 'sent', with one message in beta's inbox. It used to return queue_unavailable
    to the model (which would send again: twice); a retry drawing a new id would have
    stored it twice."""
    sides = Sides(nats_server, cutter)
    async with NatsMailbox(sides.direct) as beta, NatsMailbox(sides.proxied) as alpha:
        await beta.register("beta")
        relay = Relay("alpha", alpha, lambda: _roster(tmp_path))
        out = await sides.call_while_cut(relay, "send", {"to": "beta", "message": "hi"}, "m.")
        assert not out.get("is_error"), out
        inbox = await beta.list(recipient="beta")
    assert [m.body for m in inbox] == ["hi"]
    assert inbox[0].id in out["content"][0]["text"]


async def test_an_ask_whose_ack_was_lost_is_asked_once_and_answered(
    nats_server: NatsServer, cutter: AckCutter, fast_outage: None, tmp_path: Path
) -> None:
    """The same for ask: beta gets the question once, answers it, and the model reads
    the answer."""
    sides = Sides(nats_server, cutter)
    async with NatsMailbox(sides.direct) as beta, NatsMailbox(sides.proxied) as alpha:
        await beta.register("beta")
        relay = Relay("alpha", alpha, lambda: _roster(tmp_path))
        answered: list[Message] = []

        async def answer() -> None:
            while not (got := await beta.claim("beta", owner="beta-worker")):
                await beta.wait_for_messages("beta", 5)
            answered.append(await beta.reply(got[0].id, "beta", "forty-two"))
            await beta.ack([got[0].id], owner="beta-worker")

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            args = {"to": "beta", "message": "the answer?", "timeout_s": 60}
            out = await sides.call_while_cut(relay, "ask", args, "m.")
        assert out == {"content": [{"type": "text", "text": "forty-two"}]}
        questions = [m for m in await beta.list() if m.kind == "request"]
    assert len(questions) == 1


async def test_a_reply_whose_ack_was_lost_is_one_whole_reply(
    nats_server: NatsServer, cutter: AckCutter, fast_outage: None, tmp_path: Path
) -> None:
    """alpha's reply is stored (``r.<request>``), its answer lost before the rest of the
    reply was written: the tool's retry finds the request answered, by alpha, with these
    words, so the model reads 'reply sent', not already_replied; and the steps the first
    try did not get to (the response's copy that listings read) are done."""
    sides = Sides(nats_server, cutter)
    async with NatsMailbox(sides.direct) as beta, NatsMailbox(sides.proxied) as alpha:
        await beta.register("alpha")
        request = await beta.request("beta", "alpha", "ping?")
        relay = Relay("alpha", alpha, lambda: _roster(tmp_path))
        args = {"request_id": request.id, "message": "pong"}
        out = await sides.call_while_cut(relay, "reply", args, "r.")
        assert out == {"content": [{"type": "text", "text": "reply sent to beta"}]}
        responses = [m for m in await beta.list() if m.kind == "response"]
        assert [(m.correlation_id, m.body) for m in responses] == [(request.id, "pong")]
        assert (await beta.wait_for_reply(request.id, 0)).body == "pong"


async def test_a_queue_out_of_reach_past_the_bound_is_the_models_to_read(
    nats_server: NatsServer,
    cutter: AckCutter,
    fast_outage: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay tries again for outage.TOOL_RETRY_S, not forever: past it the model
    reads queue_unavailable, saying the server was lost."""
    monkeypatch.setattr(outage, "TOOL_RETRY_S", 2.0)
    sides = Sides(nats_server, cutter)
    async with NatsMailbox(sides.direct) as beta, NatsMailbox(sides.proxied) as alpha:
        await beta.register("beta")
        relay = Relay("alpha", alpha, lambda: _roster(tmp_path))
        cutter.cut_after_publish_to(f"$KV.{sides.namespace}.m.")  # and never released
        with anyio.fail_after(60):
            out = await relay.send({"to": "beta", "message": "hi"})
        await cutter.release()
    assert out["is_error"] is True
    assert out["content"][0]["text"].startswith("error queue_unavailable: ")
    assert "NATS server was lost" in out["content"][0]["text"]
