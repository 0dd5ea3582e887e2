"""Stress-test producer: send COUNT messages to `work`, logging each id once its send committed.

python producer.py DB PRODUCER_NO COUNT SENT_LOG
"""

from __future__ import annotations

import os
import sys

from orchestrator.mailbox import Mailbox


def main(db: str, producer: str, count: str, log_path: str) -> int:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with Mailbox(db) as mb:
        for i in range(int(count)):
            m = mb.send(f"producer-{producer}", "work", {"p": int(producer), "i": i})
            os.write(fd, f"{m.id}\n".encode())
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
