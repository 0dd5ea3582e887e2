"""Issue 14.3: the CPU one process spends in each queue call, against the bare statement.

    python bench/queue_calls.py [--messages N] [--rounds R] [--batch B]

One process, one real database in a temporary folder, nobody else writing: no lock is
ever waited for, so the figures are the calls' own cost. Each figure is thread CPU time
(``time.thread_time_ns``, which the machine's other load does not inflate the way it
inflates wall time) per message, the fastest of ``--rounds`` rounds. Run it with each
tree's own interpreter to compare two trees (its ``orchestrator`` is the one imported).
A program, not a test: nothing here asserts on time. Figures: docs/benchmarks.md,
"Issue 14.3, eleventh session".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # same reason as bench/queue.py (stdlib queue shadowed)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))


def _fastest(rounds: int, n: int, setup: Callable[[], None], run: Callable[[], None]) -> float:
    """µs of thread CPU per message, the fastest of ``rounds`` runs of ``run`` (n messages)."""
    best = float("inf")
    for _ in range(rounds):
        setup()
        t0 = time.thread_time_ns()
        run()
        best = min(best, (time.thread_time_ns() - t0) / n / 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    from orchestrator.mailbox import Mailbox
    from orchestrator.mailbox.model import new_id

    p = argparse.ArgumentParser(prog="bench/queue_calls.py", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000, help="per round")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--batch", type=int, default=64, help="claim limit of the batched figures")
    args = p.parse_args(argv)
    n, rounds = args.messages, args.rounds
    folder = tempfile.mkdtemp(prefix="octy-calls-")
    path = Path(folder) / "team.db"
    mb = Mailbox(path)
    mb.register("producer", "bench")
    mb.register("q0", "bench")
    conn = mb._connection()
    insert = (
        "INSERT INTO messages (id, kind, sender, recipient, correlation_id, cause_id, body, "
        "status, attempts, max_attempts, available_at, created_at, expires_at, done_at, error, "
        "error_detail) SELECT ?, 'notice', 'producer', ?, NULL, NULL, ?, 'pending', 0, 5, ?, ?, "
        "NULL, NULL, NULL, NULL WHERE ? = 'user' OR EXISTS (SELECT 1 FROM agents WHERE name = ?)"
    )
    claim_sql = """
        UPDATE messages SET status = 'leased', lease_owner = :owner,
            lease_expires = :expires, attempts = attempts + 1, claimed_at = :now
        WHERE seq IN (
            SELECT seq FROM messages
            WHERE recipient = :recipient AND status = 'pending' AND kind != 'response'
              AND available_at <= :now AND (expires_at IS NULL OR expires_at > :now)
            ORDER BY available_at, seq LIMIT :limit)
        RETURNING id, body"""
    ack_sql = (
        "UPDATE messages SET status = 'done', done_at = ?, lease_expires = NULL "
        "WHERE id IN (SELECT value FROM json_each(?)) AND status = 'leased' AND lease_owner = ?"
    )

    def drain() -> None:  # every message done, so each round claims only its own
        conn.execute("UPDATE messages SET status = 'done' WHERE status != 'done'")

    def raw_send() -> None:
        for i in range(n):
            now = time.time()
            conn.execute(insert, (new_id(), "q0", json.dumps({"i": i}), now, now, "q0", "q0"))

    def mailbox_send() -> None:
        for i in range(n):
            mb.send("producer", "q0", {"i": i})

    def filled() -> None:
        drain()
        raw_send()

    def raw_consume(limit: int) -> Callable[[], None]:
        def run() -> None:
            while True:
                now = time.time()
                conn.execute("BEGIN IMMEDIATE")
                rows = conn.execute(
                    claim_sql,
                    {
                        "owner": "c",
                        "expires": now + 60,
                        "now": now,
                        "recipient": "q0",
                        "limit": limit,
                    },
                ).fetchall()
                conn.execute("COMMIT")
                if not rows:
                    return
                [json.loads(r[1]) for r in rows]
                conn.execute(ack_sql, (time.time(), json.dumps([r[0] for r in rows]), "c"))

        return run

    def mailbox_consume(limit: int) -> Callable[[], None]:
        def run() -> None:
            while got := mb.claim("q0", owner="c", lease_s=60.0, limit=limit):
                mb.ack([m.id for m in got], owner="c")

        return run

    def mailbox_claim_only(limit: int) -> Callable[[], None]:
        def run() -> None:
            while mb.claim("q0", owner="c", lease_s=60.0, limit=limit):
                pass

        return run

    rows: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("raw INSERT (statement + id + json)", drain, raw_send),
        ("Mailbox.send()", drain, mailbox_send),
        (f"raw claim+ack, batches of {args.batch}", filled, raw_consume(args.batch)),
        (f"Mailbox claim()+ack(), batches of {args.batch}", filled, mailbox_consume(args.batch)),
        (f"Mailbox claim() only, batches of {args.batch}", filled, mailbox_claim_only(args.batch)),
        ("raw claim+ack, one at a time", filled, raw_consume(1)),
        ("Mailbox claim()+ack(), one at a time", filled, mailbox_consume(1)),
    ]
    import orchestrator

    print(f"tree {Path(orchestrator.__file__).parent.parent}, load {os.getloadavg()[0]:.2f}")
    print(f"us of thread CPU per message, fastest of {rounds} x {n}")
    for label, setup, run in rows:
        print(f"  {label:45s} {_fastest(rounds, n, setup, run):7.1f}", flush=True)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
