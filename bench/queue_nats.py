"""The queue's two backends side by side, through the async contract both keep:

    .venv/bin/python bench/queue_nats.py [--messages N] [--asks N]

SQLite (``AsyncMailbox``, a file in a temporary folder) and NATS JetStream
(``NatsMailbox`` on a ``nats-server`` this program starts on loopback, file
storage; and on a 3-node cluster on loopback, the bucket replicated 3 times), in
one run, in one process (bench/queue.py measures across processes): throughput
of send + claim + ack by one producer task and one consumer task on separate
clients, and the ask -> reply round trip (request,
the answerer's claim and reply, the asker's wait_for_reply). A program, not a
test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (anyio imports it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "mailbox" / "contract"))

from natsserver import NatsCluster, NatsServer  # noqa: E402 - after the sys.path fix above

from orchestrator.mailbox import AsyncMailbox, AsyncMailboxBackend  # noqa: E402
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: E402

Opener = Callable[[], Awaitable[AsyncMailboxBackend]]


async def throughput(open_client: Opener, n: int) -> float:
    producer, consumer = await open_client(), await open_client()
    await producer.register("bob")
    start = time.perf_counter()

    async def produce() -> None:
        for i in range(n):
            await producer.send("user", "bob", i)

    async def consume() -> None:
        got = 0
        while got < n:
            batch = await consumer.claim("bob", owner="c", limit=32)
            if not batch:
                await consumer.wait_for_messages("bob", 1.0)
                continue
            await consumer.ack([m.id for m in batch], owner="c")
            got += len(batch)

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - start
    await producer.aclose()
    await consumer.aclose()
    return n / elapsed


async def round_trips(open_client: Opener, n: int) -> list[float]:
    asker, answerer = await open_client(), await open_client()
    await asker.register("alice")
    await asker.register("bob")
    stop = asyncio.Event()

    async def answer() -> None:
        while not stop.is_set():
            for m in await answerer.claim("bob", owner="b", limit=8):
                await answerer.reply(m.id, "bob", "pong")
                await answerer.ack([m.id], owner="b")
            await answerer.wait_for_messages("bob", 0.2)

    task = asyncio.create_task(answer())
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        request = await asker.request("alice", "bob", "ping", wait_s=30)
        await asker.wait_for_reply(request.id, 30)
        samples.append((time.perf_counter() - t0) * 1000)
    stop.set()
    await task
    await asker.aclose()
    await answerer.aclose()
    return samples


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats")
        cluster = NatsCluster(Path(tmp) / "cluster")
        try:
            server.start()
            await asyncio.to_thread(cluster.start)
            runs = 0

            def sqlite() -> Opener:
                path = Path(tmp) / f"q{runs}.db"
                return lambda: AsyncMailbox(path).open()

            def nats() -> Opener:
                config = NatsConfig((server.url,), namespace=f"bench{runs}")
                return lambda: NatsMailbox(config).open()

            def nats3() -> Opener:
                config = NatsConfig(cluster.urls, namespace=f"bench{runs}", replicas=3)
                return lambda: NatsMailbox(config).open()

            print(f"{'backend':13} {'msg/s':>8} {'ask p50 ms':>11} {'ask p99 ms':>11}")
            for name, make in (("sqlite", sqlite), ("nats", nats), ("nats-cluster", nats3)):
                runs += 1
                rate = await throughput(make(), args.messages)
                runs += 1
                rtt = sorted(await round_trips(make(), args.asks))
                p99 = rtt[min(len(rtt) - 1, int(len(rtt) * 0.99))]
                print(f"{name:13} {rate:8.0f} {statistics.median(rtt):11.2f} {p99:11.2f}")
        finally:
            server.stop()
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--asks", type=int, default=200)
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
