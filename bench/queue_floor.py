"""What issue 2's throughput target (2x the best peer) would take, measured.

    python bench/queue_floor.py [--messages N] [--repeats R] [--inserts N]

Part 1, one process, no contention: what one INSERT plus its commit costs in
our ``messages`` table as shipped, without its UNIQUE ``id`` index, without
that index and the CHECK constraints, and in the seed's table; and what a whole
``Mailbox.send()`` costs. Part 2: throughput with 1 and 4 producer/consumer
process pairs of the seed design, of the seed's table taken and acked in
batches like ours (``seed-batched``: a reference, not a peer), and of ours,
interleaved in one run. A program, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Same reason as bench/queue.py: bench/ must leave sys.path before anything
# imports the standard library's queue module (multiprocessing does).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.queue_backends import _SEED_SCHEMA  # noqa: E402
from bench.queue_run import REPO, throughput  # noqa: E402
from bench.queue_workers import Target  # noqa: E402
from orchestrator.mailbox import Mailbox, schema  # noqa: E402
from orchestrator.mailbox.model import new_id  # noqa: E402
from orchestrator.mailbox.sending import _INSERT_IF_KNOWN  # noqa: E402

_ID_COLUMN = "id             TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(8)))),"
_JSON_CHECK = "CHECK (json_valid(body))"


def _ours_ddl(*, unique_id: bool, checks: bool) -> str:
    ddl = schema.MIGRATIONS[0]
    if _ID_COLUMN not in ddl or _JSON_CHECK not in ddl:
        raise SystemExit("the messages table changed; update bench/queue_floor.py")
    if not unique_id:
        ddl = ddl.replace(_ID_COLUMN, "id TEXT,")
    if not checks:  # every CHECK of the messages table, kept out of the DDL
        for check in (
            _JSON_CHECK,
            "CHECK (kind IN ('request', 'response', 'notice', 'broadcast'))",
            "CHECK (status IN ('pending', 'leased', 'done', 'dead'))",
            "CHECK (max_attempts >= 1)",
        ):
            ddl = ddl.replace(check, "")
    return ddl


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {schema.CHECKPOINT_PAGES}")
    return conn


def _best_us(step: Callable[[int], object], n: int, rounds: int = 6) -> float:
    """Fastest of ``rounds`` runs of ``n`` calls, in microseconds per call."""
    best = float("inf")
    for r in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            step(r * n + i)
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def insert_costs(root: Path, n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    now = time.time()
    variants = (
        ("ours: messages table as shipped", True, True),
        ("ours without the UNIQUE id index", False, True),
        ("ours without that index and the CHECKs", False, False),
    )
    for label, unique_id, checks in variants:
        conn = _connect(root / f"{label[:12].replace(' ', '_')}-{unique_id}{checks}.db")
        conn.executescript(_ours_ddl(unique_id=unique_id, checks=checks))
        conn.execute("INSERT INTO agents (name) VALUES ('q0')")

        def ours(i: int, conn: sqlite3.Connection = conn) -> object:
            return conn.execute(
                _INSERT_IF_KNOWN,
                (
                    new_id(),
                    "notice",
                    "p",
                    "q0",
                    None,
                    None,
                    json.dumps({"i": i}),
                    "pending",
                    0,
                    5,
                    now,
                    now,
                    None,
                    None,
                    None,
                    None,
                    "q0",
                    "q0",
                ),
            )

        out.append((label, _best_us(ours, n)))
        conn.close()
    seed = _connect(root / "seed.db")
    seed.executescript(_SEED_SCHEMA)
    out.append(
        (
            "the seed's table",
            _best_us(
                lambda i: seed.execute(
                    "INSERT INTO messages (recipient, body, created_at) VALUES (?, ?, ?)",
                    ("q0", json.dumps({"i": i}), time.time()),
                ),
                n,
            ),
        )
    )
    seed.close()
    with Mailbox(root / "mailbox.db") as mb:
        mb.register("q0")
        out.append(
            (
                "Mailbox.send(), everything included",
                _best_us(lambda i: mb.send("p", "q0", {"i": i}), n),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/queue_floor.py", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=20_000, help="per throughput run")
    p.add_argument("--repeats", type=int, default=3, help="throughput runs per queue")
    p.add_argument("--inserts", type=int, default=3000, help="calls per timing round (part 1)")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    os.chdir(REPO)  # spawned workers must not start in a folder that shadows the stdlib
    base = Path(tempfile.mkdtemp(prefix="octy-floor-"))
    try:
        print("Part 1: one INSERT + commit, one process (fastest of 6 rounds)")
        for label, us in insert_costs(base, args.inserts):
            print(f"  {label:42s} {us:6.1f} us")
        print(f"\nPart 2: throughput, {args.messages} messages, median of {args.repeats}")
        keys = ("seed", "seed-batched", "ours")
        runs: dict[tuple[str, int], list[float]] = {}
        for rep in range(args.repeats):
            for key in keys:
                for pairs in (1, 4):
                    root = base / f"{key}-{pairs}-{rep}"
                    batch = 1 if key == "seed" else args.batch
                    got = throughput(
                        Target(key, 0.1, str(root), ""),
                        pairs=pairs,
                        total=args.messages,
                        batch=batch,
                    )
                    if got["received"] != got["messages"] or got["duplicates"]:
                        raise SystemExit(f"{key}: lost or duplicated messages: {got}")
                    runs.setdefault((key, pairs), []).append(float(got["per_s"]))
                    shutil.rmtree(root, ignore_errors=True)
        for pairs in (1, 4):
            seed = statistics.median(runs["seed", pairs])
            for key in keys:
                rates = runs[key, pairs]
                med = statistics.median(rates)
                each = " ".join(f"{r:,.0f}" for r in rates)
                print(
                    f"  {pairs} pair{'s' if pairs > 1 else ' '} {key:13s} {med:8,.0f} msg/s"
                    f"  = {med / seed:4.2f}x seed   (runs: {each})"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
