"""A lost bucket read through JetStream's direct get says so, as through the API's.

A bucket made with ``allow_direct`` (as `nats kv add` makes one, and the client opens
such a bucket as it finds it) is read by direct get: a request to the stream's own
subject, which nobody answers once the stream is gone. That "no responders" is the one
an election gives, so the read was retried for the whole retry budget and then said
"the NATS server was lost ... nothing written before this error is lost", not the
bucket gone (StoreLost): the server is asked whether the stream exists, as after a
write that went unanswered.
"""

from __future__ import annotations

import uuid

import pytest
from nats.js.api import KeyValueConfig, StorageType
from natsserver import NatsServer

from orchestrator import errors
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox, faults


async def test_a_direct_read_of_a_lost_bucket_says_it_lost(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults, "RETRY_S", 2.0)  # before the fix: QueueUnavailable after it
    config = NatsConfig((nats_server.url,), namespace=f"t{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as first:  # the client's own nc, for the setup
        await first.nc.jetstream().delete_stream(f"KV_{config.namespace}")
        await first.nc.jetstream().create_key_value(
            KeyValueConfig(
                bucket=config.namespace, history=1, storage=StorageType.FILE, direct=True
            )
        )
    async with NatsMailbox(config) as mb:
        assert mb.kv._direct  # opened as found
        await mb.register("alice")
        sent = await mb.send("alice", "alice", "fyi")
        assert (await mb.agent("alice")) is not None  # a live direct bucket reads
        await mb.nc.jetstream().delete_stream(f"KV_{config.namespace}")
        with pytest.raises(errors.StoreLost):
            await mb.agent("alice")
        with pytest.raises(errors.MessageNotFound) as gone:
            await mb.get(sent.id)
        assert gone.value.store_lost is not None
