"""The NATS client's tally of statuses (nats/tally.py), counted in records read and
requests sent, never in time: a second call reads only what was written since, and the
first read of a long queue is streamed, not a request per message."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from nats.aio.client import Client
from natsserver import NatsServer

from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.tally import STREAM_FROM


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[messages published by every NATS client of this process so far]"""
    count = [0]
    lock = threading.Lock()
    publish = Client.publish

    async def counted(self: Client, *args: Any, **kwargs: Any) -> None:
        with lock:
            count[0] += 1
        await publish(self, *args, **kwargs)

    monkeypatch.setattr(Client, "publish", counted)
    return count


async def test_the_tally_reads_what_changed_and_streams_its_first_read(
    nats_server: NatsServer, published: list[int]
) -> None:
    config = NatsConfig((nats_server.url,), namespace=f"tally{uuid.uuid4().hex[:8]}")
    n = STREAM_FROM + 40
    async with NatsMailbox(config) as writer, NatsMailbox(config) as reader:
        await writer.register("bob")
        for i in range(n):
            await writer.send("alice", "bob", i)
        before = published[0]
        assert await reader.status_counts() == {"pending": n, "leased": 0, "dead": 0}
        first = published[0] - before
        assert reader._tally.reads == n
        assert first < n // 4, f"{first} requests for the first read of {n} messages"

        before = published[0]
        assert (await reader.status_counts())["pending"] == n
        assert reader._tally.reads == n  # nothing written: nothing read
        quiet = published[0] - before

        (m,) = await writer.claim("bob", owner="w")
        await writer.ack([m.id], owner="w")
        before = published[0]
        assert await reader.status_counts() == {"pending": n - 1, "leased": 0, "dead": 0}
        assert reader._tally.reads == n + 1  # the one record written (twice) since
        assert published[0] - before == quiet + 1
