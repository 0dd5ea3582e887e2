"""What `ps` and one refresh of `top` cost on a NATS team, beside a SQLite one:

    .venv/bin/python bench/ps_nats.py [--messages 0,200,2000] [--agents 5] [--calls 10]
    .venv/bin/python bench/ps_nats.py --busy 20 --pause 1   # refreshes of a working team

For each queue size, a fresh queue of each backend (a SQLite file; a new bucket on a
``nats-server`` this program starts on loopback, file storage) holding ``--agents``
agents and that many messages, nearly all done (sent, claimed, acked) with a few
pending, leased and dead, as a working team's queue is. Then, in this process:

- ``ps_rows``: the rows of `ps` (what `ps` reads once, `top` once a refresh);
- ``refresh``: `top`'s data side of one refresh (``TeamSource.snapshot``: the rows
  plus the team line's counts, claims and registry), the source kept between calls
  as `top` keeps it; the first call, which `top` pays once, is shown apart
  (``1st refresh``: the client's connection, and on NATS the tally's first read).

CPU is this process's (user + system, every thread: the NATS client runs in a helper
thread) per call, median over ``--calls``; ``server`` is the nats-server's CPU per
call (from /proc), the part another machine pays when the server runs elsewhere.
``--busy R``: the refreshes are measured while another process sends, claims and acks
R messages a second to the agents (``--pause 1``: a refresh a second, as `top`'s).
A program, not a test: nothing here asserts on time. ``PYTHONPATH=/path/to/other/tree``
runs another version of the code against the same data shape (A/B runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# bench/queue.py would shadow the standard library's queue module (anyio imports it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "mailbox" / "contract"))

from natsserver import NatsServer  # noqa: E402 - after the sys.path fix above

from orchestrator.cli.team_verbs import ps_rows  # noqa: E402
from orchestrator.mailbox import AsyncMailbox, AsyncMailboxBackend  # noqa: E402
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: E402
from orchestrator.roster.queue_setting import QueueSetting  # noqa: E402
from orchestrator.tui.data import TeamSource  # noqa: E402

OPEN = {"pending": 4, "leased": 2, "dead": 2}  # the few that are not done, per queue


async def fill(mailbox: AsyncMailboxBackend, agents: list[str], n: int) -> None:
    """``n`` messages to the agents in turn: all but a few done, a few left pending,
    leased (claimed, not acked) and dead. Sent and settled one agent per task."""
    for name in agents:
        await mailbox.register(name, meta={"supervised": True})
    left = dict.fromkeys(OPEN, 0)
    if n >= sum(OPEN.values()):
        left = dict(OPEN)
    done = n - sum(left.values())

    async def work(name: str, count: int) -> None:
        for i in range(count):
            await mailbox.send("user", name, {"n": i, "text": "x" * 200})
            got = await mailbox.claim(name, owner=f"w-{name}", lease_s=3600)
            await mailbox.ack([m.id for m in got], owner=f"w-{name}")

    share = [done // len(agents) + (i < done % len(agents)) for i in range(len(agents))]
    await asyncio.gather(*(work(a, c) for a, c in zip(agents, share, strict=True)))
    first = agents[0]
    for _ in range(left["dead"]):
        await mailbox.send("user", first, "doomed")
        (m,) = await mailbox.claim(first, owner="w", lease_s=3600)
        await mailbox.nack(m.id, owner="w", dead_code="bench")
    for _ in range(left["leased"]):
        await mailbox.send("user", first, "held")
        await mailbox.claim(first, owner="w", lease_s=3600)
    for i in range(left["pending"]):
        await mailbox.send("user", agents[i % len(agents)], "waiting")


async def write_steadily(target: str, agents: list[str], rate: float) -> None:
    """A working team's traffic, for ``--busy``: ``rate`` messages a second, each sent,
    claimed and acked (three writes of its record), in turn to the agents. Runs in a
    process of its own (``--write-to``), so its CPU is not counted as the reader's."""
    backend, _, where = target.partition(":")
    mailbox: AsyncMailboxBackend
    if backend == "sqlite":
        mailbox = await AsyncMailbox(Path(where)).open()
    else:
        url, _, namespace = where.rpartition("#")
        mailbox = await NatsMailbox(NatsConfig((url,), namespace=namespace)).open()
    i = 0
    start = time.monotonic()
    while True:
        name = agents[i % len(agents)]
        await mailbox.send("user", name, {"n": i, "text": "x" * 200})
        got = await mailbox.claim(name, owner=f"busy-{name}", lease_s=3600)
        await mailbox.ack([m.id for m in got], owner=f"busy-{name}")
        i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))


