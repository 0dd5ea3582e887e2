"""Machine facts, the results table and the target check for bench/queue.py."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

P50_MS = 1.0
P99_MS = 5.0
THROUGHPUT_FACTOR = 2.0
IDLE_PCT = 2.0


@dataclass
class Result:
    key: str
    label: str
    info: dict[str, str]
    one_pair: dict[str, Any]
    four_pairs: dict[str, Any]
    latencies_ns: list[int]  # empty for throughput-only rows
    idle_pct: float | None  # None for throughput-only rows

    def percentile_ms(self, q: float) -> float:
        data = sorted(self.latencies_ns)
        idx = min(len(data) - 1, max(0, round(q * (len(data) - 1))))
        return data[idx] / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.key,
            "label": self.label,
            "info": self.info,
            "throughput_1_pair": self.one_pair,
            "throughput_4_pairs": self.four_pairs,
            "latency_ms": (
                {
                    "samples": len(self.latencies_ns),
                    "p50": self.percentile_ms(0.50),
                    "p90": self.percentile_ms(0.90),
                    "p99": self.percentile_ms(0.99),
                    "max": self.percentile_ms(1.0),
                }
                if self.latencies_ns
                else None
            ),
            "idle_cpu_pct_of_one_core": self.idle_pct,
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """The mount holding ``path`` (fsync cost depends on it: tmpfs never syncs)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fstype, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return f"{kind} (mounted at {best or '?'})"


def machine_facts(root: Path) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "databases": f"{root} on {_filesystem(root.resolve())}",
    }


PEERS = frozenset({"seed", "seed-written", "seed-written-normal", "litequeue", "persistqueue"})
"""The queues issue 2 names as peers; every other row is ours or a reference."""


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Issue 2's targets, judged on this run's figures."""
    ours = next((r for r in results if r.key == "ours"), None)
    if ours is None:
        return []
    # Our other rows (producer batching) and reference designs are not peers.
    peers = [r for r in results if r.key in PEERS]
    checks: list[dict[str, Any]] = []
    if ours.latencies_ns:  # none in a --throughput-only run
        p50, p99 = ours.percentile_ms(0.50), ours.percentile_ms(0.99)
        checks.append(
            {
                "target": f"delivery p50 < {P50_MS:g} ms across processes",
                "measured": f"{p50:.3f} ms",
                "met": p50 < P50_MS,
            }
        )
        checks.append(
            {
                "target": f"delivery p99 < {P99_MS:g} ms across processes",
                "measured": f"{p99:.3f} ms",
                "met": p99 < P99_MS,
            }
        )
    for name, attr in (("1 pair", "one_pair"), ("4 pairs", "four_pairs")):
        if not peers:
            break
        best = max(peers, key=lambda r: float(getattr(r, attr)["per_s"]))
        mine = float(getattr(ours, attr)["per_s"])
        theirs = float(getattr(best, attr)["per_s"])
        checks.append(
            {
                "target": f"throughput, {name}: >= {THROUGHPUT_FACTOR:g}x best peer ({best.label})",
                "measured": f"{mine:,.0f}/s vs {theirs:,.0f}/s = {mine / theirs:.2f}x",
                "met": mine >= THROUGHPUT_FACTOR * theirs,
            }
        )
    if ours.idle_pct is None:  # a --throughput-only run measured no idle phase
        return checks
    checks.append(
        {
            "target": f"idle waiting consumers together < {IDLE_PCT:g}% of one core",
            "measured": f"{ours.idle_pct or 0:.2f}%",
            "met": ours.idle_pct is not None and ours.idle_pct < IDLE_PCT,
        }
    )
    return checks


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def print_report(facts: dict[str, Any], results: list[Result]) -> None:
    print("Machine")
    for k, v in facts.items():
        print(f"  {k:<10} {v}")
    print()
    rows = []
    for r in results:
        d = r.to_dict()
        lat = d["latency_ms"]
        runs = (r.one_pair, r.four_pairs)
        lost = sum(run["messages"] - run["received"] for run in runs)
        dup = sum(run["duplicates"] for run in runs)
        rows.append(
            [
                r.label,
                f"{r.one_pair['per_s']:,.0f}",
                f"{r.four_pairs['per_s']:,.0f}",
                f"{lat['p50']:.3f}" if lat else "-",
                f"{lat['p99']:.3f}" if lat else "-",
                f"{r.idle_pct:.2f}" if r.idle_pct is not None else "-",
                f"{lost}/{dup}",
            ]
        )
    print(
        _table(
            [
                "queue",
                "msg/s 1 pair",
                "msg/s 4 pairs",
                "p50 ms",
                "p99 ms",
                "idle CPU %",
                "lost/dup",
            ],
            rows,
        )
    )
    print()
    print("How each queue was driven")
    for r in results:
        print(f"  {r.label}")
        for k in ("synchronous", "wait", "batching"):
            print(f"    {k:<11} {r.info.get(k, '?')}")
        one, four = r.one_pair["mean_claim_batch"], r.four_pairs["mean_claim_batch"]
        print(f"    {'per claim':<11} {one:.1f} messages (1 pair), {four:.1f} (4 pairs)")
        if "cpu_us_per_msg" in r.one_pair:
            cpu = [x["cpu_us_per_msg"] for x in (r.one_pair, r.four_pairs)]
            prod = [x["producer_cpu_us_per_msg"] for x in (r.one_pair, r.four_pairs)]
            print(
                f"    {'CPU/msg':<11} {cpu[0]:.0f} us (1 pair; producer {prod[0]:.0f}), "
                f"{cpu[1]:.0f} us (4 pairs; producer {prod[1]:.0f})"
            )
            share = [100 * x["slow_send_share"] for x in (r.one_pair, r.four_pairs)]
            print(
                f"    {'lock waits':<11} sends > 0.5 ms took {share[0]:.0f}% of the producers' "
                f"send time (1 pair), {share[1]:.0f}% (4 pairs)"
            )
        runs = (r.one_pair.get("all_per_s"), r.four_pairs.get("all_per_s"))
        if runs[0] and len(runs[0]) > 1:
            print(f"    {'runs msg/s':<11} 1 pair {runs[0]}, 4 pairs {runs[1]} (median shown)")
    checks = targets(results)
    if checks:
        print()
        print("Targets (issue 2), ours")
        for c in checks:
            mark = "met    " if c["met"] else "NOT MET"
            print(f"  [{mark}] {c['target']}: {c['measured']}")
    print()
    print(
        "msg/s: messages sent, claimed and acked per second of wall time, producers and\n"
        "consumers running at once. Latency: monotonic clock stamped just before send()\n"
        "in the producer process, read when claim() returns in the consumer process.\n"
        "Idle CPU: user+system time of the waiting consumer processes over the window,\n"
        "as a percent of one core."
    )
