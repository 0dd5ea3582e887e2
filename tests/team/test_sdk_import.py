"""`up` imports the claude-agent-sdk in a background thread (issue 14.5): the supervisor is
operable (database open, registry rows, `ps` and `down` answered, `supervisor_started`
logged) before the import is over, no claude process starts before it is, and an import
that fails is a clear error, not a traceback.

The window is held open by a real module imported first (it waits for a file the test
writes): a real Supervisor, a real SQLite queue, the real `ps`/`down` verbs as
subprocesses, then the real claude CLI against the scripted model. The failure is a real
broken install: a `claude_agent_sdk` package on PYTHONPATH whose import fails as one
missing a dependency does. Nothing here waits on time, only on conditions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import yaml
from cli_runner import octy

from orchestrator.agent_meta import LAUNCHING
from orchestrator.mailbox import SUPERVISOR, Mailbox
from orchestrator.roster import Roster, load_roster
from orchestrator.sdk_import import MODULES, SdkImport
from orchestrator.supervisor import Supervisor


class Gate:
    """A module that, imported, waits until :meth:`open` is called: the SDK's import, held."""

    def __init__(self, folder: Path) -> None:
        self.name = f"octy_gate_{uuid.uuid4().hex[:8]}"
        self.file = folder / f"{self.name}.open"
        (folder / f"{self.name}.py").write_text(
            "import pathlib, time\n"
            f"while not pathlib.Path({str(self.file)!r}).exists():\n"
            "    time.sleep(0.01)\n",
            encoding="utf-8",
        )

    def open(self) -> None:
        self.file.touch()


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    held = Gate(folder)
    yield held
    held.open()  # the import thread ends with the test


