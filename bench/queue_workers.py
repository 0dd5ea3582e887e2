"""Process bodies for bench/queue.py, run under multiprocessing's spawn context.

Every worker builds its own backend client from ``(key, poll_s)`` (clients
hold SQLite connections, which never cross a fork or a pickle). Times are
``time.monotonic_ns()``: on Linux it reads CLOCK_MONOTONIC, one clock for the
whole machine, so a stamp taken in the producer compares with one taken in
the consumer.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from bench.queue_backends import Client, backends


@dataclass(frozen=True)
class Target:
    """Which backend, its poll interval, its folder and the queue (recipient) a worker uses."""

    key: str
    poll_s: float
    root: str
    queue: str

    def client(self, owner: str) -> Client:
        return backends(self.poll_s)[self.key]().open(Path(self.root), self.queue, owner)


SLOW_SEND_NS = 500_000  # a send this slow waited for the write lock (SQLite's busy sleeps)


def producer(t: Target, n: int, start: Barrier, stats: Any = None) -> None:
    """Send ``n`` numbered messages as fast as the backend takes them. ``stats`` (a shared
    array of 4 doubles, if given) receives: CPU seconds of this process while sending,
    sends slower than 0.5 ms, seconds spent in those, seconds spent in all sends."""
    client = t.client("producer")
    step = backends(t.poll_s)[t.key]().send_batch
    slow = slow_ns = all_ns = 0
    start.wait()
    cpu0 = time.process_time()
    if step == 1:
        for i in range(n):
            t0 = time.monotonic_ns()
            client.send({"i": i})
            took = time.monotonic_ns() - t0
            all_ns += took
            if took > SLOW_SEND_NS:
                slow, slow_ns = slow + 1, slow_ns + took
    else:
        for first in range(0, n, step):
            client.send_many([{"i": i} for i in range(first, min(n, first + step))])
    if stats is not None:
        stats[:] = [time.process_time() - cpu0, slow, slow_ns / 1e9, all_ns / 1e9]
    client.close()


def consumer(
    t: Target,
    n: int,
    batch: int,
    start: Barrier,
    out: Connection,
) -> None:
    """Claim and ack until ``n`` distinct messages arrived; report counts and end time."""
    client = t.client(f"consumer-{t.queue}")
    seen: set[int] = set()
    duplicates = claims = 0
    start.wait()
    cpu0 = time.process_time()
    while len(seen) < n:
        got = client.claim(batch)
        if not got:
            client.wait(1.0)
            continue
        claims += 1
        client.ack([h for h, _ in got])
        for _, body in got:
            if body["i"] in seen:
                duplicates += 1
            seen.add(body["i"])
    end = time.monotonic_ns()
    cpu = time.process_time() - cpu0
    client.close()
    report = {"received": len(seen), "duplicates": duplicates, "claims": claims, "end_ns": end}
    out.send({**report, "cpu_s": cpu})
    out.close()


def latency_producer(
    t: Target,
    n: int,
    gap_s: tuple[float, float],
    start: Barrier,
) -> None:
    """Send ``n`` messages spaced by a random gap, each stamped just before send()."""
    client = t.client("producer")
    rng = random.Random(7)
    start.wait()
    for i in range(n):
        time.sleep(rng.uniform(*gap_s))
        client.send({"i": i, "t": time.monotonic_ns()})
    client.close()


def latency_consumer(
    t: Target,
    n: int,
    batch: int,
    start: Barrier | None,
    out: Connection,
) -> None:
    """Record claim time minus send stamp for each of ``n`` messages."""
    client = t.client(f"consumer-{t.queue}")
    latencies: list[int] = []
    if start is not None:
        start.wait()
    while len(latencies) < n:
        got = client.claim(batch)
        if not got:
            client.wait(1.0)
            continue
        claimed = time.monotonic_ns()
        latencies.extend(claimed - body["t"] for _, body in got)
        client.ack([h for h, _ in got])
    client.close()
    out.send(latencies)
    out.close()


def idle_consumer(t: Target, ready: Event, wait_s: float) -> None:
    """An agent-shaped loop with nothing to do; the parent measures it and then stops it."""
    client = t.client(f"idle-{t.queue}")
    ready.set()
    while True:
        got = client.claim(1)
        if got:
            client.ack([h for h, _ in got])
            continue
        client.wait(wait_s)


def run_quietly(target: Any, *args: Any) -> None:
    """Spawn entry: a Ctrl-C in the bench stops workers without a traceback each."""
    with contextlib.suppress(KeyboardInterrupt):
        target(*args)
