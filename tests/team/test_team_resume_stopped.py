"""`resume` of an agent held for the others' turns in progress (team budget) that was
stopped meanwhile: a real team (real claude CLI, scripted model whose rules set usage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from team_harness import Team, agent_rule

from orchestrator.budget_watch import BudgetWatch
from orchestrator.lifecycle import AgentState
from orchestrator.mailbox import AsyncMailbox
from orchestrator.roster import parse_roster

TOOL = {"name": "mcp__octy__agents", "input": {}}


@pytest.mark.cli
@pytest.mark.slow
def test_a_bare_resume_says_a_held_agent_stopped_meanwhile_is_stopped(
    team: Callable[..., Team],
) -> None:
    """Left open by the last session: team budget 50,000 tokens; bob's turn in progress has
    spent 30,100 and waits on the model; carol's first request spends 25,100, over with
    bob's (not with hers alone): her turn is stopped and she is held for bob's turn. Then
    `stop carol`. A bare `resume` said she "claims nothing until that turn has ended and
    been counted, then runs on its own": stopped, she runs on nothing of the kind. Now it
    says she is not running, and that once started she waits for bob's turn; `--json`
    says it too (`state`). The hold itself is unchanged (started again, she waits)."""
    usage_bob = {"input_tokens": 30_000, "output_tokens": 100}
    usage_carol = {"input_tokens": 25_000, "output_tokens": 100}
    rules: list[dict[str, Any]] = [
        {"agent": agent_rule("bob"), "match": "work", "tool_use": TOOL, "usage": usage_bob},
        # bob's next request (the tool's result) hangs: his turn stays in progress
        {"agent": agent_rule("bob"), "tool_result": ".", "text": "done", "delay": 600},
        {"agent": agent_rule("carol"), "match": "work", "tool_use": TOOL, "usage": usage_carol},
        {"agent": agent_rule("carol"), "tool_result": ".", "text": "done"},
    ]
    t = team(rules, {"bob": {}, "carol": {}}, budget={"tokens": 50_000, "per": "1d"})
    t.up()
    t.wait_ready("bob", "carol")
    t.request("bob", "work")
    # his tool's result sent: his first request's 30,100 tokens were counted before it ran
    t.model.wait_for_request(agent=agent_rule("bob"), tool_result="(?s).", timeout=60)
    t.request("carol", "work")

    def held() -> bool:
        rows = json.loads(t.octy("ps", "--json").stdout)["agents"]
        return any(r["name"] == "carol" and (r.get("budget") or {}).get("held_for") for r in rows)

    t.wait_for(held, 60, "carol held for bob's turn")
    t.octy("stop", "carol", check=True)
    done = t.octy("resume", check=True)
    assert done.stdout.splitlines() == [
        "'carol' is not running (stopped) and not paused by a budget: started again "
        "(`octy-orchestrate start carol`), it is held for bob's turn in progress (team "
        "budget): it claims nothing until that turn has ended and been counted (or is "
        "paused, if the team budget is spent; `resume` overrides that)"
    ]
    (entry,) = json.loads(t.octy("resume", "--json", check=True).stdout)["agents"]
    assert (entry["agent"], entry["resumed"], entry["held_for"], entry["state"]) == (
        "carol",
        False,
        ["bob"],
        "stopped",
    )
    t.octy("down", "--timeout", "0")  # bob's turn hangs: not waited for


class _Stopped:
    """The supervisor side of BudgetWatch: every agent stopped (as `stop` leaves one)."""

    def agent_state(self, name: str) -> AgentState:
        return AgentState.STOPPED

    async def pause_agent(self, name: str) -> None: ...

    async def unpause_agent(self, name: str) -> None: ...


def test_resume_of_a_stopped_agent_paused_and_held_says_it_runs_once_started(
    tmp_path: Path,
) -> None:
    """The same for one paused by the team budget too (the spend in the ledger) and held
    for bob's turn: "resumed 'carol'" alone read as running again; stopped, she runs once
    started, and then waits for bob's turn."""
    text = "budget: {tokens: 50000, per: 1d}\ndefaults: {prompt: work}\nagents:\n"
    spec = parse_roster(text + "  bob: {}\n  carol: {}\n", tmp_path / "agents.yaml")

    async def main() -> list[dict[str, Any]]:
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: spec, _Stopped())
            await watch.open(am)
            watch.in_turn("bob", 30_000)
            watch.in_turn("carol", 30_000)
            assert await watch.over_with("carol", 30_000)  # over with bob's
            watch.in_turn("carol", 0)
            await watch.after_turn("carol", {"input_tokens": 60_000})
            entries = await watch.resume(["carol"])
            watch.close()
        return entries

    (entry,) = anyio.run(main)
    assert (entry["resumed"], entry["held_for"], entry["state"]) == (True, ["bob"], "stopped")
    assert entry["message"].endswith(
        "; it is not running (stopped): it runs once started (`octy-orchestrate start "
        "carol`); and started again (`octy-orchestrate start carol`), it is held for bob's "
        "turn in progress (team budget): it claims nothing until that turn has ended and "
        "been counted (or is paused, if the team budget is spent; `resume` overrides that)"
    )
