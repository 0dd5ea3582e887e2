"""Do one queue action from a separate process, after an optional delay.

    python act.py DB send SENDER RECIPIENT JSON_BODY [DELAY_S]
    python act.py DB reply REQUEST_ID SENDER JSON_BODY [DELAY_S]
    python act.py DB sql-insert SENDER RECIPIENT JSON_BODY [DELAY_S]
    python act.py DB release OWNER - - [DELAY_S]
    python act.py DB send-n SENDER RECIPIENT COUNT [DELAY_S]   (COUNT sends, one commit each)

``sql-insert`` uses plain sqlite3 and the table defaults only, as a program in
another language would (see queue/README.md).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

from orchestrator.mailbox import Mailbox


def main(argv: list[str]) -> int:
    db, action, a, b, body = argv[:5]
    delay = float(argv[5]) if len(argv) > 5 else 0.0
    time.sleep(delay)
    if action == "send":
        with Mailbox(db) as mb:
            print(mb.send(a, b, json.loads(body)).id)
    elif action == "reply":
        with Mailbox(db) as mb:
            print(mb.reply(a, b, json.loads(body)).id)
    elif action == "send-n":
        with Mailbox(db) as mb:
            for i in range(int(body)):
                mb.send(a, b, i)
    elif action == "release":
        with Mailbox(db) as mb:
            print(mb.release(a))
    elif action == "sql-insert":
        conn = sqlite3.connect(db, timeout=10)
        with conn:
            conn.execute(
                "INSERT INTO messages (sender, recipient, body) VALUES (?, ?, ?)", (a, b, body)
            )
        conn.close()
    else:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
