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
from structlog.testing import capture_logs

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
    json.dumps(GOOD).encode(),  # a whole message, but another id than its key's
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


async def test_a_hint_pointing_at_anothers_message_gives_no_claim_on_it(
    config: NatsConfig,
) -> None:
    """Any program with the account can write ``q.carol.<id>`` for bob's message. carol
    could then claim and ack it (claim never looked at the message's recipient): bob
    never got it. Now such a hint is passed over, said once, and bob claims his own."""
    async with NatsMailbox(config) as mb:
        for name in ("alice", "bob", "carol"):
            await mb.register(name, "")
        m = await mb.send("alice", "bob", "for bob only")
        stray = f"q.carol.{m.id}"
        await mb.kv.put(stray, b"")
        with capture_logs() as logs:
            assert await mb.claim("carol", owner="carol-session") == []
            assert await mb.peek("carol") == []
            assert await mb.pending_count("carol") == 0
            assert not await mb.wait_for_messages("carol", 0.1)
        said = [e["key"] for e in logs if e["event"] == "queue_record_unreadable"]
        assert said == [stray]
        assert [c.id for c in await mb.claim("bob", owner="bob-session")] == [m.id]


async def test_a_registry_row_naming_another_agent_than_its_key_is_left_out(
    config: NatsConfig,
) -> None:
    """A row under ``a.zzz`` whose name says "bob" was a second bob: listed twice, and
    every broadcast wrote bob two copies. Now it is passed over, said once."""
    async with NatsMailbox(config) as mb:
        for name in ("alice", "bob"):
            await mb.register(name, "")
        row = {
            "name": "bob",
            "description": "",
            "pid": None,
            "state": "registered",
            "heartbeat_at": None,
            "registered_at": 1.0,
            "meta": {},
        }
        await mb.kv.put("a.zzz", json.dumps(row).encode())
        with capture_logs() as logs:
            assert [a.name for a in await mb.agents()] == ["alice", "bob"]
            sent = await mb.broadcast("alice", "hello all")
        assert [m.recipient for m in sent] == ["bob"]
        said = [e["key"] for e in logs if e["event"] == "queue_record_unreadable"]
        assert said == ["a.zzz"]


async def test_a_reply_record_answering_another_request_is_no_reply(config: NatsConfig) -> None:
    """The reply key of one request holding the (well-formed) answer to another is no
    answer to it: unreadable, not returned as this request's reply."""
    async with NatsMailbox(config) as mb:
        for name in ("a", "b"):
            await mb.register(name, "")
        first = await mb.request("a", "b", "one")
        second = await mb.request("a", "b", "two")
        await mb.reply(first.id, "b", "answer to one")
        found = await rec.get(mb.kv, rec.reply_key(first.id))
        assert found is not None
        await mb.kv.put(rec.reply_key(second.id), found[0])
        with pytest.raises(errors.RecordUnreadable):
            await mb.find_reply(second.id)


async def test_a_refused_reuse_of_an_id_writes_no_hint(config: NatsConfig) -> None:
    """A send under an id another message holds is refused; it used to write its hint
    first, which then pointed at the other's message (a hint said unreadable since)."""
    async with NatsMailbox(config) as mb:
        for name in ("alice", "bob", "carol"):
            await mb.register(name, "")
        m = await mb.send("alice", "bob", "bob's")
        with pytest.raises(errors.MessageIdTaken):
            await mb.send("alice", "carol", "carol's", message_id=m.id)
        with pytest.raises(errors.MessageIdTaken):
            await mb.request("alice", "carol", "carol's", wait_s=60, message_id=m.id)
        assert await mb._keys("q.") == [rec.hint_key("bob", m.id)]
        assert await mb._keys("w.") == []


async def test_a_garbled_reply_record_stops_no_purge_sweep_or_retry(config: NatsConfig) -> None:
    """purge and sweep drop a done response's reply key only if it is that response's:
    a garbled one raised RecordUnreadable out of them (the supervisor's sweep of the
    whole team); `queue retry` of a failed request raised it after reviving it."""
    async with NatsMailbox(config) as mb:
        for name in ("a", "b"):
            await mb.register(name, "")
        answered = await mb.request("a", "b", "one")
        await mb.reply(answered.id, "b", "done")
        await mb.claim("b", owner="w")
        await mb.ack([answered.id], owner="w")
        await mb.kv.put(rec.reply_key(answered.id), b"garbage")
        await mb.sweep(retention_s=-1)
        assert await mb.list() == []
        failed = await mb.request("a", "b", "two")
        await mb.fail_request(failed.id, "recipient_failed", "crashed")
        await mb.kv.put(rec.reply_key(failed.id), b"garbage")
        back = await mb.retry(failed.id)
        assert back.status == "pending"
        assert [m.id for m in await mb.claim("b", owner="w")] == [failed.id]
