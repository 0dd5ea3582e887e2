"""Run a real team for a test: agents.yaml in tmp_path, `octy-orchestrate up` as a subprocess.

The supervisor, the claude CLIs and the SDK run for real; the model is the
scripted server (started in the test process). The test talks to the team
the way a script would: through the queue database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cli_runner
import yaml

from orchestrator import procid
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import USER, Mailbox, Message
from orchestrator.prompts import text_of


def agent_rule(agent: str) -> str:
    """The regex a script rule uses to pick out one agent by its system prompt."""
    return f"You are the agent '{agent}'"


def scout_rules(usage: dict[str, int]) -> list[dict[str, Any]]:
    """Scripted-model rules for `lead` sending its subagent `scout` (SCOUTJOB) when told
    "go", and both turns answered, each with ``usage``."""
    lead = agent_rule("lead")
    return [
        {"match": "SCOUTJOB", "text": "scout done", "usage": usage},
        {"agent": lead, "tool_result": "scout done", "text": "lead done", "usage": usage},
        {
            "agent": lead,
            "match": "go",
            "tool_use": {
                "name": "Agent",
                "input": {"subagent_type": "scout", "description": "look", "prompt": "SCOUTJOB"},
            },
            "usage": usage,
        },
    ]


def release_agent(team: Any, rules: list[dict[str, Any]], tools: Iterable[str] = ("Bash",)) -> Team:
    """A running team of one agent, `rel`, in `repo` outside the sandbox, whose
    `git push` asks first (the approvals tests' set-up); ``team`` is the fixture."""
    t: Team = team(
        rules,
        {
            "rel": {
                "tools": list(tools),
                "approve": ["Bash(git push:*)"],
                "cwd": "repo",
                "sandbox": False,
            }
        },
    )
    t.up()
    t.wait_ready("rel")
    return t


class Team:
    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str],
        agents: Mapping[str, Mapping[str, Any]],
        *,
        model: Any = None,
        **team: Any,
    ) -> None:
        self.folder = folder
        self.model = model  # the ScriptedModel answering this team
        self.env = {**os.environ, **env}
        self.roster_path = folder / "agents.yaml"
        self.db_path = folder / "queue" / "team.db"
        self.write_roster(agents, **team)
        self.proc: subprocess.Popen[bytes] | None = None
        self.output_path = folder / "up.out"

    def write_roster(self, agents: Mapping[str, Mapping[str, Any]], **team: Any) -> None:
        data: dict[str, Any] = {"name": team.pop("name", "testteam"), **team, "agents": {}}
        data.setdefault("defaults", {}).setdefault("backoff", {"initial": "50ms", "max": "200ms"})
        for name, spec in agents.items():
            data["agents"][name] = {
                "prompt": f"You are {name}.",
                "description": f"{name} agent",
                **spec,
            }
        self.roster_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    # --- process -----------------------------------------------------------------

    def up(self, *agents: str, extra: Iterable[str] = ()) -> subprocess.Popen[bytes]:
        out = self.output_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "up",
                "-f",
                str(self.roster_path),
                "--no-color",
                *extra,
                *agents,
            ],
            cwd=self.folder,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return self.proc

    def octy(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = cli_runner.RUN_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """An operator's verb in this team's folder (``env``: over the team's). ``check``:
        it must succeed. A traceback fails the test either way."""
        done = cli_runner.octy(
            *argv, cwd=self.folder, env={**self.env, **(env or {})}, timeout=timeout, check=check
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def octy_bg(self, *argv: str) -> subprocess.Popen[str]:
        """A verb that waits (``ask``, ``logs -f``), started in this team's folder."""
        return cli_runner.octy_bg(*argv, cwd=self.folder, env=self.env)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Teardown: SIGTERM the supervisor (ours, or a detached one holding the team), then
        kill what is left (supervisor session and claude processes)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        detached = holder_pid(self.db_path)
        if detached:
            _kill(detached, signal.SIGTERM)
            deadline = time.monotonic() + 40
            while holder_pid(self.db_path) and time.monotonic() < deadline:
                time.sleep(0.1)
            _kill(detached, signal.SIGKILL)
        for pid in self.cli_pids():
            _kill(pid, signal.SIGKILL)
            # What its sandbox started (socat) outlives a claude killed alone; as `up` does.
            deadline = time.monotonic() + 5
            while procid.running(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            procid.kill_orphaned_helpers(pid, shutil.which("socat"))

    # --- state -------------------------------------------------------------------

    def mailbox(self) -> Mailbox:
        return Mailbox(self.db_path)

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"supervisor exited ({self.proc.returncode}) waiting for {what}:\n"
                    + self.output()[-4000:]
                )
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n" + self.output()[-4000:])

    def states(self) -> dict[str, str]:
        if not self.db_path.exists():
            return {}
        with self.mailbox() as mb:
            return {a.name: a.state for a in mb.agents()}

    def agent_pid(self, name: str) -> int | None:
        with self.mailbox() as mb:
            info = mb.agent(name)
            return info.pid if info else None

    def cli_pids(self) -> list[int]:
        if not self.db_path.exists():
            return []
        with self.mailbox() as mb:
            return [a.pid for a in mb.agents() if a.pid and a.name != "supervisor"]

    def log_events(self, event: str, log: str = "supervisor") -> list[dict[str, Any]]:
        """The events named ``event`` in ``logs/<log>.jsonl`` so far (none if no file yet)."""
        path = self.folder / "logs" / f"{log}.jsonl"
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in lines if e.get("event") == event]

    def wait_ready(self, *names: str, timeout: float = 90) -> None:
        self.wait_for(
            lambda: all(self.states().get(n) == "ready" for n in names), timeout, f"{names} ready"
        )

    # --- talking -------------------------------------------------------------------

    def request(self, to: str, text: str, sender: str = USER) -> Message:
        with self.mailbox() as mb:
            return mb.request(sender, to, text)

    def ask(self, to: str, text: str, timeout: float = 60) -> str:
        with self.mailbox() as mb:
            request = mb.request(USER, to, text)
            return text_of(mb.wait_for_reply(request.id, timeout).body)

    def messages(self, **filters: Any) -> list[Message]:
        with self.mailbox() as mb:
            return mb.list(limit=10_000, **filters)


def stop_claude_as_it_starts(
    agent: str, home: str, timeout: float = 30, *, besides: Iterable[int] = ()
) -> int:
    """SIGSTOP the first process launched for ``agent`` of this test's team (its environment
    names the agent and the test's own HOME), as soon as it runs the CLI itself: long before
    a claude process can finish its start-up handshake. Matching the agent name alone
    stopped other teams' processes on a shared machine. Not earlier, in the launcher's shell
    (or its setsid/setpriv): stopped before it writes the CLI's pid file, the process cannot
    be killed at the connect timeout, and the SDK's own close ends it 15 s later, without the
    complaint this test looks for (seen once in a full run). ``besides``: processes stopped
    before (a later session's claude is looked for)."""
    tag = f"OCTY_AGENT={agent}".encode() + b"\0"
    own = f"HOME={home}".encode() + b"\0"
    skip = {os.getpid(), *besides}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in skip:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
                if tag not in environ or own not in environ:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    program = f.read().split(b"\0", 1)[0]
                if os.path.basename(program) != b"claude":
                    continue  # still the launcher (sh, setsid, setpriv): look again
            except OSError:  # gone already, or not ours
                continue
            os.kill(int(entry), signal.SIGSTOP)
            return int(entry)
        time.sleep(0.005)
    raise AssertionError(f"no process for {agent} appeared within {timeout}s")


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
