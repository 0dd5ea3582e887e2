"""The phases of bench/queue.py, each in fresh processes and a fresh folder."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.queue_backends import backends
from bench.queue_busy import busy_idle, print_busy_idle
from bench.queue_nats_backends import servers as nats_servers
from bench.queue_report import Result, machine_facts, print_report, targets
from bench.queue_workers import (
    Target,
    consumer,
    idle_consumer,
    latency_consumer,
    latency_producer,
    producer,
    run_quietly,
)

REPO = Path(__file__).resolve().parent.parent
CTX = mp.get_context("spawn")
JOIN_S = 300.0  # a safety net against a wedged worker, never a measurement


def _start(target: Any, *args: Any) -> Any:
    proc = CTX.Process(target=run_quietly, args=(target, *args), daemon=True)
    proc.start()
    return proc


def _stop(procs: list[Any]) -> None:
    for p in procs:
        p.join(JOIN_S)
        if p.is_alive():
            p.terminate()
            p.join(5)


def _report(conn: Any, proc: Any, what: str) -> Any:
    """A worker's result; a worker that died says so instead of hanging the bench."""
    try:
        return conn.recv()
    except EOFError:
        proc.join(5)
        raise RuntimeError(
            f"{what} exited with code {proc.exitcode} before reporting (traceback above)"
        ) from None


def throughput(t: Target, *, pairs: int, total: int, batch: int) -> dict[str, Any]:
    """``pairs`` producers each feed their own consumer; all run at once."""
    queues = [f"q{i}" for i in range(pairs)]
    backends(t.poll_s)[t.key]().prepare(Path(t.root), queues)
    per_pair = total // pairs
    start = CTX.Barrier(2 * pairs + 1)
    procs, readers, stats = [], [], []
    for q in queues:
        each = Target(t.key, t.poll_s, t.root, q)
        recv, send = CTX.Pipe(duplex=False)
        reader = _start(consumer, each, per_pair, batch, start, send)
        send.close()  # the child holds the only write end: its death is an EOF here
        readers.append((recv, reader, f"{t.key} consumer {q}"))
        stats.append(CTX.Array("d", 4))
        procs += [reader, _start(producer, each, per_pair, start, stats[-1])]
    start.wait(JOIN_S)
    t0 = time.monotonic_ns()
    reports = [_report(*r) for r in readers]
    _stop(procs)
    elapsed = (max(r["end_ns"] for r in reports) - t0) / 1e9
    received = sum(r["received"] for r in reports)
    return {
        "pairs": pairs,
        "messages": per_pair * pairs,
        "received": received,
        "duplicates": sum(r["duplicates"] for r in reports),
        "mean_claim_batch": received / max(1, sum(r["claims"] for r in reports)),
        "seconds": elapsed,
        "per_s": received / elapsed,
        # Where the time goes (issue 14.3): CPU per message of producers and consumers,
        # and the share of the producers' send time spent in sends slower than 0.5 ms
        # (waiting for the write lock: SQLite's busy handler sleeps 1, 2, 5... ms).
        "cpu_us_per_msg": 1e6
        * (sum(s[0] for s in stats) + sum(r["cpu_s"] for r in reports))
        / max(1, received),
        "producer_cpu_us_per_msg": 1e6 * sum(s[0] for s in stats) / max(1, received),
        "slow_sends": int(sum(s[1] for s in stats)),
        "slow_send_share": sum(s[2] for s in stats) / max(1e-9, sum(s[3] for s in stats)),
    }


def latency(t: Target, *, n: int, batch: int) -> list[int]:
    """One producer, one consumer in another process; nanoseconds from send to claim."""
    backends(t.poll_s)[t.key]().prepare(Path(t.root), [t.queue])
    start = CTX.Barrier(3)
    recv, send = CTX.Pipe(duplex=False)
    procs = [
        _start(latency_consumer, t, n, batch, start, send),
        _start(latency_producer, t, n, (0.001, 0.004), start),
    ]
    send.close()
    start.wait(JOIN_S)
    samples: list[int] = _report(recv, procs[0], f"{t.key} latency consumer")
    _stop(procs)
    return samples


