"""Queue benchmark: our mailbox against the seed design, litequeue and persist-queue.

    python bench/queue.py [--quick] [--queues ours,seed,litequeue,persistqueue]

One run, one machine, separate processes (multiprocessing spawn), real files
in a temporary folder. For each queue: throughput (send + claim + ack) with 1
and 4 producer/consumer process pairs, delivery latency from send to claim
across processes (p50/p99), and the CPU that 20 idle waiting consumers burn
over 10 s. A program, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is called queue.py (issue 2 names it), so its folder must leave
# sys.path before anything imports the standard library's queue module
# (multiprocessing does); the repo root goes on instead, for `bench.*`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.queue_run import main  # noqa: E402  (needs the sys.path fix above first)

if __name__ == "__main__":
    sys.exit(main())
