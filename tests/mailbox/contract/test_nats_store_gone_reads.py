"""A read of a bucket that is gone is not a read of a missing key.

nats-py's ``KeyValue.get`` answers KeyNotFoundError both for a key with no entry
(JetStream's "no message found") and for a bucket whose stream is gone ("stream not
found": a server restarted without its store). Every record read went through it, so
a lost bucket read as an empty one: `queue show ID` said "no message with id", a
registry row or a lease read absent, and what listed keys said "the NATS server was
lost ... nothing written before this error is lost", false of a store that is gone.
The two are told apart at the one read (records._last_msg): what reads the registry
or lists says StoreLost, what happened and what to do; a read of one named message
(`queue show ID`, an ack's, a reply's, a wait's) finds that message gone with the
bucket, MessageNotFound saying so (every operation already takes it for "gone since
it was read": a lost lease, a request_gone); a missing key on a live bucket stays a
missing key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from contract_openers import lose_the_store

from orchestrator import errors
from orchestrator.mailbox.nats import NatsMailbox


@pytest.fixture
def mb(nats_mb: NatsMailbox) -> NatsMailbox:
    return nats_mb


def _said_plainly(exc: errors.StoreLost, bucket: str) -> None:
    text = str(exc)
    assert exc.code == "queue_unavailable"  # as every queue error scripts already handle
    assert f"bucket '{bucket}' is gone from the server" in text
    assert "restarted without its store" in text
    assert "is lost" in text
    assert "queue verb makes it" in text  # what to do
    assert "nothing written before this error is lost" not in text


async def test_the_looking_verbs_say_a_lost_bucket_plainly(mb: NatsMailbox) -> None:
    await mb.send("alice", "bob", "fyi")
    await lose_the_store(mb)
    looks: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("agent", lambda: mb.agent("alice")),  # a row read absent
        ("agents", mb.agents),
        ("list", mb.list),
        ("update_agent", lambda: mb.update_agent("alice", state="ready")),
        ("send", lambda: mb.send("alice", "bob", "again")),
    ]
    for name, look in looks:
        with pytest.raises(errors.StoreLost) as lost:
            await look()
        _said_plainly(lost.value, mb.config.namespace)
        assert f"(during {name})" in str(lost.value)


async def test_a_write_to_a_lost_bucket_says_so_not_an_outage(mb: NatsMailbox) -> None:
    """A write that reads nothing first (a registration's create) found no responders,
    as a write to a stream electing its leader does: retried for 15 s, then "the NATS
    server was lost ... nothing written before this error is lost". The server is asked
    whether the stream exists once a write goes unanswered."""
    await lose_the_store(mb)
    with pytest.raises(errors.StoreLost) as lost:
        await mb.register("carol")
    _said_plainly(lost.value, mb.config.namespace)


async def test_an_operation_on_a_message_takes_a_lost_bucket_for_the_message_gone(
    mb: NatsMailbox,
) -> None:
    """The operations that already take a message gone since their read for what it is
    (a lost lease, a request_gone) keep doing so, and now say why; `queue show ID` said
    a bare "no message with id", as for a mistyped id."""
    asked = await mb.request("alice", "bob", "capital of France?")
    (m,) = await mb.claim("bob", owner="bob-1", lease_s=60)
    await lose_the_store(mb)
    with pytest.raises(errors.MessageNotFound) as shown:
        await mb.get(asked.id)
    assert shown.value.store_lost is not None
    _said_plainly(shown.value.store_lost, mb.config.namespace)
    assert str(shown.value).startswith(f"no message with id '{asked.id}': the team's bucket")
    assert "queue verb makes it" in str(shown.value)
    with pytest.raises(errors.MessageNotFound) as gone:
        await mb.fail_request(asked.id, "turn_failed", "the model refused")
    assert gone.value.store_lost is not None
    assert "is gone from the server" in str(gone.value)
    with pytest.raises(errors.MessageNotFound) as waited:
        await mb.wait_for_reply(asked.id, 5)
    assert waited.value.store_lost is not None
    with pytest.raises(errors.LeaseLost):
        await mb.ack([m.id], owner="bob-1")
    assert await mb.find_reply(asked.id) is None  # as for any request gone


async def test_a_missing_key_on_a_live_bucket_stays_a_missing_key(mb: NatsMailbox) -> None:
    with pytest.raises(errors.MessageNotFound) as gone:
        await mb.get("nosuchmessage1")
    assert gone.value.store_lost is None
    assert str(gone.value) == "no message with id 'nosuchmessage1'"
    assert await mb.agent("nobody") is None
    with pytest.raises(errors.RecipientUnknown):
        await mb.update_agent("nobody", state="ready")
