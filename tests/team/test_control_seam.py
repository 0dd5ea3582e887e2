"""Operator commands reach the supervisor only through control's small ``Team`` protocol
(issue 15.3): here a plain double stands in for the supervisor, behind a real queue."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import anyio

from orchestrator import errors
from orchestrator.agent_leases import LocalLeases
from orchestrator.control import Team, serve_control
from orchestrator.mailbox import SUPERVISOR, USER, AsyncMailbox
from orchestrator.reload import ReloadResult


class FakeTeam:
    """Records what control asked; has no ``slots`` or ``grace_s`` to read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.grace = 10.0

    def agent_names(self) -> list[str]:
        return ["alice", "bob"]

    async def start_agent(self, name: str) -> str:
        self.calls.append(("start", name))
        return "started"

    async def stop_agent(self, name: str) -> str:
        self.calls.append(("stop", name))
        if name not in self.agent_names():
            raise errors.AgentNotFound(name, self.agent_names())
        return "stopped"

    async def restart_agent(self, name: str) -> str:
        self.calls.append(("restart", name))
        return "restarting"

    async def reload(self) -> ReloadResult:
        self.calls.append(("reload", None))
        return ReloadResult(ok=True, added=["carol"])

    async def resume_budgets(self, names: list[str]) -> list[dict[str, Any]]:
        self.calls.append(("resume", names))
        return [{"agent": n} for n in names]

    def shut_down(self, grace_s: float | None) -> float:
        self.calls.append(("down", grace_s))
        if grace_s is not None:
            self.grace = grace_s
        return self.grace

    def abandon(self, exc: errors.DatabaseReplaced) -> None:
        self.calls.append(("abandon", exc))


async def _ask(am: AsyncMailbox, body: dict[str, Any]) -> Any:
    """A command to the supervisor inbox, as the CLI sends it; its reply's body."""
    request = await am.request(USER, SUPERVISOR, body, ttl_s=30)
    return (await am.wait_for_reply(request.id, 30)).body


async def test_commands_go_through_the_team_protocol(tmp_path: Path) -> None:
    team = FakeTeam()
    seam: Team = team  # mypy: the double satisfies the protocol the supervisor does
    replies: dict[str, Any] = {}
    async with await AsyncMailbox(tmp_path / "team.db").open() as am:
        await am.register_supervisor(os.getpid(), {})

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_control, seam, am, "test:control", LocalLeases())
                replies["stop"] = await _ask(am, {"command": "stop", "agent": "alice"})
                replies["ghost"] = await _ask(am, {"command": "stop", "agent": "ghost"})
                replies["nameless"] = await _ask(am, {"command": "start", "agent": None})
                replies["reload"] = await _ask(am, {"command": "reload"})
                replies["resume"] = await _ask(am, {"command": "resume", "agents": ["bob"]})
                replies["unknown"] = await _ask(am, {"command": "resume", "agents": ["zed"]})
                replies["negative"] = await _ask(am, {"command": "down", "grace_s": -1})
                replies["huge"] = await _ask(am, {"command": "down", "grace_s": 1e300})
                replies["down"] = await _ask(am, {"command": "down", "grace_s": 2})
                tg.cancel_scope.cancel()
    assert replies["stop"] == {"ok": True, "command": "stop", "agent": "alice", "result": "stopped"}
    assert replies["ghost"]["error"] == errors.AgentNotFound.code
    assert replies["nameless"]["error"] == errors.AgentNotFound.code
    assert "alice, bob" in replies["nameless"]["message"]  # the names come from the team
    assert replies["reload"]["changes"]["added"] == ["carol"]
    assert replies["resume"] == {"ok": True, "command": "resume", "agents": [{"agent": "bob"}]}
    assert replies["unknown"]["error"] == "not_found"
    assert "agents: alice, bob" in replies["unknown"]["message"]
    assert replies["negative"]["error"] == "usage"  # refused before the team is told anything
    assert replies["huge"]["error"] == "usage"
    assert "grace_s is longer than ten years" in replies["huge"]["message"]
    assert replies["down"] == {"ok": True, "command": "down", "grace_s": 2.0}
    assert team.calls == [
        ("stop", "alice"),
        ("stop", "ghost"),
        ("reload", None),
        ("resume", ["bob"]),
        ("down", 2.0),
    ]


async def test_a_command_for_the_supervisor_before_this_one_is_not_left_to_time_out(
    tmp_path: Path,
) -> None:
    """On SQLite the lock file lets one supervisor in: a command still naming the one
    before it (it died after the CLI sent it; `up` again) is for a supervisor that is
    gone. `restart alice` is run (this supervisor runs alice now); `down` is refused as
    supervisor_gone, the running team left alone; a `for` that is not {host, pid} is a
    usage error. Before, each went back to the inbox until its TTL."""
    team = FakeTeam()
    before = {"host": socket.gethostname(), "pid": os.getpid() + 1}
    async with await AsyncMailbox(tmp_path / "team.db").open() as am:
        await am.register_supervisor(os.getpid(), {})

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_control, team, am, "test:control", LocalLeases())
                restart = await _ask(am, {"command": "restart", "agent": "alice", "for": before})
                down = await _ask(am, {"command": "down", "for": before})
                forged = await _ask(am, {"command": "down", "for": {"host": 1, "pid": "x"}})
                tg.cancel_scope.cancel()
    assert restart["ok"] is True
    assert down["error"] == "supervisor_gone"
    assert down["message"].startswith(
        f"the supervisor on {socket.gethostname()} (pid {os.getpid() + 1}) is gone: "
        f"the supervisor pid {os.getpid()} holds this team's lock now; "
    )
    assert forged["error"] == "usage"
    assert team.calls == [("restart", "alice")]
