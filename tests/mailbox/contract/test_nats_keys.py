"""Listing the keys of a big bucket (core.NatsCore._keys): the server answers a stream
info request with at most 100,000 subjects, whatever the filter matches. A team's
listing, purge or sweep past that many keys saw only the first 100,000: messages
beyond were never listed nor swept, hints beyond never claimed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from natsserver import NatsServer

from orchestrator.mailbox.nats import NatsConfig, NatsMailbox

MORE_THAN_A_PAGE = 100_500


async def test_every_key_is_listed_past_the_servers_page(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "s").start()  # its own: the bucket is big
    try:
        config = NatsConfig((server.url,), namespace=f"k{uuid.uuid4().hex[:8]}")
        async with NatsMailbox(config) as mb:
            js = mb.nc.jetstream()
            prefix = f"$KV.{config.namespace}."
            for start in range(0, MORE_THAN_A_PAGE, 2000):  # raw publishes: fast enough
                acks = [
                    await js.publish_async(f"{prefix}x.{i:07d}", b"")
                    for i in range(start, min(MORE_THAN_A_PAGE, start + 2000))
                ]
                await asyncio.gather(*acks)
            await mb.kv.put("y.other", b"")
            keys = await mb._keys("x.")
            assert len(keys) == MORE_THAN_A_PAGE
            assert keys == [f"x.{i:07d}" for i in range(MORE_THAN_A_PAGE)]
            assert await mb._keys("y.") == ["y.other"]
            assert await mb._keys("z.") == []
    finally:
        server.stop()
