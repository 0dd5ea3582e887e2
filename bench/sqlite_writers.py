"""The floor under issue 14 part 3, measured: SQLite itself, one file, more writers.

    python bench/sqlite_writers.py [--writes N] [--repeats R] [--writers 1,2,4,8]

Part 3 asks 4 producer/consumer pairs (8 processes) to move at least what 1 pair (2
processes) moves, with the queue one SQLite file (DESIGN.md: "One SQLite file in WAL
mode"; plain SQL on the ``.db`` file). Here there is no queue at all: K processes, each a
loop of one ``INSERT`` of a 100-byte row into a table with no index but its rowid, in
autocommit (SQLite's shortest write: the write lock is held inside one C call), WAL,
``synchronous=NORMAL``, ``busy_timeout`` 10 s. Every writer connects and prepares first,
then all start together (a byte on a pipe) and the wall time runs from that byte to the
last writer's end, so start-up is not counted. The same K writers with **a file each**
show what the machine does when they do not share SQLite's one write lock.

A program, not a test: nothing here asserts on time. Runs interleave the layouts and
K in each repeat (order reversed every other repeat) and report each one's median.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WRITER = r"""
import sqlite3, sys, time
path, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
conn.execute("PRAGMA synchronous = NORMAL")
row = ("x" * 100,)
conn.execute("INSERT INTO m (b) VALUES (?)", row)  # the statement cached, the file open
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.read(1)
for _ in range(n):
    conn.execute("INSERT INTO m (b) VALUES (?)", row)
sys.stdout.write(f"{time.monotonic()}\n"); sys.stdout.flush()
"""


def _make(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE m (seq INTEGER PRIMARY KEY, b TEXT NOT NULL)")
    conn.commit()
    conn.close()


def run(root: Path, writers: int, writes: int, *, shared: bool) -> float:
    """Rows a second, all ``writers`` together, from the start byte to the last end."""
    paths = [root / ("shared.db" if shared else f"w{i}.db") for i in range(writers)]
    for path in set(paths):
        path.unlink(missing_ok=True)
        for side in ("-wal", "-shm"):
            Path(f"{path}{side}").unlink(missing_ok=True)
        _make(path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(writes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("a writer did not start")
    start = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("g")
        proc.stdin.close()
    ends = []
    for proc in procs:
        assert proc.stdout is not None
        ends.append(float(proc.stdout.readline()))
        proc.wait()
    return writers * writes / (max(ends) - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=40000, help="rows in all, per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--writers", default="1,2,4,8")
    args = ap.parse_args()
    counts = [int(k) for k in args.writers.split(",")]
    cases = [(shared, k) for shared in (True, False) for k in counts]
    got: dict[tuple[bool, int], list[float]] = {case: [] for case in cases}
    print(
        f"cpus {os.cpu_count()}, sqlite {sqlite3.sqlite_version}, python "
        f"{sys.version.split()[0]}, load {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for shared, k in cases if rep % 2 == 0 else cases[::-1]:
                got[(shared, k)].append(run(Path(tmp), k, args.writes // k, shared=shared))
    print(f"load {os.getloadavg()[0]:.2f} at the end; rows/s, median of {args.repeats}")
    print(f"{'writers':>8} {'one file':>12} {'vs 2':>6} {'a file each':>12} {'vs 2':>6}")
    med = {case: statistics.median(runs) for case, runs in got.items()}
    for k in counts:
        line = f"{k:>8}"
        for shared in (True, False):
            base = med.get((shared, 2))
            ratio = f"{med[(shared, k)] / base:.2f}" if base else "-"
            line += f" {med[(shared, k)]:>12,.0f} {ratio:>6}"
        print(line)
    for shared in (True, False):
        label = "one file" if shared else "a file each"
        for k in counts:
            runs = " ".join(f"{r:,.0f}" for r in got[(shared, k)])
            print(f"  {label}, {k} writers: {runs}")


if __name__ == "__main__":
    main()
