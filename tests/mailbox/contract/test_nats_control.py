"""Operator commands on a NATS team served by several supervisors: a command for a
supervisor on another host that died is answered once its presence runs out, after a
few hand-backs spaced further and further apart (orchestrator/control.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import pytest
from natsserver import NatsServer
from structlog.testing import capture_logs

from orchestrator import errors, foreign_commands
from orchestrator.control import serve_control
from orchestrator.mailbox import SUPERVISOR, USER
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.lease import AgentLeases, presence_key
from orchestrator.reload import ReloadResult


class Team:
    """The supervisor as control sees it; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def agent_names(self) -> list[str]:
        return ["alpha"]

    async def start_agent(self, name: str) -> str:
        self.calls.append(("start", name))
        return "started"

    async def stop_agent(self, name: str) -> str:
        self.calls.append(("stop", name))
        return "stopped"

    async def restart_agent(self, name: str) -> str:
        self.calls.append(("restart", name))
        return "restarting"

    async def reload(self) -> ReloadResult:
        self.calls.append(("reload", None))
        return ReloadResult(ok=True)

    async def resume_budgets(self, names: list[str]) -> list[dict[str, Any]]:
        return []

    def shut_down(self, grace_s: float | None) -> float:
        self.calls.append(("down", grace_s))
        return 0.0

    def abandon(self, exc: errors.DatabaseReplaced) -> None:
        self.calls.append(("abandon", exc))


@pytest.mark.parametrize("command", ["down", "restart"])
async def test_a_command_for_a_dead_supervisor_on_another_host_is_refused_once_it_is_gone(
    nats_server: NatsServer, command: str
) -> None:
    """The supervisor on far.example shows itself, then stops renewing (it died). A `down`
    (or a `restart alpha`, alpha being nobody's) meant for it is handed back while it may
    live, counted, then answered once its presence ran out: supervisor_gone naming its
    host and pid, nothing run here. Before, it went back every 0.2 s until its TTL and the
    CLI timed out."""
    config = NatsConfig((nats_server.url,), namespace=f"ctl{uuid.uuid4().hex[:8]}")
    team = Team()
    async with NatsMailbox(config) as mb:
        await mb.register_supervisor(1, {})
        await mb.register("alpha", "")
        leases = AgentLeases(mb, "octy-supervisor:here", lease_s=1.0)
        await leases.announce()
        far: dict[str, Any] = {"holder": "octy-supervisor:far", "host": "far.example"}
        far.update(pid=4242, expires_at=mb.now() + 60.0)
        key = presence_key("far.example", 4242)
        await mb.kv.put(key, json.dumps(far).encode())
        body = {"command": command, "agent": "alpha", "for": {"host": "far.example", "pid": 4242}}
        request = await mb.request(USER, SUPERVISOR, body, ttl_s=30)
        with capture_logs() as logs, anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_control, team, mb, "octy-supervisor:here:control", leases)
                # Alive: handed back, and back again (a log list, not an event).
                while len(handed_back(logs)) < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                far["expires_at"] = mb.now() - 1.0  # it stopped renewing: gone
                await mb.kv.put(key, json.dumps(far).encode())
                answer = (await mb.wait_for_reply(request.id, 30)).body
                tg.cancel_scope.cancel()
    assert answer["ok"] is False
    assert answer["error"] == "supervisor_gone"
    assert answer["message"].startswith("the supervisor on far.example (pid 4242) is gone: ")
    assert "agent_lease" in answer["message"]
    assert team.calls == []
    handed = handed_back(logs)
    assert len(handed) >= 2
    assert [e["times"] for e in handed] == list(range(1, len(handed) + 1))


def handed_back(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "command_handed_back"]


def test_the_pause_after_a_hand_back_doubles_up_to_its_cap() -> None:
    """The same command handed back again waits 0.2, 0.4, 0.8... s, at most 3.2 s: about
    ten hand-backs over a command's 30 s, not 150. Another command starts at 0.2 s."""
    pauses = foreign_commands.HandBacks()

    async def main() -> list[float]:
        return [pauses.pause_after(["c1"]) for _ in range(7)] + [pauses.pause_after(["c2"])]

    assert anyio.run(main) == [0.2, 0.4, 0.8, 1.6, 3.2, 3.2, 3.2, 0.2]
