"""Start-up before and after, interleaved: `python bench/team.py --ab-startup TREE` (issue 14.5).

The supervisor of "before" runs the orchestrator package of TREE (another checkout, e.g.
``git archive main | tar -x -C /tmp/base``; PYTHONPATH puts it ahead of this tree), the
one of "after" this tree's; everything else (the claude CLI, the scripted model, HOME, the
bytecode folder) is shared. Rounds alternate which goes first, so load from elsewhere on
the machine hits both alike, and each run prints the 1-minute load average beside it.

Per team size: up -> every agent ready, up -> supervisor_started, up -> the first claude
starting, the claude processes' CPU and their children's, and issue 14.5's CPU floor with
and without those children. A program, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.team import (
    FLOOR_FACTOR,
    PYTHON_START_S,
    SCRIPT,
    Bench,
    _launch,
    _med,
    cpu_floor,
    machine,
    measure_startup,
)
from orchestrator.scripted_model import ScriptedModel

LABELS = ("before", "after")


def ab_startup(tree: Path, rounds: int, sizes: list[int]) -> int:
    if not (tree / "orchestrator" / "__init__.py").is_file():
        print(f"--ab-startup: {tree} has no orchestrator/ package", file=sys.stderr)
        return 2
    m = machine()
    cpus = int(m["cpus"])
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}, claude CLI {m['claude_cli']}; before = {tree}, after = this tree"
    )
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {x: {n: [] for n in sizes} for x in LABELS}
    with tempfile.TemporaryDirectory(prefix="octy-bench-") as tmp, ScriptedModel(SCRIPT) as model:
        bench = Bench(Path(tmp), model)
        for label in LABELS:  # warm-up: page cache, the CLI's first run, each tree's bytecode
            measure_startup(bench, 1, 0.0, tree if label == "before" else None)
        for r in range(rounds):
            for label in LABELS if r % 2 == 0 else LABELS[::-1]:
                for n in sizes:
                    load = os.getloadavg()[0]
                    sample, _ = measure_startup(bench, n, 0.0, tree if label == "before" else None)
                    row = {**asdict(sample), "load": load}
                    runs[label][n].append(row)
                    said = line(row, cpus)
                    print(f"  round {r + 1} {label:<6} {n:>2} agents: {said}", flush=True)
    print("\n## start-up, before | after (medians of the runs above)")
    for n in sizes:
        for label in LABELS:
            rows = runs[label][n]
            med = {k: _med([_value(x, k, cpus) for x in rows]) for k in KEYS}
            print(f"  {n:>2} agents, {label:<6} {line(med, cpus, summary=True)}")
    print(
        f"targets (issue 14.5): ready within {FLOOR_FACTOR:.2f}x the floor; up -> "
        f"supervisor_started < {PYTHON_START_S:g} s"
    )
    return 0


KEYS = (
    "ready_s",
    "supervisor_s",
    "launch",
    "cli",
    "children",
    "floor",
    "floor+",
    "sup_cpu",
    "load",
)


def _value(row: dict[str, Any], key: str, cpus: int) -> float:
    if key == "launch":
        return _launch(row)
    if key == "cli":
        return float(sum(row["cli_cpu_s"]))
    if key == "children":
        return float(sum(row["cli_children_cpu_s"]))
    if key == "floor":
        return cpu_floor(row, cpus)
    if key == "floor+":
        return cpu_floor(row, cpus, children=True)
    if key == "sup_cpu":
        return float(row["supervisor_cpu_s"])
    return float(row[key])


def line(row: dict[str, Any], cpus: int, *, summary: bool = False) -> str:
    v = row if summary else {k: _value(row, k, cpus) for k in KEYS}
    return (
        f"ready {v['ready_s']:5.2f} s, supervisor_started {v['supervisor_s']:4.2f}, first "
        f"claude {v['launch']:4.2f}; claude CPU {v['cli']:5.2f} (+{v['children']:4.2f} "
        f"children); floor {v['floor']:4.2f} -> {v['ready_s'] / v['floor']:4.2f}x (with "
        f"children {v['floor+']:4.2f} -> {v['ready_s'] / v['floor+']:4.2f}x); supervisor CPU "
        f"{v['sup_cpu']:4.2f}; load {v['load']:.1f}"
    )
