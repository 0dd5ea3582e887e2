"""How long a command let through runs before the launch watch stops it
(orchestrator/hold_watch.py): the moment it is not held.

A stand-in claude notes the time (CLOCK_MONOTONIC) just before it starts each command;
the command, a C program, notes the time it reaches ``main`` and then, again and again,
the time it is still running, in a file shared with this program (mmap). A hold covers
the claude with the call let through (``launch``), so the watch stops the command as it
appears; then the file says how long after the start the command still ran.

    python bench/hold_unheld.py [--runs 50]

Needs a C compiler (cc).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402  (after the sys.path fix above)
import os  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from orchestrator import hold_procs, write_hold  # noqa: E402

COMMAND = r"""
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static long long now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int main(int argc, char **argv) {
    long long t = now();
    int fd = open(argv[1], O_RDWR);
    volatile long long *m = mmap(0, 24, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    m[1] = t;
    for (;;) m[2] = now();
}
"""

# The stand-in claude: for each line (a file), note the time in it, start the command.
CLAUDE = """
import os, struct, subprocess, sys, time
for line in sys.stdin:
    path = line.strip()
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, struct.pack("q", time.monotonic_ns()), 0)
    os.close(fd)
    subprocess.Popen([sys.argv[1], path])
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "cmd.c").write_text(COMMAND)
        exe = folder / "cmd"
        subprocess.run(["cc", "-O1", "-o", str(exe), str(folder / "cmd.c")], check=True)
        claude = subprocess.Popen(
            [sys.executable, "-c", CLAUDE, str(exe)], stdin=subprocess.PIPE, text=True
        )
        assert claude.stdin is not None
        hold = write_hold.Hold()
        to_main, unheld = [], []
        done: set[int] = set()
        try:
            hold.hold("w", [claude.pid], None, 3600, agents={"x": claude.pid}, writer="y")
            for n in range(args.runs):
                shared = folder / f"t{n}"
                shared.write_bytes(bytes(24))
                hold.launch(f"c{n}", "x")
                claude.stdin.write(f"{shared}\n")
                claude.stdin.flush()
                pid = None
                while pid is None or hold_procs.run_state(pid) != "T":
                    time.sleep(0.001)
                    pid = next(iter(write_hold.descendants([claude.pid]) - done), None)
                done.add(pid)
                time.sleep(0.01)  # a last write of the command's, had it gone on, lands
                started, in_main, last = struct.unpack("qqq", shared.read_bytes())
                if in_main:
                    to_main.append((in_main - started) / 1e6)
                unheld.append((max(last, in_main, started) - started) / 1e6)
                hold.launched(f"c{n}")
                os.kill(pid, 9)  # (a zombie until the claude's next start reaps it)
        finally:
            hold.release_all()
            claude.kill()
            claude.wait()
    print(
        f"{args.runs} commands; load {os.getloadavg()[0]:.2f}; "
        f"processes {sum(n.isdigit() for n in os.listdir('/proc'))}\n"
        f"reached main before the stop: {len(to_main)} of {args.runs}"
        + (f" (start to main: median {statistics.median(to_main):.2f} ms)" if to_main else "")
        + f"\nran unheld from its start (CLOCK_MONOTONIC before Popen): median "
        f"{statistics.median(unheld):.2f} ms, max {max(unheld):.2f} ms"
    )


if __name__ == "__main__":
    main()
