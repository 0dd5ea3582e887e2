"""Writes through a JetStream stream leader election on a real 3-node cluster: the
bucket's leader is SIGKILLed and a write made at once waits for the new leader
instead of failing, and is stored once."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import nats.errors
import pytest
from nats.js.kv import KeyValue
from natsserver import NatsCluster, NatsServer, stream_leader_async

from orchestrator import errors
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox

pytestmark = [pytest.mark.slow]


def _config(cluster: NatsCluster) -> NatsConfig:
    return NatsConfig(cluster.urls, namespace=f"t{uuid.uuid4().hex[:8]}", replicas=3)


async def test_sends_go_on_while_the_stream_elects_its_leader(cluster: NatsCluster) -> None:
    """While the bucket's stream has no leader, a publish to it hears 'no responders'
    (nats-py: NoStreamResponseError), for seconds. That is an election, not a lost
    server: a send waits for the new leader. One sender keeps sending while the
    leader is SIGKILLed until the stream has a new one: no send fails (they used to fail
    at once with queue_unavailable, which the relay showed the model) and each message
    is stored once."""
    config = _config(cluster)
    stream = f"KV_{config.namespace}"
    async with NatsMailbox(config) as mb:
        await mb.register("bob")
        victim = await stream_leader_async(cluster, stream)
        sent: list[str] = []
        failures: list[BaseException] = []
        elected = anyio.Event()

        async def keep_sending() -> None:
            try:
                while not elected.is_set():
                    sent.append((await mb.send("alice", "bob", f"n{len(sent)}")).id)
            except errors.QueueError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_sending)
            await _wait_for(lambda: len(sent) >= 3)
            victim.stop(signal.SIGKILL)
            await _wait_for(lambda: _led_by_another(cluster, stream, victim), failures)
            sent_at_election = len(sent)
            await _wait_for(lambda: len(sent) >= sent_at_election + 3, failures)
            elected.set()
        assert not failures, failures
        claimed = await mb.claim("bob", owner="w", limit=len(sent) + 10)
    assert sorted(m.id for m in claimed) == sorted(sent)
    assert sorted(m.body for m in claimed) == sorted(f"n{i}" for i in range(len(sent)))


async def test_a_change_during_the_election_waits_with_pauses(
    cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack (a compare-and-set on the message) made as the stream's leader dies goes
    through once there is a new leader, and never reads and writes again in a tight
    loop: a write that hears no responders (at once) is tried again after a pause.
    (Seen here: the read waits for the leader too, so the write is made once; the
    pause is for a leader lost between the read and the write.)"""
    config = _config(cluster)
    stream = f"KV_{config.namespace}"
    writes = 0
    real_update = KeyValue.update

    async def counted(self: KeyValue, *args: Any, **kwargs: Any) -> int:
        nonlocal writes
        writes += 1
        return await real_update(self, *args, **kwargs)

    async with NatsMailbox(config) as mb:
        await mb.register("bob")
        await mb.send("alice", "bob", "hello")
        [claimed] = await mb.claim("bob", owner="w")
        victim = await stream_leader_async(cluster, stream)
        monkeypatch.setattr(KeyValue, "update", counted)
        victim.stop(signal.SIGKILL)
        with anyio.fail_after(60):
            await mb.ack([claimed.id], owner="w")
        assert (await mb.get(claimed.id)).status == "done"
    # Pauses of 0.05 s doubling to 1 s: about 10 tries over 7 s of election.
    assert 1 <= writes <= 40, writes


async def _led_by_another(cluster: NatsCluster, stream: str, victim: NatsServer) -> bool:
    try:
        return await stream_leader_async(cluster, stream) is not victim
    except (AssertionError, OSError, nats.errors.Error):  # no leader yet, or no answer
        return False


async def _wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    failures: list[BaseException] | None = None,
    timeout_s: float = 60,
) -> None:
    """Until ``condition()`` holds (or the sender failed: the assert says why)."""
    with anyio.fail_after(timeout_s):
        while True:  # a polled condition (a leader elected), no event to wait on
            if failures or await _value(condition()):
                return
            await anyio.sleep(0.05)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return result if isinstance(result, bool) else await result
