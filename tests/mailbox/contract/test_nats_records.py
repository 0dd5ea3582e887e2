"""Records garbled in a NATS team's bucket (orchestrator/mailbox/nats/records.py).

Anyone with the team's NATS account can write any key (`nats kv put` by hand, a
script, another program). A record that was not JSON raised JSONDecodeError out of
claim, list, sweep, peek and agents: one garbled message stopped its recipient's
session (a crash loop) and the supervisor's sweep for the whole team. Now each record
read is checked: listings, claims and sweeps go on past one that is not a record
(said once per key), a single read of one is RecordUnreadable naming the key, and a
registry write mends a garbled row.
"""

from __future__ import annotations

import json
import uuid

import pytest
from natsserver import NatsServer

from orchestrator import errors
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats import records as rec

GOOD = {
    "id": "0abc",
    "kind": "notice",
    "sender": "user",
    "recipient": "b",
    "correlation_id": None,
    "cause_id": None,
    "body": "x",
    "status": "pending",
    "attempts": 0,
    "max_attempts": 5,
    "lease_owner": None,
    "lease_expires": None,
    "available_at": 1.0,
    "created_at": 1.0,
    "expires_at": None,
    "claimed_at": None,
    "done_at": None,
    "error": None,
    "error_detail": None,
}

GARBAGE = [
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    json.dumps({k: v for k, v in GOOD.items() if k != "status"}).encode(),
    json.dumps({**GOOD, "status": "bogus"}).encode(),
    json.dumps({**GOOD, "attempts": "1"}).encode(),
    json.dumps({**GOOD, "attempts": True}).encode(),
    json.dumps({**GOOD, "max_attempts": 0}).encode(),
    json.dumps({**GOOD, "id": "../x"}).encode(),
    json.dumps({**GOOD, "available_at": float("nan")}).encode(),
    b"[" * 5000 + b"]" * 5000,  # json.loads: RecursionError, not ValueError
]


@pytest.fixture
def config(nats_server: NatsServer) -> NatsConfig:
    return NatsConfig((nats_server.url,), namespace=f"rec{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
async def test_a_garbled_message_is_passed_over_and_named_when_asked_for(
    config: NatsConfig, garbage: bytes
) -> None:
    async with NatsMailbox(config) as mb:
        await mb.register("b", "")
        bad = await mb.send("user", "b", "one")
        good = await mb.send("user", "b", "two")
        await mb.kv.put(rec.msg_key(bad.id), garbage)
        assert [m.id for m in await mb.peek("b")] == [good.id]
        assert [m.id for m in await mb.list()] == [good.id]
        await mb.sweep()
        claimed = await mb.claim("b", owner="o", lease_s=30, limit=5)
        assert [m.id for m in claimed] == [good.id]
        await mb.ack([good.id], owner="o")
        with pytest.raises(errors.RecordUnreadable) as caught:
            await mb.get(bad.id)
        assert caught.value.key == rec.msg_key(bad.id)
        assert "nats kv" in str(caught.value)


async def test_a_garbled_registry_row_is_left_out_and_mended_by_a_write(
    config: NatsConfig,
) -> None:
    async with NatsMailbox(config) as mb:
        await mb.register("a", "first")
        await mb.register("b", "second")
        await mb.kv.put(rec.agent_key("b"), b'{"name": "b"}')
        assert [a.name for a in await mb.agents()] == ["a"]
        with pytest.raises(errors.RecordUnreadable):
            await mb.agent("b")
        await mb.update_agent("b", state="ready", pid=42)  # the supervisor's next write
        row = await mb.agent("b")
        assert row is not None
        assert (row.state, row.pid) == ("ready", 42)
        await mb.kv.put(rec.agent_key("a"), b"garbage")
        again = await mb.register("a", "first again")
        assert again.description == "first again"
        assert [a.name for a in await mb.agents()] == ["a", "b"]


async def test_garbled_wait_edges_and_replies(config: NatsConfig) -> None:
    async with NatsMailbox(config) as mb:
        await mb.register("a", "")
        await mb.register("b", "")
        await mb.kv.put(rec.wait_key("0zzz"), b"garbage")
        await mb.kv.put(rec.wait_key("0yyy"), b'{"waiter": "b", "target": 7, "expires_at": 1}')
        request = await mb.request("a", "b", "q", wait_s=60)  # no cycle from garbage
        await mb.sweep()  # an edge that is not one never runs out: swept, as on SQLite
        assert await rec.get(mb.kv, rec.wait_key("0zzz")) is None
        assert await rec.get(mb.kv, rec.wait_key("0yyy")) is None
        assert await rec.get(mb.kv, rec.wait_key(request.id)) is not None
        await mb.kv.put(rec.reply_key(request.id), b"garbage")
        with pytest.raises(errors.RecordUnreadable):
            await mb.find_reply(request.id)
