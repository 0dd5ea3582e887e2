"""Open a queue database the moment a start file appears (for the open-race regression test).

python open_race.py START_FILE DB   -> exit 0, or 1 with the error on stdout
"""

from __future__ import annotations

import os
import sys
import time

from orchestrator import errors
from orchestrator.mailbox import Mailbox


def main(start: str, db: str) -> int:
    deadline = time.monotonic() + 30
    while not os.path.exists(start):  # a crude barrier: every process starts together
        if time.monotonic() > deadline:
            print("start file never appeared")
            return 1
        time.sleep(0.0001)
    try:
        with Mailbox(db) as mb:
            mb.register(f"agent-{os.getpid()}")
    except errors.DatabaseError as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