def server_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    call: Callable[[], Any], calls: int, server_pid: int | None, *, pause: float = 0.0
) -> tuple[float, float]:
    """Median CPU ms of ``call`` in this process, and the server's mean ms per call
    (``pause`` s between calls, as `top` waits between refreshes: with ``--busy`` the
    server's CPU then includes the writer's traffic, the same for both versions)."""
    samples = []
    s0 = server_cpu(server_pid)
    for _ in range(calls):
        c0 = time.process_time()
        call()
        samples.append((time.process_time() - c0) * 1000)
        time.sleep(pause)
    return statistics.median(samples), (server_cpu(server_pid) - s0) * 1000 / calls


def check(rows: list[dict[str, Any]], n: int) -> None:
    """The figures the bench's queue must show, so a faster read is not a wrong one."""
    want = dict(OPEN) if n >= sum(OPEN.values()) else dict.fromkeys(OPEN, 0)
    pending = sum(r["pending"] for r in rows)
    leased = sum(len(r["in_flight"]) for r in rows)
    if (pending, leased) != (want["pending"], want["leased"]):
        raise SystemExit(f"wrong figures: pending {pending}, in flight {leased}; want {want}")


def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.messages.split(",")]
    agents = [f"agent{i}" for i in range(args.agents)]
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        pid = server.proc.pid if server.proc else None
        try:
            print(f"load average before: {os.getloadavg()[0]:.2f}; {args.agents} agents")
            print(
                f"{'messages':>8} {'backend':7} {'ps_rows ms':>10} {'server ms':>9} "
                f"{'refresh ms':>10} {'server ms':>9} {'1st refresh ms':>14}"
            )
            for n in sizes:
                for backend in ("sqlite", "nats"):
                    folder = Path(tmp) / f"{backend}{n}"
                    folder.mkdir()
                    (folder / "logs").mkdir()
                    database = folder / "team.db"
                    place: Path | QueueSetting
                    if backend == "sqlite":
                        place = database

                        async def open_it(db: Path = database) -> AsyncMailboxBackend:
                            return await AsyncMailbox(db).open()

                        server_pid = None
                    else:
                        setting = QueueSetting((server.url,), f"ps{n}")
                        place = setting

                        async def open_it(s: QueueSetting = setting) -> AsyncMailboxBackend:
                            return await NatsMailbox(NatsConfig.from_setting(s)).open()

                        server_pid = pid

                    async def filled(n: int = n, opener: Any = open_it) -> None:
                        mailbox = await opener()
                        try:
                            await fill(mailbox, agents, n)
                        finally:
                            await mailbox.aclose()

                    asyncio.run(filled())
                    check(ps_rows(place), n)
                    rows_ms, rows_srv = measure(lambda p=place: ps_rows(p), args.calls, server_pid)
                    source = TeamSource(database, folder / "logs")
                    if backend == "nats":
                        source.queue = setting
                    c0 = time.process_time()
                    source.snapshot()  # the first refresh: `top` pays it once
                    first_ms = (time.process_time() - c0) * 1000
                    writer = None
                    if args.busy:
                        target = (
                            f"sqlite:{database}"
                            if backend == "sqlite"
                            else f"nats:{server.url}#{setting.namespace}"
                        )
                        rate = ["--rate", str(args.busy), "--agents", str(args.agents)]
                        writer = subprocess.Popen(
                            [sys.executable, __file__, "--write-to", target, *rate]
                        )
                        time.sleep(1.0)  # its start-up, then steady traffic
                    try:
                        top_ms, top_srv = measure(
                            source.snapshot, args.calls, server_pid, pause=args.pause
                        )
                    finally:
                        if writer is not None:
                            writer.terminate()
                            writer.wait()
                    close = getattr(source, "close", None)
                    if close is not None:
                        close()
                    print(
                        f"{n:>8} {backend:7} {rows_ms:>10.1f} {rows_srv:>9.1f} "
                        f"{top_ms:>10.1f} {top_srv:>9.1f} {first_ms:>14.1f}",
                        flush=True,
                    )
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", default="0,200,2000", help="queue sizes, comma-separated")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument(
        "--busy",
        type=float,
        default=0.0,
        help="refresh while another process sends, claims and acks this many messages/s",
    )
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between refreshes")
    parser.add_argument("--write-to", help=argparse.SUPPRESS)  # the --busy writer itself
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_to:
        names = [f"agent{i}" for i in range(args.agents)]
        asyncio.run(write_steadily(args.write_to, names, args.rate))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
