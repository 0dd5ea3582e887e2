"""What only the JetStream backend has: reaching the server (errors, credentials), a
server restart, the payload limit, id collisions across clients."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import nats
import nats.errors
import pytest
from natsserver import NatsServer, free_port
from structlog.testing import capture_logs

from orchestrator import errors
from orchestrator.mailbox import Message
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox, core, faults
from orchestrator.mailbox.nats import sending as nats_sending
from orchestrator.mailbox.opening import open_queue
from orchestrator.roster import load_roster


async def test_unreachable_server_is_a_clear_error() -> None:
    config = NatsConfig((f"nats://127.0.0.1:{free_port()}",), connect_timeout_s=1)
    with pytest.raises(errors.QueueUnavailable) as info:
        await NatsMailbox(config).open()
    assert "no server answered" in str(info.value)
    assert "nats-server -js" in str(info.value)


async def test_server_without_jetstream_is_a_clear_error(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "s", jetstream=False).start()
    try:
        with pytest.raises(errors.QueueUnavailable, match="JetStream is not enabled"):
            await NatsMailbox(NatsConfig((server.url,))).open()
    finally:
        server.stop()


async def test_user_and_password_are_checked(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "s", extra=["--user", "octy", "--pass", "s3cret-pw"]).start()
    try:
        wrong = NatsConfig((server.url,), user="octy", password="nope", connect_timeout_s=2)
        with pytest.raises(errors.QueueUnavailable) as info:
            await NatsMailbox(wrong).open()
        assert "credentials" in str(info.value)
        assert "nope" not in str(info.value)
        right = NatsConfig((server.url,), user="octy", password="s3cret-pw")
        assert "s3cret-pw" not in repr(right)
        async with NatsMailbox(right) as mb:
            await mb.register("bob")
            assert (await mb.send("user", "bob", "hi")).recipient == "bob"
    finally:
        server.stop()


async def test_token_is_checked(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "s", extra=["--auth", "tok-123"]).start()
    try:
        with pytest.raises(errors.QueueUnavailable):
            await NatsMailbox(NatsConfig((server.url,), connect_timeout_s=2)).open()
        async with NatsMailbox(NatsConfig((server.url,), token="tok-123")) as mb:
            assert await mb.agents() == []
    finally:
        server.stop()


def test_display_hides_credentials_in_the_url() -> None:
    config = NatsConfig(("nats://octy:pw@10.0.0.1:4222", "nats://10.0.0.2:4222"))
    assert config.display == "nats://10.0.0.1:4222,nats://10.0.0.2:4222"
    with pytest.raises(ValueError, match="namespace"):
        NatsConfig(("nats://h",), namespace="a.b")


async def test_queue_survives_a_server_restart(tmp_path: Path) -> None:
    """File storage: messages, replies and the registry outlive the server process, and a
    client that was connected carries on once the server is back."""
    server = NatsServer(tmp_path / "s").start()
    try:
        async with NatsMailbox(NatsConfig((server.url,))) as mb:
            await mb.register("bob")
            sent = await mb.send("user", "bob", "kept")
            server.stop(signal.SIGKILL)
            server.start()
            # The client reconnects by itself; the call waits through it (faults.RETRY_S).
            got = await mb.claim("bob", owner="w")
            assert [m.id for m in got] == [sent.id]
            assert await mb.agent("bob") is not None
    finally:
        server.stop()


async def test_a_wake_up_lost_in_a_reconnect_costs_a_reconnect_not_a_recheck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message arrives for bob with its wake-up lost (the writer's publish dropped, as
    one sent while bob's connection is down is); then bob's server restarts. Bob's
    waiter re-reads as soon as its client is reconnected and finds the message, with
    the periodic re-read pushed out of reach: the reconnect alone wakes it."""
    monkeypatch.setattr(core, "RECHECK_S", 3600.0)
    server = NatsServer(tmp_path / "s").start()
    try:
        config = NatsConfig((server.url,))
        async with NatsMailbox(config) as waiter, NatsMailbox(config) as writer:
            await waiter.register("bob")
            got: list[bool] = []

            async def wait() -> None:
                got.append(await waiter.wait_for_messages("bob", 3600))

            async def no_wake(*recipients: str) -> None:
                return None

            polled = anyio.Event()
            poll = waiter._poll_inbox

            async def first_poll(recipient: str) -> Any:
                found = await poll(recipient)
                polled.set()
                return found

            monkeypatch.setattr(writer, "_wake", no_wake)
            monkeypatch.setattr(waiter, "_poll_inbox", first_poll)
            with capture_logs() as logs, anyio.fail_after(120):  # not the wait's own end
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await polled.wait()  # the waiter found nothing and waits
                    await writer.send("user", "bob", "quietly")  # no wake-up reaches it
                    server.stop(signal.SIGKILL)
                    server.start()
            assert got == [True]
            assert "queue_reconnected" in [e["event"] for e in logs]
    finally:
        server.stop()


