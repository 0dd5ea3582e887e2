"""Stress-test consumer: claim batches for `work`, "handle" them, ack, log what was acked.

    python consumer.py DB NAME LOG_DIR

Owner is ``NAME-PID``. Per batch it appends the claimed ids to
``LOG_DIR/NAME.claimed``, sleeps a little (the handling, so that a SIGKILL
usually lands while it holds leases), acks the batch, and only after the ack
committed appends the ids to ``LOG_DIR/NAME.acked`` (one write(2) per batch,
O_APPEND, so a kill never leaves half a line). SIGTERM ends it gracefully:
it finishes the batch in hand and releases anything still leased.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from orchestrator.mailbox import Mailbox

HANDLING_S = 0.02
LEASE_S = 2.0
BATCH = 50

stopping = False


def _stop(signum: int, frame: object) -> None:
    global stopping  # noqa: PLW0603 - a signal handler only sets a flag
    stopping = True


def main(db: str, name: str, log_dir: str) -> int:
    signal.signal(signal.SIGTERM, _stop)
    owner = f"{name}-{os.getpid()}"
    logs = Path(log_dir)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    claimed_fd = os.open(logs / f"{name}.claimed", flags, 0o600)
    acked_fd = os.open(logs / f"{name}.acked", flags, 0o600)
    os.write(acked_fd, f"# owner {owner}\n".encode())
    with Mailbox(db) as mb:
        while not stopping:
            if not mb.wait_for_messages("work", timeout_s=0.2):
                continue
            batch = mb.claim("work", owner=owner, lease_s=LEASE_S, limit=BATCH)
            if not batch:
                continue
            ids = "".join(f"{m.id}\n" for m in batch).encode()
            os.write(claimed_fd, ids)
            time.sleep(HANDLING_S)
            mb.ack([m.id for m in batch], owner=owner)
            os.write(acked_fd, ids)
        left = mb.release(owner)
    print(f"released {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