@pytest.fixture
def roster(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripted_model: Any,
    claude_env: Any,
) -> Roster:
    """Two agents against the scripted model; the in-process supervisor's CLIs inherit
    this process's environment (HOME, the model's URL and key)."""
    model = scripted_model({"rules": [], "default": {"text": "ok"}})
    for key, value in claude_env(model).items():
        monkeypatch.setenv(key, value)
    for key in ("OCTY_DB", "OCTY_AGENT"):
        monkeypatch.delenv(key, raising=False)
    data = {
        "name": "sdk",
        "agents": {n: {"prompt": f"You are {n}.", "sandbox": False} for n in ("a", "b")},
    }
    (tmp_path / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(tmp_path / "agents.yaml")


async def until(check: Any, what: str) -> Any:
    """Wait for a condition (checked every 20 ms), without blocking the event loop."""
    with anyio.fail_after(60):
        while not (value := check()):  # noqa: ASYNC110 - a file and processes, not an event
            await anyio.sleep(0.02)
        return value


def registry(roster: Roster) -> dict[str, Any]:
    if not roster.database.exists():
        return {}
    with Mailbox(roster.database) as mb:
        return {a.name: a for a in mb.agents()}


def waiting(roster: Roster, *names: str) -> bool:
    rows = registry(roster)
    return all(n in rows and rows[n].state == "waiting" for n in names)


def supervisor_up(roster: Roster) -> bool:
    row = registry(roster).get(SUPERVISOR)
    return row is not None and row.state == "running"


async def test_ps_and_down_are_answered_while_the_sdk_is_still_importing(
    roster: Roster, gate: Gate
) -> None:
    sup = Supervisor(roster, watch_roster=False, sdk=SdkImport.begin((gate.name, *MODULES)))
    with structlog.testing.capture_logs() as events:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await until(lambda: supervisor_up(roster), "the supervisor's registry row")
            # Started, and waiting for the import to launch them: shown so, not `stopped`.
            await until(lambda: waiting(roster, "a", "b"), "a and b waiting")
            ps = await anyio.to_thread.run_sync(
                lambda: octy("-f", str(roster.path), "ps", "--json", cwd=roster.path.parent)
            )
            assert ps.returncode == 0, ps.stderr
            shown = json.loads(ps.stdout)
            assert shown["supervisor"] == {"running": True, "pid": os.getpid(), "responding": True}
            # What they wait for is said: the import (it was nothing, `waiting` alone).
            assert {a["name"]: (a["state"], a["reason"], a["pid"]) for a in shown["agents"]} == {
                "a": ("waiting", "for the SDK import", None),
                "b": ("waiting", "for the SDK import", None),
            }
            assert registry(roster)[SUPERVISOR].meta[LAUNCHING] is False  # `up -d` waits on
            down = await anyio.to_thread.run_sync(
                lambda: octy("-f", str(roster.path), "down", cwd=roster.path.parent)
            )
            assert down.returncode == 0, down.stderr
            assert "team stopped" in down.stdout
    # run() returned (down waited for it): the import never finished, nothing launched.
    names = [e["event"] for e in events]
    assert "supervisor_started" in names
    assert "agents_launchable" not in names
    assert not [e for e in events if e.get("state") == "starting"]
    assert sup.cli_path is None  # not even the launcher was written
    rows = registry(roster)
    assert (rows["a"].state, rows["a"].pid, rows["b"].state) == ("stopped", None, "stopped")
    assert rows[SUPERVISOR].state == "stopped"


async def test_sigterm_while_the_sdk_is_importing_stops_cleanly(roster: Roster, gate: Gate) -> None:
    before = signal.getsignal(signal.SIGTERM)
    sup = Supervisor(roster, watch_roster=False, sdk=SdkImport.begin((gate.name, *MODULES)))
    with structlog.testing.capture_logs() as events:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await until(lambda: supervisor_up(roster), "the supervisor's registry row")
            # The supervisor's signal receiver is installed (it replaces the handler).
            await until(lambda: signal.getsignal(signal.SIGTERM) != before, "its handler")
            signal.raise_signal(signal.SIGTERM)
    assert [e["signal"] for e in events if e["event"] == "signal"] == ["SIGTERM"]
    assert not [e for e in events if e.get("state") == "starting"]
    assert registry(roster)[SUPERVISOR].state == "stopped"


# session_options ignores it at import (allowed_tools shadows can_use_tool on purpose); an
# earlier test's import thread may have imported it under that test's warning filters.
@pytest.mark.filterwarnings("ignore::claude_agent_sdk.CanUseToolShadowedWarning")
async def test_agents_launch_once_the_import_is_over(roster: Roster, gate: Gate) -> None:
    sup = Supervisor(roster, watch_roster=False, sdk=SdkImport.begin((gate.name, *MODULES)))
    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        await until(lambda: supervisor_up(roster), "the supervisor's registry row")
        await until(lambda: waiting(roster, "a", "b"), "a and b waiting for the import")
        gate.open()
        rows = await until(
            lambda: (
                (r := registry(roster))
                and all(r[n].state == "ready" and r[n].pid for n in ("a", "b"))
                and r
            ),
            "both agents ready",
        )
        assert rows[SUPERVISOR].meta[LAUNCHING] is True
        for name in ("a", "b"):  # a real claude process each, started by our launcher
            cmdline = await anyio.Path(f"/proc/{rows[name].pid}/cmdline").read_bytes()
            assert b"claude" in cmdline
        sup.stop()


def broken_sdk(tmp_path: Path) -> dict[str, str]:
    """The environment of an install whose claude-agent-sdk lacks a dependency."""
    site = tmp_path / "broken-site"
    (site / "claude_agent_sdk").mkdir(parents=True)
    (site / "claude_agent_sdk" / "__init__.py").write_text(
        "import mcp_not_installed_here  # a dependency this install lacks\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    for key in ("OCTY_DB", "OCTY_AGENT"):
        env.pop(key, None)
    return env


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_an_sdk_that_cannot_be_imported_is_a_clear_error(
    roster: Roster, tmp_path: Path, detach: bool
) -> None:
    up = octy(
        "-f",
        str(roster.path),
        "up",
        "--no-color",
        *(["-d"] if detach else []),
        cwd=roster.path.parent,
        env=broken_sdk(tmp_path),
    )
    said = up.stdout + up.stderr
    assert up.returncode == 1, said
    assert (
        "cannot start agents: importing claude_agent_sdk failed: ModuleNotFoundError: "
        "No module named 'mcp_not_installed_here'"
    ) in said
    assert "reinstall" in said
    assert "Traceback" not in said
    if detach:
        assert "the supervisor exited at once" in said  # `up -d` did not say "started"
    rows = registry(roster)
    assert rows[SUPERVISOR].state == "stopped"
    assert all(rows[n].state == "stopped" and rows[n].pid is None for n in ("a", "b"))


def test_what_up_imports_before_the_team_is_operable_leaves_out_the_sdk() -> None:
    """The supervisor's own modules import neither the SDK nor `mcp` (the runner does, in the
    background): one top-level import of them in the supervisor's path would put the SDK's
    import back before `supervisor_started`."""
    code = (
        "import sys\n"
        "import orchestrator.cli.team_verbs, orchestrator.logconfig, orchestrator.supervisor\n"
        "import orchestrator.launcher, orchestrator.sdk_import, orchestrator.control\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('claude_agent_sdk', 'mcp')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_up_freezes_what_start_up_made_before_agents_launch(team: Any) -> None:
    """`up` freezes its start-up objects (gc.freeze) once the SDK is imported: a full
    collection over them fell in the agents' connect and held the event loop their
    handshakes wait on. Read from the log event that says agents may launch."""
    t = team([], {"a": {"sandbox": False}})
    t.up()
    t.wait_ready("a")
    log = (t.folder / "logs" / "supervisor.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in log]
    launchable = [e for e in events if e["event"] == "agents_launchable"]
    assert len(launchable) == 1
    assert launchable[0]["frozen_objects"] > 10_000  # our modules, the SDK's, mcp's
    assert launchable[0]["sdk_import_s"] > 0
    # Started agents wait for the import (`waiting`); none launches before it is over.
    launches = [e for e in events if e["event"] == "state" and e["state"] != "waiting"]
    order = [e["event"] for e in events if e["event"] == "agents_launchable" or e in launches]
    assert order[0] == "agents_launchable"  # before any agent's launch
