"""Several supervisors, one NATS team: a lease per agent (orchestrator/mailbox/nats/lease.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from natsserver import NatsServer
from structlog.testing import capture_logs

from orchestrator import errors
from orchestrator.mailbox import SUPERVISOR_OWNER_PREFIX
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.lease import (
    STALE_PRESENCE_S,
    AgentLeases,
    holder_of,
    lease_key,
    presence_key,
)

NO_PID = int(Path("/proc/sys/kernel/pid_max").read_text())  # pids stay below it

HOLDER = """
import asyncio, sys
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.lease import AgentLeases

async def main():
    mb = await NatsMailbox(NatsConfig((sys.argv[1],), namespace=sys.argv[2])).open()
    lease_s = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    leases = AgentLeases(mb, "octy-supervisor:other-machine", lease_s=lease_s)
    await leases.take("alpha")
    await leases.take("beta")
    print("held", flush=True)
    async def lost(agent, exc):
        pass
    await leases.keep(lost)

asyncio.run(main())
"""


@pytest.fixture
def config(nats_server: NatsServer) -> NatsConfig:
    return NatsConfig((nats_server.url,), namespace=f"lease{uuid.uuid4().hex[:8]}")


async def test_an_agent_runs_under_one_supervisor_and_the_other_is_named(
    config: NatsConfig,
) -> None:
    """Two supervisors hold different agents of one team; the second asking for the
    first's agent is refused with the holder's host and pid; a release frees it at once."""
    async with NatsMailbox(config) as a, NatsMailbox(config) as b:
        sup_a, sup_b = AgentLeases(a, "sup-a"), AgentLeases(b, "sup-b")
        await sup_a.take("alpha")
        await sup_b.take("beta")  # another agent of the same team: no conflict
        with pytest.raises(errors.AgentHeldElsewhere) as info:
            await sup_b.take("alpha")
        assert (info.value.agent, info.value.holder, info.value.host, info.value.pid) == (
            "alpha",
            "sup-a",
            socket.gethostname(),
            os.getpid(),
        )
        assert "already runs under the supervisor on" in str(info.value)
        assert await sup_b.held_elsewhere("alpha") is not None
        assert await sup_b.held_elsewhere("beta") is None  # its own
        assert sup_b.held == {"beta"}
        await sup_a.release("alpha")  # a clean stop frees it at once
        assert await holder_of(b, "alpha") is None
        await sup_b.take("alpha")
        record = await holder_of(a, "alpha")
        assert record is not None
        assert record["holder"] == "sup-b"
        await sup_a.release("alpha")  # not a's any more: left alone
        assert await holder_of(a, "alpha") is not None
        await sup_b.release_all()
        assert await holder_of(a, "alpha") is None
        assert await holder_of(a, "beta") is None


async def test_a_dead_supervisors_agents_are_free_after_their_lease(config: NatsConfig) -> None:
    """The holder is SIGKILLed: it stops renewing (it renewed while alive: its 1 s leases
    outlived several seconds), and another supervisor takes its agents over."""
    proc = await anyio.open_process(
        [sys.executable, "-c", HOLDER, config.servers[0], config.namespace]
    )
    try:
        assert proc.stdout is not None
        out = b""
        with anyio.fail_after(60):
            while b"\n" not in out:
                out += await proc.stdout.receive()
        assert out.strip() == b"held"
        async with NatsMailbox(config) as mb:
            leases = AgentLeases(mb, "sup-b", lease_s=1.0)
            first = await holder_of(mb, "alpha")
            assert first is not None
            with anyio.fail_after(60):  # renewed: a later expiry than the first record's
                while True:
                    now = await holder_of(mb, "alpha")
                    if now is not None and now["expires_at"] > first["expires_at"]:
                        break
                    await anyio.sleep(0.1)
            with pytest.raises(errors.AgentHeldElsewhere) as info:
                await leases.take("alpha")
            assert info.value.pid == proc.pid
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            with anyio.fail_after(60):
                while True:
                    try:
                        await leases.take("alpha")
                        break
                    except errors.AgentHeldElsewhere:
                        await anyio.sleep(0.1)
            record = await holder_of(mb, "alpha")
            assert record is not None
            assert record["holder"] == "sup-b"
            await leases.release_all()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.aclose()


async def test_a_killed_supervisors_agents_are_free_at_once_on_its_own_machine(
    config: NatsConfig,
) -> None:
    """A supervisor SIGKILLed and run again on its machine (`up` after a crash): its
    leases named a process gone from this machine's pids, yet the new supervisor was
    refused every agent until they ran out (15 s by default, 60 s here), each left
    stopped and `ps` showing the dead one's `ready`. Taken at once now. A holder frozen
    (SIGSTOP) is alive: refused. A record naming another machine's (or container's)
    pids, or one from an older version without them, proves nothing: refused."""
    proc = await anyio.open_process(
        [sys.executable, "-c", HOLDER, config.servers[0], config.namespace, "60"]
    )
    try:
        assert proc.stdout is not None
        out = b""
        with anyio.fail_after(60):
            while b"\n" not in out:
                out += await proc.stdout.receive()
        async with NatsMailbox(config) as mb:
            leases = AgentLeases(mb, "sup-b")
            proc.send_signal(signal.SIGSTOP)
            with pytest.raises(errors.AgentHeldElsewhere) as info:
                await leases.take("alpha")
            assert info.value.pid == proc.pid
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            with capture_logs() as logs:
                await leases.take("alpha")
            assert leases.holds("alpha")
            record = await holder_of(mb, "alpha")
            assert record is not None
            assert record["holder"] == "sup-b"
            said = [e for e in logs if e["event"] == "agent_taken_over"]
            assert [(e["pid"], e["reason"]) for e in said] == [(proc.pid, "its process is gone")]

            dead = {"holder": "x", "host": socket.gethostname(), "pid": NO_PID + 1}
            until = mb.now() + 60
            elsewhere = {**dead, "pid_space": "another-boot/pid:[1]", "expires_at": until}
            for lease in (elsewhere, {**dead, "expires_at": until}):
                await rec.put(mb.kv, lease_key("beta"), json.dumps(lease).encode())
                with pytest.raises(errors.AgentHeldElsewhere):
                    await leases.take("beta")
            await leases.release_all()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.aclose()


async def test_taking_an_agent_requeues_what_a_dead_supervisor_had_claimed(
    config: NatsConfig,
) -> None:
    """Messages the dead holder's session claimed go back to pending when the agent is
    taken over; another agent's leases, and those of a consumer that is no supervisor,
    are left alone."""
    async with NatsMailbox(config) as mb:
        for name in ("alpha", "beta"):
            await mb.register(name)
        dead_owner = f"{SUPERVISOR_OWNER_PREFIX}999-dead:alpha:x"
        to_alpha = await mb.send("user", "alpha", "one")
        to_alpha_script = await mb.send("user", "alpha", "two")
        to_beta = await mb.send("user", "beta", "three")
        assert [m.id for m in await mb.claim("alpha", owner=dead_owner, limit=1)] == [to_alpha.id]
        assert await mb.claim("alpha", owner="a-script", limit=1)
        assert await mb.claim("beta", owner=f"{SUPERVISOR_OWNER_PREFIX}999-dead:beta:y")
        await AgentLeases(mb, f"{SUPERVISOR_OWNER_PREFIX}1-live").take("alpha")
        back = await mb.get(to_alpha.id)
        assert (back.status, back.attempts) == ("pending", 1)  # the cut-short try counts
        assert (await mb.get(to_alpha_script.id)).status == "leased"
        assert (await mb.get(to_beta.id)).status == "leased"


async def test_a_supervisor_is_known_gone_by_its_presence_not_by_a_pid_elsewhere(
    config: NatsConfig,
) -> None:
    """A supervisor's presence (s.<host>.<pid>) is renewed with its leases: on another
    host a pid means nothing, so it is alive while its presence is, gone once that ran
    out; with no presence at all, gone only once the command is older than the lease.
    On this host a pid that runs no process is gone at once."""
    async with NatsMailbox(config) as mb:
        leases = AgentLeases(mb, "sup-here", lease_s=60.0)
        elsewhere = AgentLeases(mb, "sup-there", lease_s=60.0)
        await elsewhere.announce()  # written with this host's name: move it "elsewhere"
        here_key = presence_key(socket.gethostname(), os.getpid())
        value = json.loads((await mb.kv.get(here_key)).value or b"{}")
        await mb.kv.delete(here_key)
        value["host"] = "far.example"
        await mb.kv.put(presence_key("far.example", 4242), json.dumps(value).encode())
        now = mb.now()
        assert await leases.supervisor_gone("far.example", 4242, now) is None
        value["expires_at"] = now - 1.0
        await mb.kv.put(presence_key("far.example", 4242), json.dumps(value).encode())
        assert "last showed itself 61s ago" in (
            await leases.supervisor_gone("far.example", 4242, now) or ""
        )
        assert await leases.supervisor_gone("other.example", 7, now) is None  # starting?
        assert "not shown itself in the team for 60s" in (
            await leases.supervisor_gone("other.example", 7, now - 61.0) or ""
        )
        await leases.announce()
        assert await leases.supervisor_gone(socket.gethostname(), os.getpid(), now) is None
        never = NO_PID
        gone = await leases.supervisor_gone(socket.gethostname(), never, now)
        assert gone == f"no process {never} runs on {socket.gethostname()}"
        await leases.leave()
        assert await rec.get(mb.kv, here_key) is None


async def test_presences_that_ran_out_an_hour_ago_are_removed_at_a_start(
    config: NatsConfig,
) -> None:
    """A supervisor killed without its clean stop leaves its presence (one key); the next
    to start removes those that ran out over STALE_PRESENCE_S ago. One that ran out
    lately still answers `supervisor_gone` ("last showed itself…") and stays, as do live
    ones and a key that is not a presence record."""
    async with NatsMailbox(config) as mb:
        now = mb.now()
        records = {
            presence_key("far.example", 1): now - STALE_PRESENCE_S - 10,  # long gone
            presence_key("far.example", 2): now - 10,  # ran out lately
            presence_key("far.example", 3): now + 60,  # alive
        }
        for key, expires_at in records.items():
            value = {"holder": "x", "host": "far.example", "pid": 0, "expires_at": expires_at}
            await mb.kv.put(key, json.dumps(value).encode())
        await mb.kv.put(presence_key("far.example", 4), b"not json")
        leases = AgentLeases(mb, "sup-here", lease_s=60.0)
        await leases.announce()
        assert await rec.get(mb.kv, presence_key("far.example", 1)) is None
        for pid in (2, 3, 4):
            assert await rec.get(mb.kv, presence_key("far.example", pid)) is not None
        assert "last showed itself" in (await leases.supervisor_gone("far.example", 2, now) or "")
        await mb.kv.put(
            presence_key("far.example", 5),
            json.dumps({"expires_at": now - STALE_PRESENCE_S - 10}).encode(),
        )
        await leases.announce()  # a renewal: the sweep is once per start
        assert await rec.get(mb.kv, presence_key("far.example", 5)) is not None
        await leases.leave()


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b"[1, 2]",
        b'{"holder": 1}',
        b'{"holder": "x", "host": "h", "pid": "7", "expires_at": 1}',
        b'{"holder": "x", "host": "h", "pid": 7, "expires_at": NaN}',
        b"\xff",
    ],
)
async def test_a_lease_record_garbled_in_the_bucket_is_not_a_crash(
    config: NatsConfig, garbage: bytes
) -> None:
    """Anyone with the team's NATS account can write the bucket (`nats kv put` by hand, a
    script, another version). A lease that is not a record used to raise a JSONDecodeError
    or KeyError out of the renewal task (ending the supervisor) or out of `take` (the agent
    never started). Now: it holds nobody's agent; a held one is written again."""
    async with NatsMailbox(config) as mb:
        leases = AgentLeases(mb, "sup-here", lease_s=60.0, renew_every_s=0.05)
        await mb.kv.put(lease_key("alpha"), garbage)
        assert await holder_of(mb, "alpha") is None
        await leases.take("alpha")  # nobody holds it: taken
        assert (await holder_of(mb, "alpha") or {}).get("holder") == "sup-here"
        await mb.kv.put(lease_key("alpha"), garbage)  # garbled under the holder
        lost: list[str] = []

        async def on_lost(agent: str, exc: errors.AgentHeldElsewhere) -> None:
            lost.append(agent)

        with anyio.move_on_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(leases.keep, on_lost)
                for _ in range(1500):  # renewals, until the lease is a record again
                    if (await holder_of(mb, "alpha") or {}).get("holder") == "sup-here":
                        break
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
        assert (await holder_of(mb, "alpha") or {}).get("holder") == "sup-here"
        assert lost == []
        await mb.kv.put(presence_key("far.example", 9), garbage)
        assert "not shown itself" in (
            await leases.supervisor_gone("far.example", 9, mb.now() - 61.0) or ""
        )
        await leases.release("alpha")
        assert await rec.get(mb.kv, lease_key("alpha")) is None
