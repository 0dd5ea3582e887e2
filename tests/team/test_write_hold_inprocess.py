"""The write hold with supervisors run in this process (as embedding does): the real CLI in
its bubblewrap sandbox against the scripted model, real signals. The hold is taken as an
agent's Write takes it (its policy's ``_hold``) and kept for as long as the test needs.

No clock: what happened is read from files the agents' commands make, the processes'
states, and the supervisor's own events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import yaml
from team_harness import agent_rule

from orchestrator import hold_procs, write_hold
from orchestrator.mailbox import USER, Mailbox
from orchestrator.policy import Policy
from orchestrator.roster import Roster, load_roster
from orchestrator.sandbox import missing_programs
from orchestrator.supervisor import Supervisor

pytestmark = [
    # session_options ignores it once, at import; pytest's "error" filter comes back each test
    pytest.mark.filterwarnings("ignore::claude_agent_sdk.CanUseToolShadowedWarning"),
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_programs()), reason="the CLI's sandbox needs bubblewrap"),
]

SLEEPER = "import time; open('sleeping', 'w').close(); time.sleep(600)"


def rules(*names: str) -> list[dict[str, Any]]:
    """Each of ``names``: GO-SLEEP runs a long command in its folder, GO-TOUCH one that
    makes the file ``started`` there."""
    out: list[dict[str, Any]] = []
    for name in names:
        me = agent_rule(name)
        out += [
            {"agent": me, "tool_result": r"(?s).", "text": "done"},
            {
                "agent": me,
                "match": "GO-SLEEP",
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": f'python3 -c "{SLEEPER}"', "timeout": 600000},
                },
            },
            {
                "agent": me,
                "match": "GO-TOUCH",
                "tool_use": {"name": "Bash", "input": {"command": "touch started"}},
            },
        ]
    return out


def write_roster(folder: Path, agents: dict[str, dict[str, Any]]) -> Roster:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": folder.name,
        "defaults": {"backoff": {"initial": "50ms", "max": "200ms"}},
        "agents": {
            n: {"prompt": f"You are {n}.", "description": n, **a} for n, a in agents.items()
        },
    }
    for spec in agents.values():
        if "cwd" in spec:
            (folder / spec["cwd"]).mkdir(parents=True, exist_ok=True)
    (folder / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(folder / "agents.yaml")


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, scripted_model: Any, claude_env: Any
) -> Callable[[list[dict[str, Any]]], None]:
    """The in-process supervisors' CLIs inherit this process's environment."""

    def use(script: list[dict[str, Any]]) -> None:
        model = scripted_model({"rules": script, "default": {"text": "ok"}})
        for key, value in claude_env(model).items():
            monkeypatch.setenv(key, value)
        for key in ("OCTY_DB", "OCTY_AGENT"):
            monkeypatch.delenv(key, raising=False)

    return use


async def until(check: Callable[[], Any], what: str) -> Any:
    """Wait for ``what`` (checked every 20 ms), without blocking the event loop."""
    with anyio.fail_after(120):
        while not (value := check()):  # noqa: ASYNC110 - files and processes, not an event
            await anyio.sleep(0.02)
        return value


def states(roster: Roster) -> dict[str, str]:
    if not roster.database.exists():
        return {}
    with Mailbox(roster.database) as mb:
        return {a.name: a.state for a in mb.agents()}


def request(roster: Roster, to: str, text: str) -> str:
    with Mailbox(roster.database) as mb:
        return mb.request(USER, to, text).id


def replied(roster: Roster, request_id: str) -> bool:
    with Mailbox(roster.database) as mb:
        return mb.find_reply(request_id) is not None


@asynccontextmanager
async def running(*rosters: Roster) -> AsyncIterator[list[Supervisor]]:
    """A supervisor per roster, in this process, each ready before the next starts."""
    sups = [Supervisor(r, watch_roster=False) for r in rosters]
    async with anyio.create_task_group() as tg:
        try:
            for sup, roster in zip(sups, rosters, strict=True):
                tg.start_soon(sup.run)
                names = list(roster.agents)
                await until(lambda: all(states(roster).get(n) == "ready" for n in names), "ready")  # noqa: B023
            yield sups
        finally:
            for sup in sups:
                sup.stop()


def commands_of(sup: Supervisor, name: str) -> set[int]:
    runner = sup.slots[name].runner
    assert runner is not None
    assert runner.pid is not None
    return write_hold.descendants([runner.pid])


def stopped(pids: set[int]) -> bool:
    """Every one of ``pids`` still there stopped (one ended meanwhile is not running)."""
    seen = [hold_procs.run_state(p) for p in pids]
    return "T" in seen and all(s in ("T", "t", "Z", "X") for s in seen)


def policy_of(sup: Supervisor, name: str) -> Policy:
    runner = sup.slots[name].runner
    assert runner is not None
    return runner.policy


async def test_two_teams_in_one_process_hold_each_their_own_agents(
    tmp_path: Path, environment: Callable[[list[dict[str, Any]]], None]
) -> None:
    """Two supervisors in one process, each with an agent ``a`` in a folder of its own.
    Each team's hold knows its own ``a``'s folder: before, one process-wide map kept the
    folder of the ``a`` started last, so team 1's ``a`` was held by a write in team 2's
    ``a``'s folder, which its commands cannot write."""
    environment(rules("a"))
    one = write_roster(
        tmp_path / "one",
        {"w": {"cwd": "w", "tools": ["Write"]}, "a": {"cwd": "a", "tools": ["Bash"]}},
    )
    two = write_roster(tmp_path / "two", {"a": {"cwd": "a", "tools": ["Bash"]}})
    async with running(one, two) as (sup, other):
        assert sup.write_hold is not other.write_hold
        asked = request(one, "a", "GO-SLEEP")
        await until((tmp_path / "one" / "a" / "sleeping").exists, "a's command")
        commands = commands_of(sup, "a")
        writer = policy_of(sup, "w")
        await anyio.to_thread.run_sync(writer._hold, "k1", str(tmp_path / "two" / "a" / "f"))
        try:
            outside = stopped(commands)
        finally:
            writer.hold.release("k1")
        # Its own folder: held (the test can see a hold).
        await anyio.to_thread.run_sync(writer._hold, "k2", str(tmp_path / "one" / "a" / "f"))
        try:
            inside = stopped(commands)
        finally:
            writer.hold.release("k2")
        print("TWO-TEAMS", {"outside": outside, "inside": inside})
        assert (outside, inside) == (False, True)
        assert not replied(one, asked)  # its command still ran throughout


