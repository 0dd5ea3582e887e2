"""A supervisor that fails inside its start-up after writing its own registry row: the
row said `running` and no `supervisor_stopped` was logged, so `ps` showed a running
supervisor that was not (found by review). The failure here is a real one a hostile
database makes: a trigger that refuses the agent's row, written after the supervisor's."""

from __future__ import annotations

import sqlite3
from typing import Any

from team_harness import agent_rule

from orchestrator.mailbox import SUPERVISOR


def test_a_start_up_that_fails_after_registering_marks_the_supervisor_stopped(team: Any) -> None:
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}})
    with t.mailbox() as mb:  # the team's database, made as `up` makes it
        mb.agents()
    with sqlite3.connect(t.db_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_a BEFORE INSERT ON agents WHEN NEW.name = 'a' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
    t.up()
    code = t.wait_exit()
    assert code != 0, t.output()
    with t.mailbox() as mb:
        row = mb.agent(SUPERVISOR)
    assert row is not None
    assert row.state != "running", t.output()
    assert row.pid is None
    (stopped,) = t.log_events("supervisor_stopped")
    assert "refused by a trigger" in stopped["reason"], stopped
    assert "refused by a trigger" in t.output()  # said once, plainly
    assert "Traceback" not in t.output()
