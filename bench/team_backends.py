"""bench/team.py's backends phase: one two-agent team (alpha asks beta with the ask
tool, beta answers) on each queue backend in the same run: the SQLite file, one
NATS JetStream server, and a 3-node JetStream cluster (the bucket replicated 3
times), both on loopback. Measured from the outside, from the queue's own rows:
up -> both agents ready, the ask -> reply round trip (the user's request created ->
alpha's reply committed), each delivery (a request created -> claimed by its
agent's runner), the reply reaching the waiting asker, the supervisors' CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.queue_nats_backends import ENV
from bench.queue_nats_backends import servers as nats_servers

BACKENDS = ("sqlite", "nats", "nats-cluster")
MS = 1000.0


def _queue(name: str, namespace: str) -> dict[str, Any] | None:
    import os

    if name == "sqlite":
        return None
    urls = os.environ[ENV[name]].split(",")
    return {"servers": urls, "namespace": namespace, "replicas": 3 if name == "nats-cluster" else 1}


def measure_backends(
    team_of: Callable[..., Any], round_trip: Callable[[Any, int], str], asks: int, which: list[str]
) -> dict[str, Any]:
    """``team_of(agents, queue=...)``: bench/team.py's context manager for one team."""
    results: dict[str, Any] = {}
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix="octy-bench-nats-") as store,
        nats_servers(which, Path(store)),
    ):
        for n, name in enumerate(which):
            queue = _queue(name, f"benchteam{n}")
            with team_of({"alpha": {}, "beta": {}}, queue=queue) as team:
                t0 = time.time()
                team.up()
                team.wait_ready()
                ready_s = time.time() - t0
                assert team.proc is not None
                for i in range(2):  # warm-up: a session's first turns do more
                    round_trip(team, 1000 + i)
                sup = psutil.Process(team.proc.pid)
                cpu0 = sum(sup.cpu_times()[:2])
                trips = []
                for i in range(asks):
                    trips.append(_one(team, round_trip, i))
                    time.sleep(0.05)
                cpu_ms = (sum(sup.cpu_times()[:2]) - cpu0) * MS / asks
            results[name] = {"ready_s": ready_s, "round_trips": trips, "supervisor_cpu_ms": cpu_ms}
            print(f"  backends: {name} done", flush=True)
    return results


def _one(team: Any, round_trip: Callable[[Any, int], str], i: int) -> dict[str, float]:
    rid = round_trip(team, i)
    seen = time.time()
    mb = team.mailbox()
    req, resp = mb.get(rid), mb.find_reply(rid)
    sub = next(m for m in mb.related(rid) if m.cause_id == rid and m.kind == "request")
    if resp is None or req.claimed_at is None or sub.claimed_at is None:
        raise RuntimeError(f"round trip {rid} is incomplete in the queue")
    return {
        "round_trip_ms": (resp.created_at - req.created_at) * MS,
        "deliver_user_to_alpha_ms": (req.claimed_at - req.created_at) * MS,
        "deliver_alpha_to_beta_ms": (sub.claimed_at - sub.created_at) * MS,
        "reply_to_waiting_user_ms": (seen - resp.created_at) * MS,
    }


def report_backends(results: dict[str, Any]) -> list[str]:
    if not results:
        return []
    keys = (
        "round_trip_ms",
        "deliver_user_to_alpha_ms",
        "deliver_alpha_to_beta_ms",
        "reply_to_waiting_user_ms",
    )
    out = [
        "## the same two-agent team on each queue backend (median ms; p90 in brackets)",
        f"  {'':<38}" + "".join(f"{name:>20}" for name in results),
    ]
    out.append(
        f"  {'up -> both agents ready (s)':<38}"
        + "".join(f"{r['ready_s']:>20.2f}" for r in results.values())
    )
    for key in keys:
        cells = []
        for r in results.values():
            xs = sorted(t[key] for t in r["round_trips"])
            p90 = xs[int(0.9 * (len(xs) - 1))]
            cells.append(f"{statistics.median(xs):.1f} ({p90:.1f})")
        out.append(
            f"  {key.removesuffix('_ms').replace('_', ' '):<38}"
            + "".join(f"{c:>20}" for c in cells)
        )
    out.append(
        f"  {'supervisor CPU per round trip (ms)':<38}"
        + "".join(f"{r['supervisor_cpu_ms']:>20.1f}" for r in results.values())
    )
    return out
