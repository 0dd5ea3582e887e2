"""When a lease's supervisor is provably gone (orchestrator/mailbox/nats/lease.py,
``gone_here``): never while it runs, whatever ``/proc`` shows of it.

A lease whose holder is read as gone is taken at once: a second supervisor then runs the
same agent beside the first. These run real processes in real PID namespaces
(``unshare``), where ``/proc`` shows other pids than the kernel gives, or hides them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.mailbox.nats import lease

ROOT = Path(__file__).resolve().parents[2]

# Inside a new PID namespace: a holder writes its lease fields as a supervisor does
# (AgentLeases._value), then a second process of that namespace asks gone_here while the
# holder runs. Holders are started until one's pid is no process in the /proc shown
# (the host's: --mount-proc not given), as a supervisor's may be.
IN_NEW_NAMESPACE = """
import json, os, subprocess, sys
from orchestrator import procid
from orchestrator.mailbox.nats import lease
HOLDER = (
    "import json, os, time\\n"
    "from orchestrator import procid\\n"
    "from orchestrator.mailbox.nats import lease\\n"
    "import socket\\n"
    "print(json.dumps({'holder': 'x', 'host': socket.gethostname(), 'pid': os.getpid(),"
    " 'expires_at': 1e12,"
    " 'start_ticks': procid.start_ticks(os.getpid()), 'pid_space': lease.pid_space()}),"
    " flush=True)\\n"
    "time.sleep(60)\\n"
)
for _ in range(200):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    record = json.loads(holder.stdout.readline())
    if not os.path.exists(f"/proc/{record['pid']}"):
        break
    holder.kill()
    holder.wait()
else:
    sys.exit("no pid free in the /proc shown")
print(json.dumps({"alive": holder.poll() is None, "gone": lease.gone_here(record)}))
holder.kill()
"""


def _unshare(*flags: str) -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = ["unshare", *user, "--kill-child", *flags]
    probe = subprocess.run([*command, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no new namespaces here: {probe.stderr.decode(errors='replace')}")
    return command


def test_a_live_supervisor_in_a_pid_namespace_shown_anothers_proc_is_not_gone() -> None:
    """`unshare --pid --fork` without `--mount-proc` (a container runtime or a script
    that forgot it): pids are the namespace's, /proc the host's. A live supervisor
    there was read as gone (its pid no process in that /proc) and its agents taken by
    a second supervisor of the same namespace, both running them."""
    command = _unshare("--pid", "--fork")
    done = subprocess.run(
        [*command, sys.executable, "-c", IN_NEW_NAMESPACE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"alive": True, "gone": False}


HIDDEN = """
mount -o remount,hidepid=2 /proc || exit 3
setpriv --reuid=65534 --regid=65534 --clear-groups sleep 60 &
holder=$!
while [ ! -e /proc/$holder/stat ] || [ "$(readlink /proc/$holder/exe)" != "$SLEEP" ]; do
  sleep 0.01
done
ticks=$(cut -d' ' -f22 /proc/$holder/stat)
setpriv --reuid=65533 --regid=65533 --clear-groups "$PYTHON" -c "
import json, os
from orchestrator.mailbox.nats import lease
import socket
record = {'pid': $holder, 'start_ticks': $ticks, 'pid_space': lease.pid_space(),
          'host': socket.gethostname()}
print(json.dumps({'shown': os.path.exists('/proc/$holder'), 'space': record['pid_space'],
                  'gone': lease.gone_here(record)}))"
kill $holder
"""


def test_another_users_supervisor_hidden_by_hidepid_is_not_gone() -> None:
    """/proc mounted `hidepid=2` (a hardened multi-user machine): another user's
    supervisor has no /proc/PID for us, though it runs. It was read as gone and its
    agents taken, both supervisors then running them. Its pid is asked of the kernel."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (two other users) and setpriv")
    command = _unshare("--mount", "--pid", "--fork", "--mount-proc")
    done = subprocess.run(
        [*command, "sh", "-c", HIDDEN],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "SLEEP": os.path.realpath(shutil.which("sleep") or "sleep"),
        },
    )
    if done.returncode == 3:
        pytest.skip(f"/proc cannot be mounted hidepid here: {done.stderr}")
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert (outcome["shown"], outcome["gone"]) == (False, False), done.stderr
    assert outcome["space"] is not None  # the case is one gone_here judges


@pytest.mark.parametrize(
    "fields",
    [
        {"pid": 10**30},
        {"pid": 1 << 22},
        {"pid": -5},
        {"pid": True},
        {"pid": "1"},
        {"pid": "self", "start_ticks": True},
        {"pid": "self", "start_ticks": 1.5},
    ],
    ids=repr,
)
def test_a_lease_record_no_supervisor_writes_frees_nothing(fields: dict[str, object]) -> None:
    """Anyone with the team's account writes the bucket: a record of this machine's PID
    space with a pid no process can have (huge: OverflowError from a signal), or fields
    of other types, neither crashes nor frees the agent. (A start time that is no
    whole number proves no other process has the pid: our parent is alive.)"""
    record = {
        "holder": "x",
        "host": socket.gethostname(),
        "expires_at": 1e12,
        "pid_space": lease.pid_space(),
    }
    record.update(fields)
    if record["pid"] == "self":  # named here: the ids are the same in every xdist worker
        record["pid"] = os.getppid()
    assert record["pid_space"] is not None
    assert lease.gone_here(record) is False


def test_a_dead_pid_under_another_host_name_proves_nothing() -> None:
    """A machine cloned from a running one's snapshot shares its boot id and namespace
    ids, but its pids went their own way: a pid gone here may be the clone's live
    supervisor. A record with another host name proves nothing; with ours, the same
    dead pid frees the lease."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    record = {
        "holder": "x",
        "pid": ended.pid,
        "expires_at": 1e12,
        "start_ticks": 1,
        "pid_space": lease.pid_space(),
    }
    assert lease.gone_here({**record, "host": socket.gethostname()}) is True
    assert lease.gone_here({**record, "host": f"clone-of-{socket.gethostname()}"}) is False
