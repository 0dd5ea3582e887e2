"""Reading full-size logs: `trace ID` and `logs -n 5` against default-size log files.

    python bench/logs.py [--mb 55] [--runs 5] [--keep DIR] [--against TREE]

Builds a team folder: a queue with one traced family (user asks a, a asks b, b
answers, a answers) and `logs/` written by the real logconfig at the roster's
defaults (10 MiB files, 5 backups) with a mix like a busy team's (received,
tool_used, asked, turn, with bodies of a few hundred characters) until the
supervisor's log and its backups hold ``--mb`` MB; the traced family's events
sit in an old backup. Then each verb runs as a fresh process through the
``octy-orchestrate`` console script: median wall time and peak RSS (from wait4)
over ``--runs``. A program, not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from orchestrator import logconfig
from orchestrator.mailbox import USER, Mailbox

ROSTER = "logs: logs\nagents:\n  a:\n    prompt: A.\n  b:\n    prompt: B.\n"
BODY = "Please look at the failing test in tests/test_x.py and say why it fails. " * 3


def build(root: Path, mb: float) -> str:
    """The team folder under ``root``; returns the traced request's id."""
    (root / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    log = structlog.get_logger()
    logconfig.configure(root / "logs")  # the roster's defaults: 10 MiB, 5 backups
    chain = sorted((root / "logs").glob("supervisor.jsonl*"))
    target = mb * 1e6
    traced = ""
    cycle = 0
    with Mailbox(root / "queue" / "team.db") as mailbox:
        for name in ("a", "b"):
            mailbox.register(name)
        while True:
            if cycle % 500 == 0:
                chain = sorted((root / "logs").glob("supervisor.jsonl*"))
                size = sum(p.stat().st_size for p in chain)
                if size >= target:
                    break
                if not traced and size >= target * 0.3:
                    traced = _family(mailbox, log)
            agent, other = ("a", "b") if cycle % 2 else ("b", "a")
            mid = f"{cycle:032x}"
            log.info(
                "received",
                agent=agent,
                message_id=mid,
                kind="request",
                sender=other,
                body=BODY,
                attempt=1,
            )
            for tool in ("Read", "Grep", "Edit"):
                log.info(
                    "tool_used",
                    agent=agent,
                    tool=tool,
                    input={"file_path": f"src/mod_{cycle % 97}.py", "pattern": "def "},
                )
            log.info("asked", agent=agent, to=other, request_id=f"{cycle:031x}f", body=BODY)
            log.info(
                "turn",
                agent=agent,
                session_id="s",
                duration_ms=1234,
                input_tokens=5000,
                output_tokens=400,
                cost_usd=0.01,
                took_s=1.2,
            )
            cycle += 1
    logconfig.shutdown()
    return traced


def _family(mailbox: Mailbox, log: structlog.typing.FilteringBoundLogger) -> str:
    request = mailbox.request(USER, "a", {"text": "What is 6x7?"})
    [m] = mailbox.claim("a", owner="a:1")
    log.info("received", agent="a", message_id=m.id, kind="request", sender=USER, body="6x7?")
    log.info("tool_used", agent="a", tool="Read", input={"file_path": "notes.md"})
    ask = mailbox.request("a", "b", {"text": "multiply"}, cause_id=m.id, wait_s=60)
    log.info("asked", agent="a", to="b", request_id=ask.id, body="multiply")
    [asked] = mailbox.claim("b", owner="b:1")
    log.info("received", agent="b", message_id=asked.id, kind="request", sender="a", body="x")
    mailbox.reply(asked.id, "b", {"text": "42"})
    mailbox.ack([asked.id], owner="b:1")
    log.info("turn", agent="b", session_id="s", duration_ms=12, input_tokens=10)
    log.info("answered", agent="a", by="b", request_id=ask.id, body="42")
    mailbox.reply(m.id, "a", {"text": "42"})
    mailbox.ack([m.id], owner="a:1")
    log.info("turn", agent="a", session_id="s", duration_ms=40, input_tokens=100)
    return request.id


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=55.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the team folder here")
    parser.add_argument(
        "--against",
        type=Path,
        help="another source tree (`git archive REV | tar -x -C DIR`): each verb also runs "
        "with its orchestrator, interleaved with this one's",
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-logs-"))
    marker = root / "traced-id"
    if marker.exists():
        traced = marker.read_text()
    else:
        root.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        traced = build(root, args.mb)
        marker.write_text(traced)
        print(f"built {root} in {time.perf_counter() - began:.1f} s")
    size = sum(p.stat().st_size for p in (root / "logs").glob("supervisor.jsonl*"))
    print(f"supervisor.jsonl and backups: {size / 1e6:.1f} MB; traced id {traced}")
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.against:
        trees["against"] = args.against.resolve()
    verbs = {
        "trace ID": ["trace", traced],
        "trace ID --json": ["trace", traced, "--json"],
        "logs -n 5": ["logs", "-n", "5"],
        "logs a -n 5": ["logs", "a", "-n", "5"],
        "logs --json (all)": ["logs", "--json"],
    }
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for _ in range(args.runs):  # interleaved, so load from elsewhere hits all alike
        for name, verb in verbs.items():
            for tree_name, tree in trees.items():
                argv = [sys.executable, "-m", "orchestrator.cli", *verb, "--file", "agents.yaml"]
                env = {**os.environ, "PYTHONPATH": str(tree)}
                results.setdefault((name, tree_name), []).append(measure(argv, root, env))
    print(f"{'verb':<20} {'tree':<8} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12}  (medians)")
    for (name, tree_name), runs in results.items():
        wall, cpu, rss = (statistics.median(r[k] for r in runs) for k in range(3))
        print(f"{name:<20} {tree_name:<8} {wall:>7.2f} {cpu:>7.2f} {rss:>12.0f}")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
