"""CLI start-up benchmark (issue 14.1): how long each everyday verb takes, as a user meets it.

    python bench/cli.py [--runs N] [--json-out FILE]

Each verb runs as a fresh process through the ``octy-orchestrate`` console script of
this interpreter's environment (what scripts and Claude Code hooks call), in a team
folder written by ``octy-orchestrate init`` (so verbs read its agents.yaml, as they
do in a real project). Printed per verb: the median wall time, the median CPU
(user+system) of the process, and the wall time's ratio to two peers measured in
the same run, interleaved with the verbs so that load from elsewhere hits all alike:

- ``python -c pass`` with the same interpreter: the floor of any Python CLI;
- ``sqlite3 team.db 'select 1'`` (the Debian ``sqlite3`` shell): a native client of
  the same file. Skipped, and said so, when the shell is not installed.

``ask`` is answered by a responder process (a ``Mailbox`` client acting as ``bob``)
that replies as soon as it is woken: its wall time is the start-up plus one round
trip. A program, not a test: nothing here asserts on time; the issue's target
(each verb under 100 ms median) is printed as met or not met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TARGET_MS = 100.0
BIN = Path(sys.executable).parent
CLI = str(BIN / "octy-orchestrate")
RESPONDER = """
import sys
from orchestrator.mailbox import Mailbox
with Mailbox(sys.argv[1]) as mb:
    print("ready", flush=True)
    while True:
        for m in mb.claim("bob", owner="bench", limit=10):
            if m.body == "stop":
                mb.ack([m.id], owner="bench")
                raise SystemExit(0)
            mb.reply(m.id, "bob", "ok")
            mb.ack([m.id], owner="bench")
        mb.wait_for_messages("bob", 1.0)
"""


@dataclass
class Case:
    name: str
    argv: list[str] | None = None  # None: built per run (reply needs a fresh request)
    peer: bool = False
    env: dict[str, str] | None = None  # None: the run's usual environment
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def _env(pycache: Path) -> dict[str, str]:
    """A user's shell: no agent's variables, and compiled bytecode as an installed package
    has it (pip compiles a wheel's modules; an editable install writes __pycache__ on first
    run). This machine sets PYTHONDONTWRITEBYTECODE=1, which makes every run compile the
    package from source: the bytecode goes to a folder of this run instead, and the
    ``send, no bytecode`` row shows what that setting costs."""
    env = dict(os.environ)
    for key in ("OCTY_DB", "OCTY_AGENT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, timeout=60)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _setup(team: Path, env: dict[str, str]) -> Path:
    for argv in (
        [CLI, "init"],
        [CLI, "register", "bob", "--pid", "0"],
        [CLI, "register", "carol", "--pid", "0"],
        [CLI, "register", "dave", "--pid", "0"],
        [CLI, "send", "carol", "a first message"],
    ):
        _run(argv, team, env)
    return team / "queue" / "team.db"


def _request_ids(db: Path, n: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from orchestrator.mailbox import Mailbox  # after the path fix

    with Mailbox(db) as mb:
        return [mb.request("user", "dave", f"question {i}").id for i in range(n)]


def _machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores; Linux {platform.release()}; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    ap.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    opts = ap.parse_args()
    sqlite_shell = shutil.which("sqlite3")
    with tempfile.TemporaryDirectory(prefix="octy-bench-cli-") as tmp:
        team = Path(tmp) / "team"
        team.mkdir()
        env = _env(Path(tmp) / "pycache")
        # As this machine's shells: the standard library's bytecode as installed, none
        # written for the package (unless something else ran without the setting).
        no_bytecode = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        no_bytecode.pop("PYTHONPYCACHEPREFIX")
        db = _setup(team, env)
        requests = iter(_request_ids(db, opts.runs + 2))
        responder = subprocess.Popen(
            [sys.executable, "-c", RESPONDER, str(db)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert responder.stdout is not None
        responder.stdout.readline()
        cases = [
            Case("python -c pass", [sys.executable, "-c", "pass"], peer=True),
            Case("--version", [CLI, "--version"]),
            Case("send", [CLI, "send", "carol", "hello"]),
            Case("inbox", [CLI, "inbox", "carol"]),
            Case("reply", None),
            Case("ps", [CLI, "ps"]),
            Case("queue ls", [CLI, "queue", "ls"]),
            Case("ask (answered at once)", [CLI, "ask", "bob", "hi", "--timeout", "30"]),
            Case("python -m orchestrator.cli --version", None),
            Case("send, no bytecode", [CLI, "send", "carol", "hello"], env=no_bytecode),
        ]
        cases[-2].argv = [sys.executable, "-m", "orchestrator.cli", "--version"]
        if sqlite_shell:
            cases.insert(
                1,
                Case("sqlite3 team.db 'select 1'", [sqlite_shell, str(db), "select 1"], peer=True),
            )
        load_before = os.getloadavg()
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        try:
            for case in cases:  # once each first: bytecode written, files in the page cache
                _run(case.argv or [CLI, "reply", next(requests), "ok", "--as", "dave"], team, env)
            for _ in range(opts.runs):  # interleaved: one of each, then again
                for case in cases:
                    argv = case.argv or [CLI, "reply", next(requests), "ok", "--as", "dave"]
                    wall, cpu = _run(argv, team, case.env or env)
                    case.wall.append(wall)
                    case.cpu.append(cpu)
        finally:
            with contextlib.suppress(Exception):
                _run([CLI, "send", "bob", "stop"], team, env)
            responder.wait(timeout=10)
        load_after = os.getloadavg()

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    floor = med(cases[0].wall)
    native = next((med(c.wall) for c in cases if c.name.startswith("sqlite3")), None)
    print(f"# CLI start-up, {started}, {opts.runs} runs each, interleaved")
    print(f"machine: {_machine()}")
    print(
        f"load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after {', '.join(f'{x:.2f}' for x in load_after)}"
    )
    if not sqlite_shell:
        print("sqlite3 shell not installed: that peer is skipped (apt-get install sqlite3)")
    print()
    print(
        "| command | wall ms (median) | CPU ms (median) | x python -c pass | x sqlite3 "
        f"| < {TARGET_MS:g} ms |"
    )
    print("|---|---:|---:|---:|---:|---|")
    doc = []
    for c in cases:
        wall = med(c.wall)
        to_native = f"{wall / native:.1f}" if native else "-"
        verdict = (
            ""
            if c.peer or c.name.startswith(("python -m", "send, no"))
            else ("met" if wall < TARGET_MS else "NOT met")
        )
        print(
            f"| {c.name} | {wall:.1f} | {med(c.cpu):.1f} | {wall / floor:.1f} | {to_native} "
            f"| {verdict} |"
        )
        doc.append({"command": c.name, "wall_ms": c.wall, "cpu_ms": c.cpu})
    print()
    print("ask: start-up plus one round trip to a responder that replies at once.")
    print("python -m: the same --version without the console script's wrapper, for reference.")
    print("no bytecode: PYTHONDONTWRITEBYTECODE=1 as this machine's shells set it: the package is")
    print("compiled from source on every run (an installed wheel, or any other shell, has .pyc).")
    if opts.json_out:
        opts.json_out.write_text(
            json.dumps(
                {
                    "started": started,
                    "machine": _machine(),
                    "load": [load_before, load_after],
                    "runs": doc,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
