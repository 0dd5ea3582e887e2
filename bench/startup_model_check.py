"""How long `up` takes to learn the model refuses its key, with an API that answers late
(issue 14.5): the model check against the SDK's import.

    python bench/startup_model_check.py [--delay-ms 300] [--runs 7] [--other-tree DIR]

A local HTTP endpoint answers ``GET /v1/models`` with 401 after ``--delay-ms`` (a remote
API's DNS, TLS and round trip stand-in); `up` (foreground, one agent) checks the model
before any agent starts and exits 1. Printed: the median wall time of that `up`, and of a
fresh ``python -c "import claude_agent_sdk"`` in the same environment. Run one after the
other, the two add up; overlapped, `up` takes about the longer of the two plus the CLI's
own start. ``--other-tree DIR`` also runs `up` from another checkout's ``orchestrator``
package (``git archive REV orchestrator | tar -x -C DIR``), interleaved with this one, so
that the machine's load hits both alike. With bytecode, as an installed package has it.
A program, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).parent / "octy-orchestrate")


def _endpoint(delay_s: float) -> ThreadingHTTPServer:
    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay_s)
            body = b'{"type":"error","error":{"type":"authentication_error","message":"no"}}'
            self.send_response(401)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Late)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wall(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False, timeout=120)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=300.0, help="the API's delay (300)")
    ap.add_argument("--runs", type=int, default=7, help="runs of each (7)")
    ap.add_argument("--other-tree", type=Path, help="also run `up` from this tree's package")
    opts = ap.parse_args()
    server = _endpoint(opts.delay_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="octy-bench-check-") as tmp:
        folder = Path(tmp)
        (folder / "agents.yaml").write_text(
            "name: t\nagents:\n  a:\n    prompt: You are a.\n    sandbox: false\n"
        )
        env = {
            **os.environ,
            "HOME": tmp,
            "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "PYTHONPYCACHEPREFIX": str(folder / "pycache"),
        }
        for key in ("PYTHONDONTWRITEBYTECODE", "OCTY_DB", "OCTY_AGENT"):
            env.pop(key, None)
        up = [CLI, "up", "--no-color"]
        sdk = [sys.executable, "-c", "import claude_agent_sdk"]
        other = {**env, "PYTHONPATH": str(opts.other_tree)} if opts.other_tree else None
        _wall(up, folder, env)  # bytecode written, files in the page cache
        if other:
            _wall(up, folder, other)
        ups, sdks, others = [], [], []
        load = os.getloadavg()[0]
        for _ in range(opts.runs):
            ups.append(_wall(up, folder, env))
            sdks.append(_wall(sdk, folder, env))
            if other:
                others.append(_wall(up, folder, other))
    server.shutdown()
    print(f"1-min load average at the start: {load:.2f}")
    print(f"API delay {opts.delay_ms:g} ms; medians of {opts.runs} runs:")
    print(f"  up -> key refused, exit 1      {statistics.median(ups) * 1000:7.0f} ms")
    if others:
        print(f"  the same, {opts.other_tree}   {statistics.median(others) * 1000:7.0f} ms")
    print(f"  python -c 'import claude_agent_sdk' {statistics.median(sdks) * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
