"""A launcher folder's maker (orchestrator/launcher.py, ``Maker.gone``) is never read as
gone while it runs, even where ``/proc`` shows another PID namespace's pids: the next
`up` removes a gone maker's folder (its launcher: the live supervisor could start no
claude any more) and kills what its sandboxes left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# In namespace B, made without --mount-proc inside namespace A (which has its own /proc):
# B's pids, A's /proc. The maker is B's pid 2; A's pid 2 is a `sleep` that A kills once
# the maker's record is made; then B asks whether the (live) maker is gone.
IN_B = """
import json, os, subprocess, sys, time
from orchestrator.launcher import Maker
MAKER = (
    "import json, time\\n"
    "from orchestrator.launcher import Maker\\n"
    "print(json.dumps(Maker.this_process().__dict__), flush=True)\\n"
    "time.sleep(60)\\n"
)
maker = subprocess.Popen([sys.executable, "-c", MAKER], stdout=subprocess.PIPE, text=True)
record = Maker(**json.loads(maker.stdout.readline()))
with open(sys.argv[1], "w") as f:
    f.write("made")
while os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print(json.dumps({"pid": record.pid, "alive": maker.poll() is None, "gone": record.gone()}))
maker.kill()
"""

IN_A = """
sleep 60 &
other=$!
unshare --pid --fork "$PYTHON" -c "$IN_B" "$FLAG" &
while [ ! -e "$FLAG" ]; do sleep 0.05; done
kill $other
wait $other 2>/dev/null
rm "$FLAG"
wait
"""


def test_a_live_maker_where_proc_shows_another_namespace_is_not_gone(tmp_path: Path) -> None:
    """`unshare --pid --fork` without `--mount-proc`: the maker recorded the start time
    of the process /proc showed under its pid (another namespace's), and once that one
    ended the live maker was read as gone (measured: gone true, the maker alive)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = ["unshare", *user, "--kill-child", "--pid", "--fork", "--mount-proc"]
    if subprocess.run([*command, "true"], capture_output=True, check=False).returncode:
        pytest.skip("no new PID namespaces here")
    done = subprocess.run(
        [*command, "sh", "-c", IN_A],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHON": sys.executable, "IN_B": IN_B, "FLAG": str(tmp_path / "f")},
    )
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["pid"] == 2, done.stderr  # A's pid 2 was the sleep, ended
    assert (outcome["alive"], outcome["gone"]) == (True, False), done.stderr
