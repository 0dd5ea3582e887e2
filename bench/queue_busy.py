"""The "idle while others are busy" phase of bench/queue.py.

Twenty processes wait on their own empty inboxes while one producer/consumer
pair exchanges messages at a steady rate (200 msg/s by default) on another
inbox of the same database. Measured at once: the idle processes' CPU (they
should not pay for other inboxes' traffic) and the busy pair's delivery
latency (it should not get worse for it). Issue 14, point 2.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.queue_backends import backends
from bench.queue_workers import Target, idle_consumer, latency_consumer, latency_producer
from orchestrator.mailbox.wakeup import WAL_COOLDOWN_S

JOIN_S = 300.0
PLAIN_BUSY = 10
PLAIN_QUIET = 5


def _plain_insert(db: Path, i: int) -> None:
    """One row as another program writes it: plain sqlite3, the table defaults, no bell."""
    conn = sqlite3.connect(db, timeout=30)
    with conn:
        conn.execute(
            "INSERT INTO messages (sender, recipient, body) VALUES ('script', 'plain', ?)",
            (json.dumps({"i": i, "t": time.monotonic_ns()}),),
        )
    conn.close()


def busy_idle(
    t: Target, *, consumers: int, window_s: float, wait_s: float, rate: float, batch: int
) -> dict[str, Any]:
    """CPU of ``consumers`` idle waiters while one pair runs ``rate`` msg/s on another inbox."""
    import psutil

    from bench.queue_run import CTX, _report, _start, _stop

    queues = [f"idle{i}" for i in range(consumers)]
    backends(t.poll_s)[t.key]().prepare(Path(t.root), [*queues, t.queue, "plain"])
    ready = [CTX.Event() for _ in queues]
    idle = [
        _start(idle_consumer, Target(t.key, t.poll_s, t.root, q), ev, wait_s)
        for q, ev in zip(queues, ready, strict=True)
    ]
    for ev in ready:
        ev.wait(JOIN_S)
    time.sleep(1.0)  # imports and first claims done before anything is measured
    # Plain-SQL writes (no bell, as another program's) to an inbox a consumer waits on:
    # PLAIN_BUSY of them while the pair runs, PLAIN_QUIET after it stopped.
    plain_recv, plain_send = CTX.Pipe(duplex=False)
    plain = _start(
        latency_consumer,
        Target(t.key, t.poll_s, t.root, "plain"),
        PLAIN_BUSY + PLAIN_QUIET,
        batch,
        None,
        plain_send,
    )
    plain_send.close()
    gap = 1.0 / rate
    n = int(rate * (window_s + 2.0 + PLAIN_BUSY * 0.3))  # runs through window and writes
    start = CTX.Barrier(3)
    recv, send = CTX.Pipe(duplex=False)
    pair = [
        _start(latency_consumer, t, n, batch, start, send),
        _start(latency_producer, t, n, (0.8 * gap, 1.2 * gap), start),
    ]
    send.close()
    start.wait(JOIN_S)
    time.sleep(1.0)  # the pair is in its stride

    def cpu() -> float:
        total = 0.0
        for p in idle:
            times = psutil.Process(p.pid).cpu_times()
            total += times.user + times.system
        return total

    load = os.getloadavg()[0]
    before, t0 = cpu(), time.monotonic()
    time.sleep(window_s)
    used, wall = cpu() - before, time.monotonic() - t0
    rng = random.Random(3)
    db = Path(t.root) / "ours" / "team.db"
    for i in range(PLAIN_BUSY):
        time.sleep(rng.uniform(0.1, 0.25))
        _plain_insert(db, i)
    samples: list[int] = _report(recv, pair[0], f"{t.key} busy-pair consumer")
    _stop(pair)
    for i in range(PLAIN_QUIET):
        time.sleep(WAL_COOLDOWN_S + rng.uniform(0.2, 0.5))  # the WAL is quiet again
        _plain_insert(db, PLAIN_BUSY + i)
    plain_ns: list[int] = _report(plain_recv, plain, "plain-SQL consumer")
    _stop([plain])
    for p in idle:
        p.terminate()
    _stop(idle)
    data = sorted(samples)

    def pct(q: float) -> float:
        return data[min(len(data) - 1, round(q * (len(data) - 1)))] / 1e6

    return {
        "idle_consumers": consumers,
        "rate_msg_s": rate,
        "window_s": wall,
        "idle_cpu_pct_of_one_core": 100.0 * used / wall,
        "busy_pair_p50_ms": pct(0.5),
        "busy_pair_p99_ms": pct(0.99),
        "samples": len(data),
        "plain_sql_busy_ms": [round(x / 1e6, 1) for x in plain_ns[:PLAIN_BUSY]],
        "plain_sql_quiet_ms": [round(x / 1e6, 1) for x in plain_ns[PLAIN_BUSY:]],
        "load_1min_at_start": load,
        "load_1min_at_end": os.getloadavg()[0],
    }


def print_busy_idle(key: str, r: dict[str, Any]) -> None:
    print(
        f"Idle while others are busy ({key}): {r['idle_consumers']} idle waiting processes, "
        f"one pair at {r['rate_msg_s']:g} msg/s on another inbox, {r['window_s']:.1f} s\n"
        f"  idle processes: {r['idle_cpu_pct_of_one_core']:.2f}% of one core together "
        f"(target < 2%)\n"
        f"  busy pair delivery: p50 {r['busy_pair_p50_ms']:.3f} ms, "
        f"p99 {r['busy_pair_p99_ms']:.3f} ms over {r['samples']} messages "
        f"(targets < 1 / < 5 ms)\n"
        f"  plain-SQL writes (no bell) seen after, ms: while the pair runs "
        f"{r['plain_sql_busy_ms']}; quiet {r['plain_sql_quiet_ms']}\n"
        f"  load average (1 min) {r['load_1min_at_start']:.2f} at start, "
        f"{r['load_1min_at_end']:.2f} at end"
    )
