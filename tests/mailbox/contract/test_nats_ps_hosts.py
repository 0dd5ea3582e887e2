"""`ps` on a team spread over machines (review G, 5): CPU and memory are read from this
machine's /proc only for an agent whose process runs here. A real nats-server; a second
"machine" is a supervisor in its own PID namespace (`unshare`), its pids meaning other
processes here, as another host's would; real claude CLIs against the scripted model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natsserver import NatsServer
from natsteam import ASK_BETA_RULES, MachineTeam

from orchestrator import procid
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox.nats import NatsConfig
from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox

pytestmark = [pytest.mark.cli]

AGENTS: dict[str, dict[str, Any]] = {"alpha": {}, "beta": {}}


def ps_json(t: MachineTeam) -> dict[str, dict[str, Any]]:
    done = t.cli("ps", "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)["agents"]}


@pytest.fixture
def here(
    tmp_path: Path, nats_server: NatsServer, scripted_model: Any, claude_env: Any
) -> Iterator[MachineTeam]:
    """This machine's folder of a team on the NATS server (nothing started)."""
    namespace = f"team{uuid.uuid4().hex[:8]}"
    config = NatsConfig((nats_server.url,), namespace=namespace)
    queue = {"servers": nats_server.url, "namespace": namespace, "agent_lease": "2s"}
    folder = tmp_path / "here"
    folder.mkdir()
    model = scripted_model({"rules": ASK_BETA_RULES})
    team = MachineTeam(
        folder, claude_env(model, home=folder / "home"), AGENTS, queue=queue, nats=config
    )
    yield team
    team.stop()


def test_ps_shows_no_figures_for_a_pid_whose_process_is_not_the_agents(
    here: MachineTeam,
) -> None:
    """Rows written as another machine's supervisor writes them: the pid of a process that
    exists here, with the start time of the process the other machine runs (not this
    one's), or no start time at all. `ps` used to show that local process's CPU and
    memory; it shows none (`-`), and the host beside the pid when one is recorded. The
    row whose start time is this process's is read."""
    local = subprocess.Popen(["sleep", "600"])
    try:
        start = procid.start_ticks(local.pid)
        assert start is not None
        with BlockingNatsMailbox(here.nats) as mb:
            for name, meta in (
                ("alpha", {"supervised": True, "pid_start": start}),
                ("beta", {"supervised": True, "pid_start": start + 1}),
                ("gamma", {"supervised": True}),
                ("delta", {"supervised": True, "pid_start": start, "host": "elsewhere.example"}),
            ):
                mb.register(name, pid=local.pid, state="ready", meta=meta)
        rows = ps_json(here)
        assert rows["alpha"]["rss_bytes"] > 0
        for name in ("beta", "gamma", "delta"):
            row = rows[name]
            assert row["pid"] == local.pid
            assert (row["cpu_percent"], row["rss_bytes"]) == (None, None), name
            assert row["pid_here"] is False
        assert rows["alpha"]["pid_here"] is True
        table = here.cli("ps").stdout
        [delta] = [line for line in table.splitlines() if line.startswith("delta")]
        assert f"{local.pid}@elsewhere.example" in delta
    finally:
        local.kill()
        local.wait()


def test_an_agent_run_by_a_supervisor_in_another_pid_namespace_shows_no_figures(
    here: MachineTeam, tmp_path: Path
) -> None:
    """alpha runs here, beta under a supervisor in its own PID namespace (another
    machine's pids): `ps` here reads alpha's process and not beta's pid, which names
    another process (or none) on this machine."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    probe = subprocess.run(["unshare", "-pf", "--mount-proc", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot make a PID namespace here")
    there = tmp_path / "there"
    there.mkdir()
    shutil.copy(here.roster_path, there / "agents.yaml")
    here.up("alpha")
    here.wait_ready("alpha", timeout=120)
    with (there / "up.out").open("ab") as out:
        other = subprocess.Popen(
            [
                "unshare",
                "-pf",
                "--mount-proc",
                "--kill-child=SIGTERM",
                sys.executable,
                "-m",
                "orchestrator.cli",
                "up",
                "--no-color",
                "beta",
            ],
            cwd=there,
            env={**here.env, "HOME": str(there / "home")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        here.wait_for(
            lambda: here.states().get("beta") == "ready",
            timeout=120,
            what="beta ready in the other namespace:\n"
            + (there / "up.out").read_text(errors="replace"),
        )
        rows = ps_json(here)
        assert rows["alpha"]["rss_bytes"] > 0
        assert rows["alpha"]["host"] == socket.gethostname()  # recorded with its pid
        beta = rows["beta"]
        assert beta["pid"]
        assert (beta["cpu_percent"], beta["rss_bytes"]) == (None, None)
        assert rows["alpha"]["pid_here"] is True
        assert beta["pid_here"] is False
    finally:
        _end_namespace(other)
        # Its lock is free once the namespace's supervisor is gone (never signalled by the
        # pid it wrote in the lock file: a pid of the namespace, another process here).
        deadline = time.monotonic() + 60
        while holder_pid(there / "queue" / "team.db") is not None and time.monotonic() < deadline:
            time.sleep(0.1)


def _end_namespace(unshare: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the namespace's first process (by its pid here: unshare ignores SIGTERM
    while it waits), SIGKILL if it lingers, which ends every process of the namespace."""
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
    with contextlib.suppress(OSError):
        for pid in [int(p) for p in children.read_text().split()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                unshare.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    unshare.wait(60)
