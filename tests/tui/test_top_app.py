"""`top` driven through Textual's own harness (``App.run_test()`` / Pilot) against a real
team: the supervisor as a subprocess, a real claude CLI per agent, the scripted model.
What is asserted is what the widgets hold, i.e. what a person would read."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule
from textual.pilot import Pilot
from textual.widgets import RichLog

from orchestrator.tui.app import TopApp
from orchestrator.tui.data import TeamSource
from orchestrator.tui.widgets import COLUMNS, AgentTable, EventPane, TeamLine

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
FAST = 0.2  # refresh interval in these tests: they wait for conditions, never for time


def source_of(t: Team) -> TeamSource:
    return TeamSource.resolve(t.roster_path)


def row(app: TopApp, name: str) -> dict[str, str]:
    """The agent's row as text, by column key; {} if it is not shown."""
    table = app.query_one(AgentTable)
    if name not in table.names:
        return {}
    return dict(zip([k for k, _ in COLUMNS], table.row_text(name), strict=True))


def team_line(app: TopApp) -> str:
    return str(app.query_one(TeamLine).render())


def event_text(app: TopApp) -> str:
    return "\n".join(line.text for line in app.query_one(EventPane).lines)


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str) -> Any:
    """Let the app run until ``check()`` is true (90 s at most: a real team under load)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def select(pilot: Pilot[Any], app: TopApp, name: str) -> None:
    table = app.query_one(AgentTable)
    table.focus()
    while table.selected() != name:  # the keys a person would press
        await pilot.press("down" if table.names.index(name) > table.cursor_row else "up")
    assert table.selected() == name


async def test_rows_states_restart_events_and_trace(team: TeamFactory) -> None:
    """Rows appear for each agent; a SIGKILLed claude shows the agent leave `ready` and
    come back with a new pid; `r` + `y` restarts it through the supervisor (new pid,
    restarts counted); the event pane shows a request and its reply; `t` opens the
    trace timeline of the agent's request."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "ping", "text": "pong"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        # a waits a second or two before its restart: long enough to be seen in backoff
        {"a": {"backoff": {"initial": "2s", "max": "2s"}}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    # The team's name without its log (rotated away, say): the supervisor records it
    unlogged = TeamSource(t.db_path, t.folder / "no-logs-here")
    assert unlogged.snapshot().team.name == "testteam"
    assert t.folder.name != "testteam"
    app = TopApp(source_of(t), refresh_s=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "a").get("state") == "ready", "a ready in the table")
        assert row(app, "b")["state"] == "ready"
        first = row(app, "a")
        assert first["pid"] == str(t.agent_pid("a"))
        assert f"supervisor {t.proc.pid} up" in team_line(app)
        assert "testteam" in team_line(app)
        await until(pilot, lambda: row(app, "a")["mem"] != "-", "a's memory from /proc")

        # A request and its reply reach the event pane.
        assert t.ask("a", "ping") == "pong"
        await until(pilot, lambda: "replied" in event_text(app), "the reply in the event pane")
        assert "received" in event_text(app)
        assert "pong" in event_text(app)
        await until(pilot, lambda: row(app, "a")["turns"] == "1", "a's turn counted")

        # SIGKILL a's claude: the table shows it in backoff, then back with a new pid.
        os.kill(int(first["pid"]), signal.SIGKILL)
        await until(pilot, lambda: row(app, "a")["state"].startswith("backoff"), "a in backoff")
        await until(
            pilot,
            lambda: (
                row(app, "a")["pid"] not in (first["pid"], "-")
                and row(app, "a")["state"] == "ready"
            ),
            "a back with a new pid",
        )
        assert int(row(app, "a")["restarts"]) >= 1
        killed_pid, b_pid = row(app, "a")["pid"], row(app, "b")["pid"]

        # The restart key, confirmed.
        await select(pilot, app, "a")
        await pilot.press("r")
        await until(pilot, lambda: app.screen.id != "_default", "the confirmation")
        await pilot.press("y")
        await until(
            pilot,
            lambda: (
                row(app, "a")["pid"] not in (killed_pid, "-") and row(app, "a")["state"] == "ready"
            ),
            "a restarted by the key",
        )
        assert app.last_outcome == "restart a: ok"
        assert row(app, "b")["pid"] == b_pid  # the other agent untouched

        # Stop and start b with the keys.
        await select(pilot, app, "b")
        await pilot.press("s", "y")
        await until(pilot, lambda: row(app, "b")["state"] == "stopped", "b stopped by the key")
        assert t.states()["b"] == "stopped"
        await pilot.press("S", "y")
        await until(pilot, lambda: row(app, "b")["state"] == "ready", "b started by the key")
        await pilot.press("s", "n")  # a question answered no: nothing is sent
        await pilot.pause(0.5)
        assert t.states()["b"] == "ready"

        # The trace of a's latest request.
        await select(pilot, app, "a")
        await pilot.press("t")
        await until(pilot, lambda: app.screen.id == "trace", "the trace screen")
        text = "\n".join(line.text for line in app.screen.query_one(RichLog).lines)
        assert "user → a" in text
        assert "pong" in text
        await pilot.press("l", "r")  # the main screen's keys do nothing over the trace
        assert app.screen.id == "trace"
        await pilot.press("q")
        await until(pilot, lambda: app.screen.id != "trace", "the trace closed")


