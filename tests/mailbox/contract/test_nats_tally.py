"""The NATS client's tally of statuses (nats/tally.py), counted in records read and
requests sent, never in time: a second call reads only what was written since, and the
first read of a long queue is streamed, not a request per message. Delete markers left
under message and edge keys are no records to it, and a sweep purges them."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from nats.aio.client import Client
from natsserver import NatsServer
from structlog.testing import capture_logs

from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.lease import AgentLeases
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


@pytest.mark.parametrize("n", [6, STREAM_FROM + 6], ids=["read", "streamed"])
async def test_a_deleted_message_key_is_counted_nowhere_and_not_warned_of(
    nats_server: NatsServer, n: int
) -> None:
    """A message key deleted with `nats kv del` (as the README says to, for a garbled
    record), or by an older version (before deletes purged their subject), leaves a
    delete marker: the tally read it as a garbled record, each process warning
    `queue_record_unreadable` ("not JSON") once per key: every `ps` and `top`, for
    every such key. Both first reads: one record a request, and streamed."""
    config = NatsConfig((nats_server.url,), namespace=f"tally{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as writer:
        await writer.register("bob")
        ids = [(await writer.send("alice", "bob", i)).id for i in range(n)]
        for message_id in ids[:3]:
            await writer.kv.delete(f"m.{message_id}")
    async with NatsMailbox(config) as reader:
        with capture_logs() as logs:
            counts = await reader.status_counts()
            again = await reader.status_counts()
    assert counts == again == {"pending": n - 3, "leased": 0, "dead": 0}
    assert [e for e in logs if e["event"] == "queue_record_unreadable"] == []


async def test_a_sweep_purges_the_delete_markers_under_message_and_edge_keys(
    nats_server: NatsServer,
) -> None:
    """Markers under message and wait-edge keys (`nats kv del`, an older version's
    deletes) stay in the stream's subject list: every listing (`queue ls`, a sweep, a
    purge, an ask's deadlock walk) read each one again, for good. A sweep purges them;
    the live records and a take's mark on a registry row (which guards the row) stay."""
    config = NatsConfig((nats_server.url,), namespace=f"tally{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as mb:
        await mb.register("bob")
        kept, deleted = [(await mb.send("alice", "bob", i)).id for i in range(2)]
        await mb.kv.delete(f"m.{deleted}")
        await mb.kv.put("w.0abc", b"{}")
        await mb.kv.delete("w.0abc")
        await mb.register("carol")
        await mb.unregister("carol")
        await AgentLeases(mb, "octy-supervisor:here").take("carol")  # marks a.carol
        assert await mb._keys("m.") == sorted([f"m.{kept}", f"m.{deleted}"])
        assert await mb._keys("w.") == ["w.0abc"]
        await mb.sweep()
        assert await mb._keys("m.") == [f"m.{kept}"]
        assert await mb._keys("w.") == []
        assert await mb._keys("a.") == ["a.bob", "a.carol"]
        assert [m.id for m in await mb.list()] == [kept]


async def test_a_sweep_leaves_a_record_written_over_a_marker_it_read(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ask made again under its id (a replayed turn) writes its wait edge over the
    marker a delete left there. A sweep in another process that read the marker just
    before purged the subject whole: the ask's live edge with it, and with it the
    deadlock walk's sight of that wait. Purged only up to the marker read now."""
    config = NatsConfig((nats_server.url,), namespace=f"tally{uuid.uuid4().hex[:8]}")
    edge = json.dumps({"waiter": "alice", "target": "bob", "expires_at": 4e9}).encode()
    async with NatsMailbox(config) as asker, NatsMailbox(config) as sweeper:
        await asker.kv.put("w.0abc", edge)
        await asker.kv.delete("w.0abc")
        scan = sweeper._scan

        async def scan_then_ask(prefix: str, **kwargs: Any) -> dict[str, bytes]:
            found = await scan(prefix, **kwargs)
            if prefix == "w.":  # the marker read absent; the ask writes its edge now
                assert await rec.create(asker.kv, "w.0abc", edge)
            return found

        monkeypatch.setattr(sweeper, "_scan", scan_then_ask)
        await sweeper.sweep()
        assert await rec.get(asker.kv, "w.0abc") is not None
        await asker.kv.delete("w.0abc")
        monkeypatch.setattr(sweeper, "_scan", scan)
        await sweeper.sweep()  # a marker alone is still purged
        assert await asker._keys("w.") == []
