"""What working out whom a Write holds costs (orchestrator/hold_scope.py): the folders on
the path, and each agent's writable areas read from its claude in /proc. N stand-in
claudes (a process started as the supervisor starts one: ``--settings`` on its command
line, its temp folder (made, as the launcher makes it) and HOME in its environment, a
folder of its own as its cwd).

    python bench/hold_scope.py [--agents 5 20 100] [--calls 200]

A program, not a test: it prints the CPU time per Write (one racers() call; the hook
makes it twice, before and after the stops) and how many claudes it held.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402  (after the sys.path fix above)
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from orchestrator import hold_scope  # noqa: E402
from orchestrator.roster import parse_roster  # noqa: E402

SETTINGS = {"sandbox": {"enabled": True, "filesystem": {"allowWrite": []}}}


def measure(agents: int, calls: int) -> tuple[float, int]:
    root = Path(tempfile.mkdtemp(prefix="octy-bench-"))
    names = [f"a{i}" for i in range(agents)]
    for n in names:
        (root / n / "src" / "deep").mkdir(parents=True)
        (root / "tmp" / n).mkdir(parents=True)  # as the launcher makes each agent's
    text = "agents:\n" + "".join(f"  {n}: {{prompt: p, tools: [Bash], cwd: {n}}}\n" for n in names)
    roster = parse_roster(text, root / "agents.yaml", {})
    procs = {}
    try:
        for n in names:
            procs[n] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; sys.stdin.read()",
                    "--settings",
                    json.dumps(SETTINGS),
                ],
                cwd=root / n,
                env={"HOME": str(root), "CLAUDE_CODE_TMPDIR": str(root / "tmp" / n)},
                stdin=subprocess.PIPE,
            )
        for p in procs.values():
            while b"--settings" not in Path(f"/proc/{p.pid}/cmdline").read_bytes():
                time.sleep(0.01)
        clis = {n: p.pid for n, p in procs.items()}

        def write() -> set[int]:
            """One racers() call as the policy hook makes it (orchestrator/policy.py):
            settings files read once for the Write (where areas() takes them)."""
            seen: dict[str, object] = {}

            def areas(name: str, pid: int) -> list[str] | None:
                # An areas() without ``seen`` too: the bench runs against an earlier tree
                # for A/B (docs/benchmarks.md).
                if "seen" in hold_scope.areas.__code__.co_varnames:
                    return hold_scope.areas(roster.agents[name], pid, None, seen)
                return hold_scope.areas(roster.agents[name], pid)

            return hold_scope.racers(path, str(root / "a0"), clis, areas)

        path = str(root / "a0" / "src" / "deep" / "f.py")
        held = write()
        started = time.process_time()
        for _ in range(calls):
            write()
        return (time.process_time() - started) / calls, len(held)
    finally:
        for p in procs.values():
            p.kill()
            p.communicate()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 20, 100])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    for n in args.agents:
        cpu, held = measure(n, args.calls)
        print(f"agents={n} cpu_per_write_ms={cpu * 1000:.2f} held={held}")


if __name__ == "__main__":
    main()
