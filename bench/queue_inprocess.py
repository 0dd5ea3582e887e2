"""Issue 14.3 as a team meets it: producer/consumer pairs inside ONE process, on one
``AsyncMailbox`` — the way a supervisor's agents use the queue (their relay tools and
runners all run in the supervisor's event loop), beside the same pairs as separate
processes (``bench/queue.py``'s pairs: external clients, scripts, the CLI).

    python bench/queue_inprocess.py [--messages N] [--repeats R] [--pairs 1,4]

Each pair: a producer task sending one message at a time (``send``), a consumer task
claiming up to 64 (``claim``), acking them (``ack``) and waiting on the change feed
(``wait_for_messages``) when its inbox is empty. Throughput is messages over the time
from the first send to the last ack. A program, not a test: nothing asserts on time.
Figures: docs/benchmarks.md, "Issue 14.3, seventeenth session".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # the repo's queue/ folder must not shadow the stdlib's queue
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

PRODUCER = "producer"


async def run(path: Path, pairs: int, total: int, synchronous: str) -> tuple[float, float]:
    """One run: (messages a second, CPU µs a message of this whole process)."""
    from orchestrator.mailbox.aio import AsyncMailbox

    per_pair = total // pairs
    inboxes = [f"q{i}" for i in range(pairs)]
    async with AsyncMailbox(path, synchronous=synchronous) as mb:  # type: ignore[arg-type]
        await mb.register(PRODUCER, "bench producer")
        for q in inboxes:
            await mb.register(q, "bench consumer")

        async def produce(q: str) -> None:
            for i in range(per_pair):
                await mb.send(PRODUCER, q, {"n": i})

        async def consume(q: str) -> None:
            got = 0
            while got < per_pair:
                batch = await mb.claim(q, owner=f"{q}-consumer", limit=64)
                if not batch:
                    await mb.wait_for_messages(q, 1.0)
                    continue
                await mb.ack([m.id for m in batch], owner=f"{q}-consumer")
                got += len(batch)

        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(consume(q) for q in inboxes), *(produce(q) for q in inboxes))
        took = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    n = per_pair * pairs
    return n / took, cpu / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/queue_inprocess.py", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=6000, help="per run, all pairs together")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", default="1,4")
    p.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.pairs.split(",")]
    print(f"load {os.getloadavg()[0]:.2f} at start", flush=True)
    runs: dict[int, list[tuple[float, float]]] = {c: [] for c in counts}
    with tempfile.TemporaryDirectory(prefix="octy-inproc-") as tmp:
        for rep in range(args.repeats):
            for pairs in counts if rep % 2 == 0 else counts[::-1]:
                path = Path(tmp) / f"{pairs}-{rep}" / "team.db"
                path.parent.mkdir(mode=0o700)
                rate, cpu = asyncio.run(run(path, pairs, args.messages, args.synchronous))
                runs[pairs].append((rate, cpu))
                print(f"  {pairs}p {rate:,.0f} msg/s, cpu {cpu:.0f} us a message", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at end")
    for pairs in counts:
        rates = [r for r, _ in runs[pairs]]
        cpus = [c for _, c in runs[pairs]]
        each = " ".join(f"{r:,.0f}" for r in rates)
        rate = statistics.median(rates)
        print(
            f"  {pairs}p in one process ({args.synchronous}): {rate:8,.0f} msg/s,"
            f" cpu {statistics.median(cpus):.0f} us a message (runs: {each})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
