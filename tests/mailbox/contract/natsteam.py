"""A real team on a NATS queue for tests: the harness's Team reading its registry and
messages on the JetStream server; several of them (one folder each: one "machine"
each) may share one bucket, each running some of the team's agents."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from team_harness import Team, agent_rule

from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox
from orchestrator.mailbox.nats.lease import holder_of

# The scripted model's rules of the cross-machine tests: alpha asks beta the capital of
# what the user names and passes beta's answer on (BETA-<name>).
ASK_BETA_RULES: list[dict[str, Any]] = [
    {"agent": agent_rule("alpha"), "text": "alpha heard: {1}", "tool_result": r"(BETA-\w+)"},
    {
        "agent": agent_rule("alpha"),
        "match": r"capital of (\w+)",
        "tool_use": {
            "name": "mcp__octy__ask",
            "input": {"to": "beta", "message": "what is the capital of {1}?"},
        },
    },
    {"agent": agent_rule("beta"), "text": "BETA-{1}", "match": r"capital of (\w+)\?"},
]


class NatsTeam(Team):
    """The harness's team, reading and writing its queue on the NATS server."""

    def __init__(self, *args: Any, nats: NatsConfig, **kwargs: Any) -> None:
        self.nats = nats
        super().__init__(*args, **kwargs)

    def mailbox(self) -> Any:
        return BlockingNatsMailbox(self.nats)

    def states(self) -> dict[str, str]:
        with self.mailbox() as mb:
            return {a.name: a.state for a in mb.agents()}

    def cli_pids(self) -> list[int]:
        with self.mailbox() as mb:
            return [a.pid for a in mb.agents() if a.pid and a.name != "supervisor"]

    def holder(self, agent: str) -> dict[str, Any] | None:
        """The live lease record on ``agent`` (holder, host, pid), or None."""
        return asyncio.run(_holder(self.nats, agent))

    def cli(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``octy-orchestrate ARGV`` run in this team's folder (this "machine")."""
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


async def _holder(config: NatsConfig, agent: str) -> dict[str, Any] | None:
    async with NatsMailbox(config) as mb:
        return await holder_of(mb, agent)


class MachineTeam(NatsTeam):
    """One "machine" of a team shared by several supervisors: at teardown it kills only
    the claude processes of the agents its own supervisor holds."""

    def stop(self) -> None:
        self._mine = self.held_cli_pids()  # before: a clean stop releases the leases
        super().stop()

    def held_cli_pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        with self.mailbox() as mb:
            agents = [a for a in mb.agents() if a.pid and a.name != "supervisor"]
        return [
            a.pid
            for a in agents
            if a.pid and (h := self.holder(a.name)) is not None and h["pid"] == self.proc.pid
        ]

    def cli_pids(self) -> list[int]:
        return getattr(self, "_mine", [])