def idle_cpu(t: Target, *, consumers: int, window_s: float, wait_s: float) -> float:
    """Percent of one core used by ``consumers`` idle waiting processes over ``window_s``."""
    import psutil

    queues = [f"idle{i}" for i in range(consumers)]
    backends(t.poll_s)[t.key]().prepare(Path(t.root), queues)
    ready = [CTX.Event() for _ in queues]
    procs = [
        _start(idle_consumer, Target(t.key, t.poll_s, t.root, q), ev, wait_s)
        for q, ev in zip(queues, ready, strict=True)
    ]
    for ev in ready:
        ev.wait(JOIN_S)
    time.sleep(1.0)  # let imports and first claims finish before the window opens

    def cpu() -> float:
        total = 0.0
        for p in procs:
            ps = psutil.Process(p.pid)
            for each in [ps, *ps.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        return total

    before, t0 = cpu(), time.monotonic()
    time.sleep(window_s)
    used, wall = cpu() - before, time.monotonic() - t0
    for p in procs:
        p.terminate()
    _stop(procs)
    return 100.0 * used / wall


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/queue.py",
        description="Throughput, latency and idle CPU of our queue and its peers.",
    )
    p.add_argument("--quick", action="store_true", help="fewer messages, shorter idle window")
    p.add_argument(
        "--queues",
        default="ours,seed,litequeue,persistqueue,ours-send-many,nats,nats-cluster",
        help="which to run, comma-separated (default: all)",
    )
    p.add_argument("--messages", type=int, help="per throughput run (default 6000; quick 2000)")
    p.add_argument("--repeats", type=int, help="throughput runs per queue (default 3; quick 1)")
    p.add_argument("--samples", type=int, help="latency samples (default 1000; quick 200)")
    p.add_argument("--batch", type=int, default=64, help="claim limit where batching is safe")
    p.add_argument(
        "--peer-poll-ms", type=float, default=10.0, help="litequeue/persist-queue poll interval"
    )
    p.add_argument("--idle-consumers", type=int, default=20)
    p.add_argument("--idle-window", type=float, help="seconds measured (default 10; quick 3)")
    p.add_argument(
        "--idle-wait", type=float, default=1.0, help="timeout of each wait_for_messages() call"
    )
    p.add_argument(
        "--busy-rate",
        type=float,
        default=200.0,
        help="msg/s of the busy pair in the 'idle while others are busy' phase",
    )
    p.add_argument(
        "--busy-idle-only",
        action="store_true",
        help="run only the 'idle while others are busy' phase (for ours)",
    )
    p.add_argument(
        "--throughput-only",
        action="store_true",
        help="run only the throughput phase (no latency, idle or busy-idle phases)",
    )
    p.add_argument("--dir", type=Path, help="parent of the temp folder for the databases")
    p.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    return p


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, the others kept alongside (the machine is shared)."""
    ranked = sorted(runs, key=lambda r: float(r["per_s"]))
    return {**ranked[len(ranked) // 2], "all_per_s": [round(r["per_s"]) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    """The bench, with loopback NATS servers running for the nats* queues."""
    keys = [k.strip() for k in _parser().parse_args(argv).queues.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="octy-bench-nats-") as store,
        nats_servers(keys, Path(store)),
    ):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    messages = args.messages or (2000 if args.quick else 6000)
    samples = args.samples or (200 if args.quick else 1000)
    window = args.idle_window or (3.0 if args.quick else 10.0)
    repeats = args.repeats or (1 if args.quick else 3)
    poll_s = args.peer_poll_ms / 1000.0
    known = backends(poll_s)
    keys = [k.strip() for k in args.queues.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        parser.error(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(known)}")

    # Spawned children start with their cwd on sys.path: run them from the
    # repo root, where nothing shadows the standard library.
    os.chdir(REPO)
    base = Path(tempfile.mkdtemp(prefix="octy-bench-", dir=args.dir))
    facts = machine_facts(base)
    facts["settings"] = (
        f"{messages} messages per throughput run (median of {repeats}, queues interleaved), "
        f"{samples} latency samples (1-4 ms apart), {args.idle_consumers} idle consumers "
        f"over {window:g} s, claim batch {args.batch} where the queue batches"
    )
    load_before = os.getloadavg()[0]
    results: list[Result] = []

    def target(key: str, phase: str) -> Target:
        return Target(key, poll_s, str(base / key / phase), "lat")

    if args.busy_idle_only:
        try:
            r = busy_idle(
                Target("ours", poll_s, str(base / "ours" / "busy"), "busy"),
                consumers=args.idle_consumers,
                window_s=window,
                wait_s=args.idle_wait,
                rate=args.busy_rate,
                batch=args.batch,
            )
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print_busy_idle("ours", r)
        if args.json_out:
            args.json_out.write_text(json.dumps({"machine": facts, "busy_idle": r}, indent=2))
        return 0
    busy: dict[str, dict[str, Any]] = {}
    try:
        batches = {k: args.batch if known[k]().batches else 1 for k in keys}
        tp: dict[tuple[str, int], list[dict[str, Any]]] = {}
        # Repeats outermost: a burst of load from elsewhere hits every queue alike.
        for rep in range(repeats):
            for key in keys:
                print(f"… throughput {key} (run {rep + 1}/{repeats})", file=sys.stderr, flush=True)
                for pairs in (1, 4):
                    run = throughput(
                        target(key, f"tp{pairs}-{rep}"),
                        pairs=pairs,
                        total=messages,
                        batch=batches[key],
                    )
                    tp.setdefault((key, pairs), []).append(run)
        for key in keys:
            backend = known[key]()
            measure = not (backend.throughput_only or args.throughput_only)
            if measure:
                print(f"… latency and idle CPU {key}", file=sys.stderr, flush=True)
            lat: list[int] = []
            idle: float | None = None
            if measure:
                lat = latency(target(key, "lat"), n=samples, batch=batches[key])
                idle = idle_cpu(
                    target(key, "idle"),
                    consumers=args.idle_consumers,
                    window_s=window,
                    wait_s=args.idle_wait,
                )
            if key == "ours" and not args.throughput_only:  # the only wake-up to measure
                print(f"… idle while others are busy {key}", file=sys.stderr, flush=True)
                busy[key] = busy_idle(
                    target(key, "busy"),
                    consumers=args.idle_consumers,
                    window_s=window,
                    wait_s=args.idle_wait,
                    rate=args.busy_rate,
                    batch=batches[key],
                )
            info = backend.describe(base / key / "tp1-0")
            one, four = _median_run(tp[key, 1]), _median_run(tp[key, 4])
            results.append(Result(key, backend.label, info, one, four, lat, idle))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    facts["load"] = (
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        f"({os.cpu_count()} cores; anything else running competes for them)"
    )

    print_report(facts, results)
    for key, r in busy.items():
        print()
        print_busy_idle(key, r)
    if args.json_out:
        doc = {
            "machine": facts,
            "results": [r.to_dict() for r in results],
            "targets": targets(results),
            "busy_idle": busy,
        }
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0
