"""One supervisor per team across machines sharing a NATS queue: the team lease."""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from natsserver import NatsServer

from orchestrator import errors
from orchestrator.cli import main
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.lease import TeamLease, current_holder

HOLDER = """
import asyncio, sys
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.lease import TeamLease

async def main():
    mb = await NatsMailbox(NatsConfig((sys.argv[1],), namespace=sys.argv[2])).open()
    await TeamLease(mb, "other-machine", lease_s=1.0, renew_every_s=0.2).take()
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
def config(nats_server: NatsServer) -> NatsConfig:
    return NatsConfig((nats_server.url,), namespace=f"lease{uuid.uuid4().hex[:8]}")


async def test_a_second_supervisor_is_refused_with_the_holders_name(config: NatsConfig) -> None:
    async with NatsMailbox(config) as a, NatsMailbox(config) as b:
        lease = await TeamLease(a, "sup-a").take()
        with pytest.raises(errors.TeamHeldElsewhere) as info:
            await TeamLease(b, "sup-b").take()
        assert (info.value.holder, info.value.host, info.value.pid) == (
            "sup-a",
            socket.gethostname(),
            os.getpid(),
        )
        assert "already runs this team" in str(info.value)
        await lease.release()  # a clean stop frees it at once
        assert await current_holder(b) is None
        await (await TeamLease(b, "sup-b").take()).release()


async def test_a_dead_holders_lease_runs_out(config: NatsConfig) -> None:
    """The holder is SIGKILLed: it stops renewing, and another supervisor takes over."""
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
            with pytest.raises(errors.TeamHeldElsewhere) as info:
                await TeamLease(mb, "sup-b").take()
            assert info.value.pid == proc.pid
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            with anyio.fail_after(60):
                while True:
                    try:
                        lease = await TeamLease(mb, "sup-b").take()
                        break
                    except errors.TeamHeldElsewhere:
                        await anyio.sleep(0.1)
            record = await current_holder(mb)
            assert record is not None
            assert record["holder"] == "sup-b"
            await lease.release()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.aclose()


async def test_up_refuses_while_another_machine_runs_the_team(
    config: NatsConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nqueue:\n  servers: {config.servers[0]}\n  namespace: {config.namespace}\n"
        "agents:\n  bob:\n    prompt: hi\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-used")
    async with NatsMailbox(config) as mb:
        lease = await TeamLease(mb, "sup-elsewhere").take()
        try:
            code = await anyio.to_thread.run_sync(main, ["up"])
        finally:
            await lease.release()
    err = capsys.readouterr().err
    assert code != 0
    assert f"pid {os.getpid()}" in err
    assert "already runs this team" in err
    assert "Traceback" not in err
