"""Whether the write hold stalls the supervisor's event loop (orchestrator/write_hold.py).

A stand-in claude starts a process slow to stop: a C program that vforks a child which
sleeps before it exits, so the parent waits in the kernel (state D) and a SIGSTOP lands
only when the child is done (the hold waits up to STOP_WAIT_S for it). A Write's hold runs
in a thread, as the policy hook runs it; meanwhile on the loop a task ticks every 10 ms
and asks ``holding`` each tick, as a held agent's Bash does at the hook. Then the watch
for a command let through (``launch``) scans /proc every millisecond for ``--watch-s``
while the loop ticks and calls ``launch``/``launched``/``holding``, beside the same
time held with no command let through: the CPU time this process spent in each.

    python bench/hold_loop.py [--slow-s 3] [--watch-s 3] [--others N] [--no-slow]

(``--others``: that many more processes on the machine, each a ``sleep``.)

A program, not a test: it prints the loop's largest gap between ticks, beside how long
the hold's stops took. Needs a C compiler (cc) for the slow process.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402  (after the sys.path fix above)
import contextlib  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import anyio  # noqa: E402

from orchestrator import write_hold  # noqa: E402

VFORKER = r"""
#include <unistd.h>
int main(int argc, char **argv) {
    unsigned s = (unsigned)atoi(argv[1]);
    if (vfork() == 0) { sleep(s); _exit(0); }
    pause();
    return 0;
}
"""


def build(folder: Path) -> Path:
    src, exe = folder / "vforker.c", folder / "vforker"
    src.write_text("#include <stdlib.h>\n" + VFORKER)
    subprocess.run(["cc", "-O0", "-o", str(exe), str(src)], check=True)
    return exe


async def ticking(stop: anyio.Event, hold: write_hold.Hold, agent: str, calls: bool) -> float:
    """Tick every 10 ms until ``stop``; the largest gap seen (s)."""
    gap, last, n = 0.0, time.monotonic(), 0
    while not stop.is_set():
        await anyio.sleep(0.01)
        hold.holding(agent)
        if calls:
            n += 1
            hold.launch(f"c{n}", agent)
            hold.launched(f"c{n - 1}")
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    return gap


async def slow_stop(claude: subprocess.Popen[bytes]) -> None:
    await anyio.sleep(0.2)  # the vfork made: the parent waits in the kernel
    hold = write_hold.Hold()
    stop, took, gap = anyio.Event(), [0.0], [0.0]

    def held() -> None:
        t = time.monotonic()
        hold.hold("w", [claude.pid], agents={"x": claude.pid}, writer="y")
        took[0] = time.monotonic() - t

    async def tick() -> None:
        gap[0] = await ticking(stop, hold, "x", False)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(held)
            await anyio.sleep(0.05)
            stop.set()
    finally:
        hold.release_all()
    print(
        f"slow stop: hold's stops took {took[0] * 1000:.0f} ms; loop's largest gap "
        f"{gap[0] * 1000:.0f} ms (ticks every 10 ms)"
    )


def cpu_s() -> float:
    """This process's CPU time so far (user + system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def watch(claude: subprocess.Popen[bytes], watch_s: float, launching: bool) -> None:
    """``watch_s`` of a hold on the claude, with a command let through (the watch looks
    for it every millisecond) or none (no watch): the loop's largest gap, and the CPU
    time this process spent in that time (the loop's ticks and calls, and the watch)."""
    await anyio.sleep(0.2)
    hold = write_hold.Hold()
    stop = anyio.Event()
    try:
        hold.hold("w", [claude.pid], None, 3600, agents={"x": claude.pid}, writer="y")
        cpu = cpu_s()
        if launching:
            hold.launch("c0", "x")  # the watch looks every millisecond from now
        result = [0.0]

        async def tick() -> None:
            result[0] = await ticking(stop, hold, "x", launching)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await anyio.sleep(watch_s)
            stop.set()
        cpu = cpu_s() - cpu
    finally:
        hold.release_all()
    what = "a command let through (watched)" if launching else "no command let through"
    print(
        f"held {watch_s:.0f} s, {what}: CPU {cpu:.2f} s ({cpu / watch_s:.0%} of a core); "
        f"loop's largest gap {result[0] * 1000:.1f} ms (ticks every 10 ms); "
        f"processes on the machine {sum(n.isdigit() for n in os.listdir('/proc'))}; "
        f"load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-s", type=int, default=3)
    parser.add_argument("--watch-s", type=float, default=3.0)
    parser.add_argument("--others", type=int, default=0, help="sleeping processes to add")
    parser.add_argument("--no-slow", action="store_true", help="only the watch")
    args = parser.parse_args()
    others = [subprocess.Popen(["sleep", "600"]) for _ in range(args.others)]
    try:
        run(args)
    finally:
        for proc in others:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> None:
    if args.no_slow:
        pass
    elif shutil.which("cc"):
        with tempfile.TemporaryDirectory() as d:
            claude = subprocess.Popen(["sh", "-c", f"{build(Path(d))} {args.slow_s}; true"])
            try:
                anyio.run(slow_stop, claude)
            finally:
                end(claude)
    else:
        print("slow stop: no C compiler (cc), skipped")
    claude = subprocess.Popen(["sh", "-c", "sleep 600 & wait"])
    try:
        anyio.run(watch, claude, args.watch_s, False)
        anyio.run(watch, claude, args.watch_s, True)
    finally:
        end(claude)


def end(claude: subprocess.Popen[bytes]) -> None:
    for pid in write_hold.descendants([claude.pid]):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    claude.kill()
    claude.wait()


if __name__ == "__main__":
    main()
