"""The dependency time-out (START_WAIT_S, 120 s) counted once: a supervisor in this process
(as embedding does) with the real CLI against the scripted model; a's claude is
SIGSTOPped as it launches, so a stays `starting` for the whole test. The time-out is
shortened for the test (both places that read it); nothing is asserted on the clock."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import structlog
import yaml
from team_harness import agent_rule, stop_claude_as_it_starts

from orchestrator import supervisor as supervisor_module
from orchestrator.lifecycle import AgentState
from orchestrator.roster import Roster, load_roster
from orchestrator.supervision import depends
from orchestrator.supervisor import Supervisor

pytestmark = [
    # session_options ignores it once, at import; pytest's "error" filter comes back each test
    pytest.mark.filterwarnings("ignore::claude_agent_sdk.CanUseToolShadowedWarning"),
    pytest.mark.cli,
    pytest.mark.slow,
]

WAIT_S = 1.0  # START_WAIT_S for this test


def write_roster(folder: Path) -> Roster:
    folder.mkdir(parents=True, exist_ok=True)
    agents = {
        "a": {"connect_timeout": "600s"},
        "b": {"depends_on": ["a"]},
    }
    data = {
        "name": "late",
        "defaults": {"backoff": {"initial": "50ms", "max": "200ms"}, "sandbox": False},
        "agents": {
            n: {"prompt": f"You are {n}.", "description": n, **a} for n, a in agents.items()
        },
    }
    (folder / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(folder / "agents.yaml")


async def test_an_agent_whose_layer_timed_out_does_not_wait_for_its_dependency_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripted_model: Any,
    claude_env: Any,
) -> None:
    """`up` starts a (hung in its start-up), then b (depends on a) once START_WAIT_S has
    passed for a's layer. b's start then waited START_WAIT_S more for a (a second 120 s),
    `ps` saying `waiting (for a)` all along, before its session launched. Now what it has
    waited in its layer counts: it launches at once beside a, which is still `starting`,
    and the log says a was not ready (`dependency_not_ready`); no second wait begins."""
    model = scripted_model({"rules": [{"agent": agent_rule("b"), "text": "b here"}]})
    env = claude_env(model, CLAUDE_CODE_STREAM_CLOSE_TIMEOUT="900000")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("OCTY_DB", "OCTY_AGENT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(depends, "START_WAIT_S", WAIT_S)
    monkeypatch.setattr(supervisor_module, "START_WAIT_S", WAIT_S)
    sup = Supervisor(write_roster(tmp_path / "team"), watch_roster=False)
    stuck: list[int] = []

    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            try:
                stuck.append(
                    await anyio.to_thread.run_sync(stop_claude_as_it_starts, "a", env["HOME"])
                )
                with anyio.fail_after(120):
                    while sup.slots["b"].state not in (AgentState.STARTING, AgentState.READY):
                        await sup.state_changed.wait()
                assert sup.slots["a"].state == AgentState.STARTING
            finally:
                for pid in stuck:
                    os.kill(pid, signal.SIGCONT)
                sup.stop()
    of_b = [e for e in logs if e.get("agent") == "b"]
    assert [e["event"] for e in of_b if e["event"] == "waiting_for_dependencies"] == [], of_b
    late = [e for e in of_b if e["event"] == "dependency_not_ready"]
    assert [e["dependencies"] for e in late] == [{"a": "starting"}], of_b
