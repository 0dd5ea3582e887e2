"""A turn under way when the supervisor was killed (its tally kept in the registry,
spend.py) is charged once the agent's claude runs again: not lost when the first session
after the kill never gets that far (real claude CLI, scripted model)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable

import pytest
from team_harness import Team
from test_team_spend import hung_turn_rules, spent_tokens
from test_team_spend_crash import _alive

from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def _tally(t: Team) -> object:
    with sqlite3.connect(t.db_path) as db:
        (meta,) = db.execute("SELECT meta FROM agents WHERE name = 'alice'").fetchone()
    return json.loads(meta or "{}").get("turn_tally")


def test_a_killed_turn_is_charged_after_a_session_that_never_connected(
    team: TeamFactory,
) -> None:
    """Killed mid-turn; the next `up`'s first session of the agent times out connecting
    (connect_timeout 1ms; restart: never; the request fails with it): the tally must
    survive it, and the `up` after that (the agent runs) charges it. Before: that
    session's totals carried the tally's "charged" (None) back to the registry, and the
    turn's 30,001 tokens were never charged. And it is in the ledger at the time it was
    spent, not at the time of the `up` that charged it."""
    t = team(hung_turn_rules(120), {"alice": {}})
    t.up()
    t.wait_ready("alice")
    cli_pid = t.agent_pid("alice")
    t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the 2nd request")
    t.wait_for(lambda: _tally(t) is not None, 30, "the tally kept")
    t.signal(signal.SIGKILL)
    t.wait_exit(10)
    t.proc = None
    t.wait_for(lambda: cli_pid is None or not _alive(cli_pid), 30, "the orphaned claude gone")
    killed_by = time.time()
    t.write_roster({"alice": {"connect_timeout": "1ms", "restart": "never"}})
    t.up()
    t.wait_for(lambda: t.states().get("alice") == "failed", 60, "alice failed to connect")
    t.signal(signal.SIGTERM)
    assert t.wait_exit() == 0
    t.proc = None
    assert spent_tokens(t) == 0
    assert _tally(t) is not None  # still to be charged
    t.write_roster({"alice": {}})
    t.up()
    t.wait_ready("alice")
    t.wait_for(lambda: spent_tokens(t) >= 30_001, 30, "the killed turn in the ledger")
    assert spent_tokens(t) <= 30_100
    (spend,) = t.log_events("spend")
    assert spend["cause"] == "supervisor_died"
    assert _tally(t) is None
    # In the ledger at the moment it was spent, before the kill: charged at the `up` that
    # found it, it fell in that moment's budget window (a day later: the next day's).
    with sqlite3.connect(t.db_path) as db:
        (at,) = db.execute("SELECT at FROM spend WHERE estimated = 1").fetchone()
    assert at < killed_by
