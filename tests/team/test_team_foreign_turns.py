"""Turns no message caused (real claude CLI, scripted model): the CLI's self-scheduling
tools are not offered unless named in `tools`; a turn the CLI starts by itself (a
CronCreate job) is foreign: its result answers no message, its spend is counted."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

from orchestrator.scripted_model import tools_offered
from orchestrator.session_options import SELF_STARTING

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_an_agent_without_tools_is_not_offered_the_self_scheduling_ones(
    team: TeamFactory,
) -> None:
    """`tools: []`: CronCreate, ScheduleWakeup, Monitor, Workflow... are not offered
    (CronCreate was, and ran without a permission prompt)."""
    a = agent_rule("alice")
    t = team([{"agent": a, "match": "hi", "text": "hello"}], {"alice": {"tools": []}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "hi") == "hello"
    offered = {n for r in t.model.requests_matching("hi", agent=a) for n in tools_offered(r)}
    assert offered, "the agent loop offers tools"
    assert not offered & set(SELF_STARTING)


def test_a_turn_the_cli_starts_by_itself_answers_no_message(team: TeamFactory) -> None:
    """alice may use CronCreate (named in tools): her job fires while idle and runs 8 s.
    The messages delivered meanwhile get their own answers (job 1 got "cron turn text"
    and every later job the previous job's answer), and the cron turn's 5,001 tokens
    reach the ledger."""
    a = agent_rule("alice")
    t = team(
        [
            {"agent": a, "tool_result": r"(?s)^(.+)$", "text": "scheduled"},
            {
                "agent": a,
                "match": "CRONFIRE",
                "text": "cron turn text",
                "delay": 8,
                "usage": {"input_tokens": 5000, "output_tokens": 1},
            },
            {
                "agent": a,
                "match": "schedule",
                "tool_use": {
                    "name": "CronCreate",
                    "input": {"cron": "* * * * *", "prompt": "CRONFIRE now", "recurring": False},
                },
            },
            {"agent": a, "match": r"job (\d+)", "text": "answer to job {1}"},
        ],
        {"alice": {"tools": ["CronCreate"]}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "schedule it") == "scheduled"
    t.wait_for(lambda: t.model.requests_matching("CRONFIRE", agent=a), 120, "the cron job")
    for n in (1, 2, 3):
        assert t.ask("alice", f"job {n}", timeout=60) == f"answer to job {n}"

    def cron_spend() -> int:
        with sqlite3.connect(t.db_path) as db:
            return len(db.execute("SELECT 1 FROM spend WHERE input_tokens = 5000").fetchall())

    t.wait_for(cron_spend, 30, "the cron turn in the ledger")
