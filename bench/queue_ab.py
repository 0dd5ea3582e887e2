"""Issue 14.3: two trees' queues, run by turns, for a machine others are using.

    python bench/queue_ab.py --base DIR [--keys ours,seed-written-normal] [--rounds 5]

DIR is another checkout with its own ``.venv`` (``git archive REV | tar -x -C DIR``, then a
virtualenv there). Each round runs one throughput run (``bench/queue_run.throughput``,
``--messages`` messages) of every key at 1 and at 4 pairs in each tree, the trees' order
swapped every round, so a burst of load from elsewhere falls on both alike; only the
ratios of the same round are worth reading on a shared machine. A program, not a test.
Figures: docs/benchmarks.md, "Issue 14.3, eleventh session".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_ONE = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from bench.queue_run import throughput
from bench.queue_workers import Target
key, pairs, total, batch, root = sys.argv[1:6]
got = throughput(Target(key, 0.1, root, ""), pairs=int(pairs), total=int(total), batch=int(batch))
print(json.dumps(got))
"""


def _run(tree: Path, key: str, pairs: int, total: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="octy-ab-") as root:
        out = subprocess.run(
            [
                str(tree / ".venv/bin/python"),
                "-c",
                _ONE,
                key,
                str(pairs),
                str(total),
                str(batch),
                root,
            ],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    if out.returncode != 0:
        raise SystemExit(f"{tree} {key} {pairs}p failed:\n{out.stderr[-2000:]}")
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if got["received"] != got["messages"] or got["duplicates"]:
        raise SystemExit(f"{tree} {key}: lost or duplicated messages: {got}")
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/queue_ab.py", description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--new", type=Path, default=Path(__file__).resolve().parent.parent)
    p.add_argument("--keys", default="ours,seed-written-normal")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--messages", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    trees = {"base": args.base.resolve(), "new": args.new}
    keys = args.keys.split(",")
    runs: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    print(f"load {os.getloadavg()[0]:.2f} at start; base {trees['base']}, new {trees['new']}")
    for rnd in range(args.rounds):
        order = ["base", "new"] if rnd % 2 == 0 else ["new", "base"]
        for key in keys:
            batch = 1 if key.startswith("seed-written") else args.batch
            for pairs in (1, 4):
                line = []
                for name in order:
                    got = _run(trees[name], key, pairs, args.messages, batch)
                    runs.setdefault((name, key, pairs), []).append(got)
                    line.append(
                        f"{name} {got['per_s']:7,.0f} msg/s cpu {got['cpu_us_per_msg']:4.0f} us"
                        f" (prod {got['producer_cpu_us_per_msg']:3.0f}) waits"
                        f" {got['slow_send_share']:4.0%} {got['mean_claim_batch']:4.1f}/claim"
                    )
                new, base = runs["new", key, pairs][-1], runs["base", key, pairs][-1]
                print(
                    f"round {rnd + 1} load {os.getloadavg()[0]:5.2f} {key:20s} {pairs}p  "
                    + " | ".join(line)
                    + f"  new/base {new['per_s'] / base['per_s']:.2f}x",
                    flush=True,
                )
    print(f"load {os.getloadavg()[0]:.2f} at end; medians over {args.rounds} rounds:")
    for key in keys:
        for pairs in (1, 4):
            med = {
                name: {
                    f: statistics.median(r[f] for r in runs[name, key, pairs])
                    for f in ("per_s", "cpu_us_per_msg", "producer_cpu_us_per_msg")
                }
                for name in trees
            }
            ratios = [
                n["per_s"] / b["per_s"]
                for n, b in zip(runs["new", key, pairs], runs["base", key, pairs], strict=True)
            ]
            print(
                f"  {key:20s} {pairs}p  base {med['base']['per_s']:7,.0f} msg/s"
                f" cpu {med['base']['cpu_us_per_msg']:4.0f} (prod"
                f" {med['base']['producer_cpu_us_per_msg']:3.0f})   new"
                f" {med['new']['per_s']:7,.0f} msg/s cpu {med['new']['cpu_us_per_msg']:4.0f}"
                f" (prod {med['new']['producer_cpu_us_per_msg']:3.0f})   new/base per round "
                + " ".join(f"{r:.2f}" for r in ratios)
                + f"  median {statistics.median(ratios):.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