async def test_a_wait_goes_on_through_an_outage_longer_than_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies under an asker waiting for its answer and stays down past a read's
    retry budget: the wait goes on (until its own deadline) and returns the answer given
    once the server is back, instead of ending in QueueUnavailable mid-ask. (The cluster
    fault test saw a wrong answer once; a failed wait is one way to it.)"""
    monkeypatch.setattr(faults, "RETRY_S", 0.5)
    server = NatsServer(tmp_path / "s").start()
    try:
        config = NatsConfig((server.url,), request_timeout_s=0.5)
        async with NatsMailbox(config) as asker, NatsMailbox(config) as answerer:
            await asker.register("bob")
            request = await asker.request("user", "bob", "still there?", wait_s=60)
            got: list[Message] = []

            async def wait() -> None:
                got.append(await asker.wait_for_reply(request.id, 60))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.2)  # the asker is in its wait
                server.stop(signal.SIGKILL)
                await anyio.sleep(2.0)  # four retry budgets: every read of the wait failed
                server.start()
                await answerer.reply(request.id, "bob", "yes")
            assert [m.body for m in got] == ["yes"]
    finally:
        server.stop()


async def test_a_server_lost_mid_run_is_queue_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is SIGKILLed under a connected client and stays down: every call ends,
    after the retry budget, in QueueUnavailable saying what was being done and what to
    do (nats-py's own exceptions never escape); closing the client does not hang."""
    monkeypatch.setattr(faults, "RETRY_S", 1.0)
    server = NatsServer(tmp_path / "s").start()
    try:
        mb = await NatsMailbox(NatsConfig((server.url,), request_timeout_s=0.5)).open()
        await mb.register("bob")
        sent = await mb.request("user", "bob", "question")
        server.stop(signal.SIGKILL)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "send": lambda: mb.send("user", "bob", "lost"),
            "claim": lambda: mb.claim("bob", owner="w"),
            "ack": lambda: mb.ack([sent.id], owner="w"),
            "reply": lambda: mb.reply(sent.id, "bob", "answer"),
            "wait_for_reply": lambda: mb.wait_for_reply(sent.id, 5.0),
            "list": mb.list,
            "get": lambda: mb.get(sent.id),
            "agents": mb.agents,
            "register": lambda: mb.register("carol"),
            "sweep": mb.sweep,
        }
        for name, call in calls.items():
            with anyio.fail_after(60), pytest.raises(errors.QueueUnavailable) as info:
                await call()
            assert f"lost during {name}" in str(info.value), name
            assert "server (or a majority of the cluster) is up" in str(info.value)
            assert isinstance(info.value.__cause__, nats.errors.Error)
        with anyio.fail_after(30):
            await mb.aclose()
    finally:
        server.stop()


async def test_a_record_over_the_servers_payload_limit_is_a_clear_error(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "s", conf="").start()  # default max_payload: 1 MB
    try:
        async with NatsMailbox(NatsConfig((server.url,))) as mb:
            await mb.register("bob")
            with pytest.raises(errors.InvalidBody, match="max_payload"):
                await mb.send("user", "bob", "x" * (1024 * 1024 - 100))
            assert await mb.list() == []
    finally:
        server.stop()


