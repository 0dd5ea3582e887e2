"""A write whose ack is lost, for real: a proxy forwards the publish of a new message
to nats-server, then cuts the sender's connection before the server's answer comes
back. The sender tries again once it is back; the message must be stored once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from natsproxy import AckCutter
from natsserver import NatsServer

from orchestrator.mailbox import Message
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox

T = TypeVar("T")


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


async def _with_answer_lost(cutter: AckCutter, namespace: str, op: Callable[[], Awaitable[T]]) -> T:
    """Run ``op`` while the answer to its first write of a message record is lost: the
    server stores the change, the connection is cut before the answer, and it comes back
    once the write is in (so the caller's retry reads its own write)."""
    cutter.cut_after_publish_to(f"$KV.{namespace}.m.")
    result: list[T] = []
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            result.append(await op())

        tg.start_soon(run)
        with anyio.fail_after(30):
            await cutter.cut.wait()
        await cutter.release()
    return result[0]


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def sides(
    nats_server: NatsServer, cutter: AckCutter, namespace: str
) -> AsyncIterator[tuple[NatsMailbox, NatsMailbox]]:
    """(direct, proxied): the same bucket, the second through the proxy that cuts."""
    direct = NatsConfig((nats_server.url,), namespace=namespace)
    proxied = NatsConfig((cutter.url,), namespace=namespace, request_timeout_s=1)
    async with NatsMailbox(direct) as seen, NatsMailbox(proxied) as worker:
        await seen.register("bob")
        yield seen, worker


async def test_a_claim_whose_answer_is_lost_returns_the_message_it_leased(
    sides: tuple[NatsMailbox, NatsMailbox], cutter: AckCutter, namespace: str
) -> None:
    """The claim's compare-and-set was stored and its answer lost. The claim used to
    re-read, find the message leased (by itself) and return nothing: the message sat
    leased to a worker that did not know, an attempt counted, until its lease ran out."""
    seen, worker = sides
    m = await seen.send("alice", "bob", "job 1")
    got = await _with_answer_lost(
        cutter, namespace, lambda: worker.claim("bob", owner="w1", lease_s=600)
    )
    assert [(g.id, g.lease_owner, g.attempts) for g in got] == [(m.id, "w1", 1)]
    assert await seen.get(m.id) == got[0]


async def test_a_batch_ack_whose_first_answer_is_lost_acks_the_whole_batch(
    sides: tuple[NatsMailbox, NatsMailbox], cutter: AckCutter, namespace: str
) -> None:
    """The first ack's answer lost: it used to raise LeaseLost for the message it had
    acked, and the rest of the batch stayed leased (delivered again: twice to the model)."""
    seen, worker = sides
    a = await seen.send("alice", "bob", "A")
    b = await seen.send("alice", "bob", "B")
    assert len(await seen.claim("bob", owner="w", lease_s=600, limit=2)) == 2
    await _with_answer_lost(cutter, namespace, lambda: worker.ack([a.id, b.id], owner="w"))
    assert [(await seen.get(x.id)).status for x in (a, b)] == ["done", "done"]


async def test_a_nack_whose_answer_is_lost_gives_the_message_back(
    sides: tuple[NatsMailbox, NatsMailbox], cutter: AckCutter, namespace: str
) -> None:
    """It used to raise LeaseLost for the change it had made."""
    seen, worker = sides
    m = await seen.send("alice", "bob", "job")
    await seen.claim("bob", owner="w", lease_s=600)
    back = await _with_answer_lost(
        cutter, namespace, lambda: worker.nack(m.id, owner="w", error="try later")
    )
    assert (back.status, back.error_detail) == ("pending", "try later")
    assert [c.id for c in await seen.claim("bob", owner="w2")] == [m.id]


async def test_a_retry_whose_answer_is_lost_revives_the_message(
    sides: tuple[NatsMailbox, NatsMailbox], cutter: AckCutter, namespace: str
) -> None:
    """`queue retry` used to say "not dead" of the message it had just revived, and
    its error path deleted the revived message's hint: pending for ever, never claimed."""
    seen, worker = sides
    m = await seen.send("alice", "bob", "important", max_attempts=1)
    await seen.claim("bob", owner="w")
    await seen.nack(m.id, owner="w", error="boom")
    back = await _with_answer_lost(cutter, namespace, lambda: worker.retry(m.id))
    assert (back.status, back.attempts) == ("pending", 0)
    assert [c.id for c in await seen.claim("bob", owner="w2")] == [m.id]
