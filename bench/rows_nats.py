"""What the supervisor's registry writes cost on a shared NATS team: round trips and time.

    .venv/bin/python bench/rows_nats.py [--calls 200]
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/rows_nats.py   # A/B runs

A real Supervisor in this process on a ``nats-server`` this program starts on loopback
(file storage), its queue and agent leases opened as `up` opens them, with ``alpha``
running here (its lease held, `ready`) and ``beta`` stopped. Then, each ``--calls``
times:

- ``record``: ``registry.record`` of alpha (a state write of an agent held here);
- ``heartbeats``: ``registry.heartbeats`` (the supervisor's row, then alpha's);
- ``queue+stop``: ``_queue`` of beta (`waiting`, as `up` and a reload show it), then an
  operator's ``stop`` of it while queued (``operations.stop_agent``).

``requests`` is the requests this process sent the server per call (each KV read and
write is one round trip); ``ms`` the median wall time per call. A program, not a test:
nothing here asserts on time.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import yaml

# bench/queue.py would shadow the standard library's queue module (anyio imports it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "mailbox" / "contract"))

from natsserver import NatsServer  # noqa: E402 - after the sys.path fix above

from orchestrator import operations  # noqa: E402
from orchestrator.agent_leases import agent_leases  # noqa: E402
from orchestrator.lifecycle import AgentState  # noqa: E402
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: E402
from orchestrator.roster import load_roster  # noqa: E402
from orchestrator.supervision import registry  # noqa: E402
from orchestrator.supervisor import Supervisor  # noqa: E402


async def measure(
    sent: list[str], call: Callable[[], Awaitable[Any]], calls: int
) -> tuple[float, float]:
    """Requests per call (mean) and median wall ms of ``call``."""
    samples = []
    sent.clear()
    for _ in range(calls):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    return len(sent) / calls, statistics.median(samples)


async def run(url: str, folder: Path, calls: int) -> None:
    data = {
        "name": "rows",
        "queue": {"servers": url, "namespace": "rowsbench"},
        "agents": {n: {"prompt": f"You are {n}.", "description": n} for n in ("alpha", "beta")},
    }
    (folder / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    roster = load_roster(folder / "agents.yaml")
    assert roster.queue is not None
    sup = Supervisor(roster, watch_roster=False)
    async with NatsMailbox(NatsConfig((url,), namespace="rowsbench")) as mailbox:
        sup.mailbox = mailbox
        sup.leases = agent_leases(mailbox, sup.instance, roster.queue)
        await registry.register_self(sup, mailbox)
        for name in roster.agents:
            await mailbox.register(name, name, state="stopped")
        alpha = sup.add_slot("alpha")
        await sup.leases.take("alpha")
        await sup.record_moves(alpha, alpha.life.start())
        await sup.record_moves(alpha, alpha.life.session_starting())
        await sup.record_moves(alpha, alpha.life.move(AgentState.READY))
        sup.add_slot("beta")

        sent: list[str] = []
        real_request = mailbox.nc.request

        async def counted(subject: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(subject)
            return await real_request(subject, *args, **kwargs)

        mailbox.nc.request = counted  # type: ignore[method-assign]

        async def queue_and_stop() -> None:
            await sup._queue(["beta"], still_wanted=False)
            await operations.stop_agent(sup, "beta")

        print(f"{'write':12} {'requests':>8} {'ms':>6}")
        for label, call in (
            ("record", lambda: registry.record(sup, alpha)),
            ("heartbeats", lambda: registry.heartbeats(sup)),
            ("queue+stop", queue_and_stop),
        ):
            per_call, ms = await measure(sent, call, calls)
            print(f"{label:12} {per_call:>8.1f} {ms:>6.2f}", flush=True)
        await sup.leases.release_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            asyncio.run(run(server.url, Path(tmp), args.calls))
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
