"""A command an agent starts while another agent's write holds it waits for that write
(orchestrator/write_hold.py, orchestrator/policy.py): the claudes are not stopped, so
their Bash calls are held back at the policy hook. Who waits, who does not, and the
bound. The real-CLI version is test_write_hold_inprocess.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from counting import COUNTER
from polling import until

from orchestrator import hold_procs, prompts, write_hold
from orchestrator.policy import Policy
from orchestrator.roster import Roster, parse_roster


def test_a_hold_holds_the_agents_it_covers_but_not_its_writer() -> None:
    hold = write_hold.Hold()
    hold.hold("k1", [], agents={"w": 1, "s": 2}, writer="w")
    assert (hold.holding("s"), hold.holding("w"), hold.holding("b")) == (True, False, False)
    hold.hold("k2", [], agents={"w": 1}, writer="s")  # s writes too: its write holds w
    assert (hold.holding("s"), hold.holding("w")) == (True, True)
    hold.release("k1")
    assert (hold.holding("s"), hold.holding("w")) == (False, True)
    hold.release_all()
    assert not hold.holding("w")


def test_a_hold_that_expires_holds_no_one() -> None:
    hold = write_hold.Hold()
    hold.hold("k", [], max_s=0.01, agents={"s": 2}, writer="w")
    hold._expire("k", 0.01)  # what its timer does
    assert not hold.holding("s")


def roster(tmp_path: Path) -> Roster:
    text = "agents:\n" + "".join(
        f"  {n}: {{prompt: p, tools: [Bash, Write, Read], cwd: {n}}}\n" for n in ("w", "s")
    )
    for n in ("w", "s"):
        (tmp_path / n).mkdir()
    return parse_roster(text, tmp_path / "agents.yaml", {})


async def nobody_asks(*_args: Any, **_kwargs: Any) -> tuple[bool, str]:
    raise AssertionError("no approval rule here")


def policy(tmp_path: Path, hold: write_hold.Hold) -> Policy:
    team = roster(tmp_path)
    return Policy("s", lambda: team, lambda: tmp_path / "s", nobody_asks, hold=hold)


BASH: Any = {"tool_name": "Bash", "tool_input": {"command": "touch x"}}


async def test_a_held_agents_bash_waits_until_the_write_is_done(tmp_path: Path) -> None:
    hold = write_hold.Hold()
    hook = policy(tmp_path, hold)
    hold.hold("k", [], agents={"s": 2}, writer="w")
    answer: list[Any] = []
    with structlog.testing.capture_logs() as events:
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                answer.append(await hook.pre_tool_use(BASH, "t1", {"signal": None}))

            tg.start_soon(ask)
            with anyio.fail_after(30):
                while not [e for e in events if e["event"] == "command_waits_for_write"]:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            assert answer == []  # still waiting
            hold.release("k")
    assert answer == [{}]


async def test_other_tools_and_agents_not_held_do_not_wait(tmp_path: Path) -> None:
    hold = write_hold.Hold()
    hook = policy(tmp_path, hold)
    hold.hold("k1", [], agents={"s": 2}, writer="w")
    read: Any = {"tool_name": "Read", "tool_input": {"file_path": "x"}}
    assert await hook.pre_tool_use(read, "t1", {"signal": None}) == {}
    hold.release("k1")
    hold.hold("k2", [], agents={"w": 1}, writer="s")  # its own write; and one holding w only
    hold.hold("k3", [], agents={"w": 1}, writer="w")
    try:
        with structlog.testing.capture_logs() as events:
            assert await hook.pre_tool_use(BASH, "t2", {"signal": None}) == {}
    finally:
        hold.release_all()
    assert [e for e in events if e["event"] == "command_waits_for_write"] == []


async def test_holds_without_end_refuse_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes back to back, for as long as one write may hold: the command is refused
    (not run unheld), and the agent told to run it again."""
    monkeypatch.setattr(write_hold, "HOLD_MAX_S", 0.05)
    hold = write_hold.Hold()
    hook = policy(tmp_path, hold)
    hold.hold("k", [], max_s=600, agents={"s": 2}, writer="w")
    try:
        out: Any = await hook.pre_tool_use(BASH, "t1", {"signal": None})
    finally:
        hold.release_all()
    decision = out["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    assert decision["permissionDecisionReason"] == prompts.held_too_long(0.05)


async def test_a_subagents_command_waits_for_its_agents_write(tmp_path: Path) -> None:
    """A subagent runs its calls beside its agent's: its Bash during the agent's own Write
    is held back (the agent's own next call is not: its calls come one at a time)."""
    hold = write_hold.Hold()
    hook = policy(tmp_path, hold)
    hold.hold("k", [], agents={"s": 2}, writer="s")
    assert not hold.holding("s")
    assert hold.holding("s", "s/sub1")
    sub: Any = {**BASH, "agent_id": "sub1", "agent_type": "helper"}
    with anyio.move_on_after(0.2) as waited:
        await hook.pre_tool_use(sub, "t1", {"signal": None})
    hold.release("k")
    assert waited.cancelled_caught  # still waiting when given up on
    assert await hook.pre_tool_use(sub, "t2", {"signal": None}) == {}


# A stand-in claude: starts a command (a counter writing to the file named) per line read.
STARTER = """
import subprocess, sys
for line in sys.stdin:
    subprocess.Popen([sys.executable, "-c", sys.argv[1], line.strip()])
"""


def test_a_command_started_after_the_hold_looked_is_stopped_only_if_let_through(
    tmp_path: Path,
) -> None:
    """A hold on an agent whose Bash call was let through (:meth:`Hold.launch`) stops the
    command as the claude starts it; with none let through (or reported done), a new
    process of the claude is none of the hold's business (it was not a command)."""
    claude = subprocess.Popen(
        [sys.executable, "-c", STARTER, COUNTER], stdin=subprocess.PIPE, text=True
    )
    assert claude.stdin is not None
    hold = write_hold.Hold()
    try:
        hold.launch("c1", "s")
        hold.hold("k1", [claude.pid], agents={"s": claude.pid}, writer="w")
        claude.stdin.write(f"{tmp_path / 'one'}\n")
        claude.stdin.flush()
        (pid,) = until(lambda: write_hold.descendants([claude.pid]), "the command")
        until(lambda: hold_procs.run_state(pid) == "T", "the command stopped")
        hold.release("k1")
        until((tmp_path / "one").exists, "the command going on once released")
        hold.launched("c1")
        hold.hold("k2", [claude.pid], agents={"s": claude.pid}, writer="w")
        claude.stdin.write(f"{tmp_path / 'two'}\n")
        claude.stdin.flush()
        until((tmp_path / "two").exists, "a process no call started runs on")
    finally:
        hold.release_all()
        for p in write_hold.descendants([claude.pid]):
            os.kill(p, signal.SIGKILL)
        claude.kill()
        claude.communicate()


def approving_roster(tmp_path: Path) -> Roster:
    text = (
        "agents:\n"
        '  s: {prompt: p, tools: [Bash, Write, Read], cwd: s, approve: ["Bash(touch:*)"]}\n'
        "  w: {prompt: p, tools: [Bash, Write, Read], cwd: w}\n"
    )
    for n in ("w", "s"):
        (tmp_path / n).mkdir()
    return parse_roster(text, tmp_path / "agents.yaml", {})


async def test_a_command_a_person_approved_waits_out_the_writes_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command the human approved, then held by writes for longer than a command
    waits (writes back to back): it waits on, as long as its hook may still answer, and
    runs when the writes are done; refused, the approval given was thrown away and the
    agent had to ask, and the human to approve, again."""
    monkeypatch.setattr(write_hold, "HOLD_MAX_S", 0.0)  # any wait is too long for others
    hold = write_hold.Hold()
    team = approving_roster(tmp_path)
    asked: list[str] = []

    async def approver(tool: str, *_args: Any) -> tuple[bool, str]:
        asked.append(tool)
        return True, "approved by the operator"

    hook = Policy("s", lambda: team, lambda: tmp_path / "s", approver, hold=hold)
    hold.hold("k", [], max_s=600, agents={"s": 2}, writer="w")
    answer: list[Any] = []
    try:
        with structlog.testing.capture_logs() as events:
            async with anyio.create_task_group() as tg:

                async def ask() -> None:
                    answer.append(await hook.pre_tool_use(BASH, "t1", {"signal": None}))

                tg.start_soon(ask)
                with anyio.fail_after(30):
                    while not [e for e in events if e["event"] == "command_waits_for_write"]:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.05)  # past the bound a command not approved has
                assert answer == []  # still waiting, not refused
                hold.release("k")
    finally:
        hold.release_all()
    assert asked == ["Bash"]
    assert answer[0]["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert [e for e in events if e["event"] == "command_held_too_long"] == []