async def test_an_id_drawn_twice_is_drawn_again(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clients that draw the same id (another process, or the SQLite backend) cannot
    overwrite each other: the message key is created only if absent."""
    draws = iter(["0000000000000001", "0000000000000001", "0000000000000002"])
    monkeypatch.setattr(nats_sending, "new_id", lambda: next(draws))
    async with NatsMailbox(NatsConfig((nats_server.url,), namespace="collide")) as mb:
        await mb.register("bob")
        first = await mb.send("user", "bob", 1)
        second = await mb.send("user", "bob", 2)
        assert (first.id, second.id) == ("0000000000000001", "0000000000000002")
        assert (await mb.get(first.id)).body == 1


async def test_a_bucket_kept_in_other_copies_than_the_roster_says_is_said(
    nats_server: NatsServer,
) -> None:
    """The bucket was made with one copy; the roster now says `replicas: 3` (edited
    since, or another machine's roster differs). The servers keep what the bucket was
    made with: `replicas:` was passed over in silence, and the operator believed the
    team survived a node's loss. Said at open, with both numbers and the fix; the team
    runs on its bucket as it is. A stream under the name that is no bucket is a clear
    error, not nats-py's."""
    namespace = f"copies{free_port()}"
    async with NatsMailbox(NatsConfig((nats_server.url,), namespace=namespace)) as made:
        await made.register("bob")
        assert made.replicas_differ is None
    async with NatsMailbox(NatsConfig((nats_server.url,), namespace=namespace)) as same:
        assert [a.name for a in await same.agents()] == ["bob"]
        assert same.replicas_differ is None
    three = NatsConfig((nats_server.url,), namespace=namespace, replicas=3)
    with capture_logs() as logs:
        async with NatsMailbox(three) as other:
            assert [a.name for a in await other.agents()] == ["bob"]
            said = other.replicas_differ
    # Kept for whoever says it (the supervisor as it starts, `ps`), not logged at every
    # open: each CLI verb printed it on stderr (test_nats_cli.py).
    assert [e for e in logs if e["event"] == "queue_replicas_differ"] == []
    assert said is not None
    assert (said["replicas"], said["roster_replicas"]) == (1, 3)
    assert f"KV_{namespace} --replicas 3" in said["fix"]

    client = await nats.connect(nats_server.url)
    try:
        await client.jetstream().add_stream(name="KV_plain", subjects=["plain.>"])
    finally:
        await client.close()
    with pytest.raises(errors.QueueUnavailable, match="KV_plain is no key-value bucket"):
        await NatsMailbox(NatsConfig((nats_server.url,), namespace="plain")).open()


async def test_the_supervisor_says_its_bucket_differs_once_as_it_opens_it(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The queue opened for the supervisor (with its holder) says
    `queue_replicas_differ` once, with both numbers and the fix; opened for a verb it
    says nothing (`ps` shows it instead: test_nats_cli.py)."""
    namespace = f"copies{free_port()}"
    async with NatsMailbox(NatsConfig((nats_server.url,), namespace=namespace)):
        pass  # made with one copy
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nqueue:\n  servers: {nats_server.url}\n  namespace: {namespace}\n"
        "  replicas: 3\nagents:\n  bob:\n    prompt: answers\n"
    )
    roster = load_roster(tmp_path / "agents.yaml")
    with capture_logs() as logs:
        async with open_queue(roster):
            pass
    assert [e for e in logs if e["event"] == "queue_replicas_differ"] == []
    with capture_logs() as logs:
        async with open_queue(roster, holder="octy-supervisor:test"):
            pass
    said = [e for e in logs if e["event"] == "queue_replicas_differ"]
    assert [(e["replicas"], e["roster_replicas"]) for e in said] == [(1, 3)]
    assert f"KV_{namespace} --replicas 3" in said[0]["fix"]


async def test_a_wait_that_loses_the_queue_says_so_once(nats_server: NatsServer) -> None:
    """The bucket gone under a wait (as after a server restarted without its store):
    each of the wait's reads fails, two a second, until its deadline. It logged
    `wait_retrying` at each (measured: ~4 lines a second from a team's waits, for
    as long as it lasted); now once per wait, and the wait still ends with the error."""
    namespace = f"wait{free_port()}"
    async with NatsMailbox(NatsConfig((nats_server.url,), namespace=namespace)) as mb:
        await mb.register("bob")
        await mb.nc.jetstream().delete_stream(f"KV_{namespace}")
        reads = 0
        real_poll = mb._poll_inbox

        async def counted(recipient: str) -> tuple[bool | None, float]:
            nonlocal reads
            reads += 1
            return await real_poll(recipient)

        mb._poll_inbox = counted  # type: ignore[method-assign]
        with capture_logs() as logs, pytest.raises(errors.QueueUnavailable):
            await mb.wait_for_messages("bob", 3.0)
    assert reads >= 2  # read again through the outage
    said = [e for e in logs if e["event"] == "wait_retrying"]
    assert len(said) == 1
    assert "stream not found" in said[0]["error"]
