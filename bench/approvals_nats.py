"""What `octy-orchestrate approvals` costs on a NATS team as open messages pile up.

    .venv/bin/python bench/approvals_nats.py [--open 0,1000,5000] [--approvals 5]

A ``nats-server`` this program starts on loopback (file storage), a team bucket with
``--approvals`` approval requests waiting for ``alice`` and each count of ``--open``
plain requests open for ``bob`` beside them. ``approvals.pending`` is called as the
verb calls it (its own connection, the bucket opened, the open messages listed through
their hints, each read, the approvals kept and their replies looked up).

``requests`` is the requests that client sent the server (each KV read is one round
trip, a listing of keys one per 100,000); ``ms`` the median wall time of 3 calls. A
program, not a test: nothing here asserts on time.

An approval is a request whose body holds ``{"approval": {...}}``; its keys are the
message's (``m.<id>``) and its hint's (``q.<approver>.<id>``), as any request's: no
subject says "approval", so JetStream has nothing to filter on and every open message
is read to find the few approvals among them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import yaml

# bench/queue.py would shadow the standard library's queue module (anyio imports it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "mailbox" / "contract"))

from nats.aio.client import Client  # noqa: E402
from natsserver import NatsServer  # noqa: E402

from orchestrator import approvals  # noqa: E402
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: E402
from orchestrator.roster import load_roster  # noqa: E402

SENT: list[str] = []
_REAL_REQUEST = Client.request


async def _counted(self: Client, subject: str, *args: Any, **kwargs: Any) -> Any:
    SENT.append(subject)
    return await _REAL_REQUEST(self, subject, *args, **kwargs)


async def fill(url: str, namespace: str, open_count: int, approval_count: int) -> None:
    """Bring the bucket to ``approval_count`` approvals and ``open_count`` plain requests."""
    async with NatsMailbox(NatsConfig((url,), namespace=namespace)) as mb:
        for name in ("alice", "bob", "carol"):
            await mb.register(name)
        have = len(await mb.list(status="pending", recipient="bob", limit=1_000_000))
        for i in range(have, open_count):
            await mb.request("carol", "bob", f"plain question {i}")
        if not await mb.list(status="pending", recipient="alice", limit=1):
            for i in range(approval_count):
                body = {
                    "approval": {
                        "tool": "Bash",
                        "input": {"command": f"ls {i}"},
                        "timeout_s": 3600,
                    },
                    "text": "may I?",
                }
                await mb.request("carol", "alice", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--open", default="0,1000,5000")
    parser.add_argument("--approvals", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            data = {
                "name": "appr",
                "queue": {"servers": server.url, "namespace": "apprbench"},
                "agents": {n: {"prompt": n} for n in ("alice", "bob", "carol")},
            }
            (Path(tmp) / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
            place = load_roster(Path(tmp) / "agents.yaml").queue
            assert place is not None
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            print(f"{'open':>6} {'approvals':>9} {'requests':>8} {'ms':>8}")
            for open_count in (int(n) for n in args.open.split(",")):
                asyncio.run(fill(server.url, "apprbench", open_count, args.approvals))
                Client.request = _counted  # type: ignore[method-assign]
                samples, per_call = [], 0
                for _ in range(3):
                    SENT.clear()
                    t0 = time.perf_counter()
                    found = approvals.pending(place)
                    samples.append((time.perf_counter() - t0) * 1000)
                    per_call = len(SENT)
                    assert len(found) == args.approvals, found
                Client.request = _REAL_REQUEST  # type: ignore[method-assign]
                ms = statistics.median(samples)
                print(f"{open_count:>6} {args.approvals:>9} {per_call:>8} {ms:>8.1f}", flush=True)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
