"""A write whose ack is lost, for real: a proxy forwards the publish of a new message
to nats-server, then cuts the sender's connection before the server's answer comes
back. The sender tries again once it is back; the message must be stored once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from natsproxy import AckCutter
from natsserver import NatsServer

from orchestrator.mailbox import Message
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox


@pytest.fixture
async def cutter(nats_server: NatsServer) -> AsyncIterator[AckCutter]:
    proxy = await AckCutter(nats_server.port).start()
    yield proxy
    await proxy.aclose()


async def test_a_send_whose_ack_is_lost_is_stored_once_though_claimed_before_the_retry(
    nats_server: NatsServer, cutter: AckCutter
) -> None:
    """The message reached the bucket, the sender never heard so, and bob claimed it
    before the sender was back: the sender's retry finds a record unlike the one it
    wrote (leased now). It is still the sender's message (same id, sender, time): the
    send returns it, and nothing is written again. The retry used to take the changed
    record for someone else's, purge the leased message's hint and write the message a
    second time under a new id: bob got it twice."""
    namespace = f"t{uuid.uuid4().hex[:8]}"
    direct = NatsConfig((nats_server.url,), namespace=namespace)
    proxied = NatsConfig((cutter.url,), namespace=namespace, request_timeout_s=1)
    async with NatsMailbox(direct) as bob_side, NatsMailbox(proxied) as alice_side:
        await bob_side.register("bob")
        cutter.cut_after_publish_to(f"$KV.{namespace}.m.")
        result: list[Message] = []
        async with anyio.create_task_group() as tg:

            async def send() -> None:
                result.append(await alice_side.send("alice", "bob", "just once"))

            tg.start_soon(send)
            with anyio.fail_after(30):
                await cutter.cut.wait()
                while not (claimed := await bob_side.claim("bob", owner="bob-worker")):
                    await bob_side.wait_for_messages("bob", 5)
            await cutter.release()
        stored = await bob_side.list(recipient="bob")
    assert [m.id for m in stored] == [claimed[0].id] == [result[0].id]
    assert stored[0].status == "leased"