async def test_invalid_roster_filter_log_and_no_supervisor(team: TeamFactory) -> None:
    """With agents.yaml broken while the team runs, top still finds the team and says the
    file is invalid; `/` filters rows and events by name; `l` opens the agent's log; a
    body with a terminal escape is shown as text; once the supervisor is gone the team
    line says so, the rows keep their last known states, and `s` reports that nothing
    runs the team instead of failing."""
    t = team([{"agent": agent_rule("a"), "text": "done"}, {"text": "b done"}], {"a": {}, "b": {}})
    t.up()
    t.wait_ready("a", "b")
    good = t.roster_path.read_text()
    t.roster_path.write_text(good + "\n  broken: [unclosed\n")
    app = TopApp(source_of(t), refresh_s=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: row(app, "b").get("state") == "ready", "b in the table")
        assert "problem(s)" in team_line(app)
        assert "last good roster" in team_line(app)
        assert "supervisor" in team_line(app)
        t.roster_path.write_text(good)  # fixed while top runs: the warning goes
        await until(pilot, lambda: "problem(s)" not in team_line(app), "the warning gone")
        t.roster_path.write_text(good.replace("agents:", "agents:\n  c: {depends_on: [zz]}"))
        await until(pilot, lambda: "problem(s)" in team_line(app), "a new warning")

        t.ask("a", "look: \x1b[2J\x1b]0;pwned\x07 end")
        await until(pilot, lambda: "pwned" in event_text(app), "the hostile body")
        assert "\\x1b[2J" in event_text(app)
        assert "\x1b" not in event_text(app)

        await pilot.press("slash")
        await pilot.press("b", "enter")
        await until(pilot, lambda: not row(app, "a"), "a filtered out")
        assert row(app, "b")
        assert "pwned" not in event_text(app)  # a's events are hidden too
        assert "b " in event_text(app)
        await pilot.press("slash", "backspace", "enter")
        await until(pilot, lambda: row(app, "a"), "the filter cleared")

        await select(pilot, app, "a")
        await pilot.press("l")
        await until(pilot, lambda: app.screen.id == "log", "a's log")
        log_text = lambda: "\n".join(line.text for line in app.screen.query_one(RichLog).lines)  # noqa: E731
        await until(pilot, lambda: "replied" in log_text(), "a's reply in its log")
        assert "b done" not in log_text()
        await pilot.press("q")
        await until(pilot, lambda: app.screen.id != "log", "the log closed")

        t.signal(signal.SIGTERM)
        t.wait_exit()
        await until(pilot, lambda: "NOT RUNNING" in team_line(app), "the supervisor gone")
        assert "last known" in team_line(app)
        assert row(app, "a")["state"] == "stopped"
        assert row(app, "a")["pid"] == "-"

        await select(pilot, app, "a")
        await pilot.press("s", "y")
        await until(pilot, lambda: app.last_outcome, "the stop outcome")
        assert "no supervisor is running" in app.last_outcome