async def test_a_command_started_while_its_agent_is_held_waits_for_the_write(
    tmp_path: Path, environment: Callable[[list[dict[str, Any]]], None]
) -> None:
    """``w`` writes in its folder, which ``s``'s (the team's folder) holds: ``s`` is held.
    ``s``'s claude itself is not stopped, so it can start a command while the hold is on;
    that command must not run until the write is done."""
    environment(rules("s"))
    roster = write_roster(
        tmp_path / "team", {"w": {"cwd": "w", "tools": ["Write"]}, "s": {"tools": ["Bash"]}}
    )
    started = roster.path.parent / "started"
    with structlog.testing.capture_logs() as events:
        async with running(roster) as (sup,):
            policy = policy_of(sup, "w")
            await anyio.to_thread.run_sync(policy._hold, "k1", "f")
            try:
                asked = request(roster, "s", "GO-TOUCH")
                waits = await until(
                    lambda: (
                        started.exists()
                        or [e for e in events if e["event"] == "command_waits_for_write"]
                    ),
                    "the command or its wait",
                )
                print("HELD-START", "ran" if started.exists() else "waited", waits)
                assert not started.exists(), "a command ran while its agent was held"
                assert sup.write_hold.held == {"k1"}
                assert policy_of(sup, "s").hold.holding("s")
            finally:
                sup.write_hold.release("k1")
            await until(lambda: replied(roster, asked), "s's answer")
            assert started.exists()


async def test_a_command_let_through_just_before_a_hold_is_stopped_as_it_starts(
    tmp_path: Path,
    environment: Callable[[list[dict[str, Any]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``s``'s hook lets its Bash call through; ``w``'s write takes its hold right then,
    before the CLI has started the command (measured: 80-670 ms from the hook's answer
    to the command's first process). The command must not run until the write is done:
    it is stopped as it appears. Before, it ran: the hold had looked already."""
    environment(rules("s"))
    roster = write_roster(
        tmp_path / "team", {"w": {"cwd": "w", "tools": ["Write"]}, "s": {"tools": ["Bash"]}}
    )
    started = roster.path.parent / "started"
    team: list[Supervisor] = []
    before: set[int] = set()
    answer = Policy.pre_tool_use

    async def then_hold(self: Policy, data: Any, call: str | None, context: Any) -> Any:
        out = await answer(self, data, call, context)
        if self.agent == "s" and dict(data).get("tool_name") == "Bash" and team:
            before.update(commands_of(team[0], "s"))
            await anyio.to_thread.run_sync(policy_of(team[0], "w")._hold, "k1", "f")
        return out

    monkeypatch.setattr(Policy, "pre_tool_use", then_hold)
    async with running(roster) as (sup,):
        team.append(sup)
        asked = request(roster, "s", "GO-TOUCH")
        try:
            await until(
                lambda: (
                    started.exists()
                    or any(hold_procs.run_state(p) == "T" for p in commands_of(sup, "s") - before)
                ),
                "the command, run or stopped",
            )
            print("LAUNCH-HOLD", "ran" if started.exists() else "stopped")
            assert not started.exists(), "a command let through before a hold ran during it"
        finally:
            sup.write_hold.release("k1")
        await until(lambda: replied(roster, asked), "s's answer")
        assert started.exists()
