"""A cluster node restarted without its store, under an R1 bucket it hosted: the
cluster's meta layer still assigns the stream to that node, which makes it again,
empty, with the same creation time. Measured (nats-server 2.15.1, 3 nodes, replicas:
1): `stream info` went on answering with the same `created`, its messages 1 -> 0, and
check_store said nothing, for as long as it was asked: the loss of every row, message
and reply went unsaid (no `queue_store_lost`, no LOST in `ps`, the stopped agents'
rows gone until the next `up`). A stream's last sequence never goes down while it
lives (a purge keeps it): one lower than seen before is the same loss."""

from __future__ import annotations

import shutil
import time
import uuid

import anyio
import pytest
from natsserver import NatsCluster

from orchestrator import errors
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox

pytestmark = [pytest.mark.slow]


async def test_a_node_that_lost_the_r1_bucket_it_hosted_is_noticed(
    cluster: NatsCluster,
) -> None:
    namespace = f"wiped{uuid.uuid4().hex[:8]}"
    async with NatsMailbox(NatsConfig(cluster.urls, namespace=namespace)) as mb:
        await mb.register("bob")
        await mb.send("user", "bob", "before the loss")
        assert await mb.check_store() is None  # healthy: nothing to say
        info = await mb.nc.jetstream().stream_info(f"KV_{namespace}")
        assert info.cluster is not None
        assert info.cluster.leader is not None
        host = cluster.nodes[int(info.cluster.leader.removeprefix("n")) - 1]
        host.stop()
        shutil.rmtree(host.store / "js")
        host.start()
        said = None
        deadline = time.monotonic() + 60
        while said is None and time.monotonic() < deadline:
            await anyio.sleep(0.5)
            try:
                said = await mb.check_store()
            except errors.QueueUnavailable:  # the node coming back: asked again
                continue
        assert said is not None, "the emptied bucket went unnoticed"
        assert "lost" in said
        assert [a.name for a in await mb.agents()] == []  # it was lost indeed
        # Said once: the next checks, with the team writing again, say nothing.
        await mb.register("bob")
        assert await mb.check_store() is None
        assert await mb.check_store() is None
