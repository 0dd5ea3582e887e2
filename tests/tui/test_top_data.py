"""`top`'s data layer and rows on a database written by hand (real SQLite, no team): any
state and reason the registry holds is shown as it is, with no supervisor marked."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cli_runner import octy
from textual.widgets import Static

from orchestrator.mailbox import Mailbox
from orchestrator.tui.app import TopApp
from orchestrator.tui.data import TeamSource, clean
from orchestrator.tui.procstat import ProcReader
from orchestrator.tui.widgets import COLUMNS, AgentTable, TeamLine, cells


def test_clean_shows_control_characters_as_text() -> None:
    """An escape, a bell, a C1 control and DEL are written as \\xNN; newlines as ⏎."""
    assert clean("a\x1b[31mb\x07c\x9bd\x7fe\nf") == "a\\x1b[31mb\\x07c\\x9bd\\x7fe⏎f"
    assert clean("plain → text") == "plain → text"


def test_procstat_reads_a_live_process_and_a_missing_one() -> None:
    """Memory and start time of a live pid from /proc; CPU % from the second sample on;
    nothing (no error) for a pid that does not exist."""
    reader = ProcReader()
    first = reader.sample(os.getpid())
    assert first.cpu_pct is None
    assert first.rss_bytes
    assert first.rss_bytes > 1_000_000
    assert first.started_at
    assert first.started_at <= time.time()
    spent = time.process_time()
    while time.process_time() - spent < 0.05:  # burn some CPU for the second sample to see
        sum(range(1000))
    second = reader.sample(os.getpid())
    assert second.cpu_pct is not None
    assert second.cpu_pct > 0
    assert reader.sample(2**22 + 12345).rss_bytes is None
    assert reader.sample(None).cpu_pct is None


async def test_any_state_and_reason_of_the_registry_is_shown(tmp_path: Path) -> None:
    """States top does not know (paused, blocked) and reasons (model error, budget) are
    shown as the registry holds them; with no supervisor the team line says it is not
    running and when the registry was last written, and no pid is shown as live."""
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register(
            "alpha",
            pid=os.getpid(),
            state="paused",
            meta={
                "reason": "budget 100%",
                # what the budget watch and the runner record (issue 12): top shows shares
                "budget": {
                    "agent": {"usd": 0.012, "usd_limit": 0.01, "share": 1.2},
                    "team": {"usd": 0.05, "usd_limit": 1.0, "share": 0.05},
                },
                "context": {"tokens": 41_000, "window": 200_000},
            },
        )
        mb.register("beta", pid=None, state="backoff", meta={"model_error": "overloaded 529"})
        mb.register("gamma", pid=None, state="blocked")
        mb.register("delta", pid=None, state="odd\x1b[2J")  # plain SQL may write anything
        mb.request("user", "alpha", "queued")
    app = TopApp(TeamSource(db, tmp_path / "logs"), refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(AgentTable)
        while table.row_count < 4:
            await pilot.pause(0.05)
        cells = {
            name: dict(zip([k for k, _ in COLUMNS], table.row_text(name), strict=True))
            for name in ("alpha", "beta", "gamma")
        }
        assert cells["alpha"]["state"] == "paused (budget 100%)"
        assert cells["beta"]["state"] == "backoff (overloaded 529)"
        assert cells["gamma"]["state"] == "blocked"
        assert table.row_text("delta")[1] == "odd\\x1b[2J"
        assert cells["alpha"]["pending"] == "1"
        assert (cells["alpha"]["budget"], cells["alpha"]["context"]) == ("120", "20")
        assert (cells["beta"]["budget"], cells["beta"]["context"]) == ("-", "-")
        assert cells["alpha"]["pid"] == "-"  # no supervisor: a recorded pid is history
        line = str(app.query_one(TeamLine, Static).render())
        assert "NOT RUNNING" in line
        assert "last known states, as of 20" in line
        assert "queue 1" in line
        assert line.index("$") < line.index("last known")  # the cost is not cut off first


def test_other_verbs_do_not_import_textual() -> None:
    """Building the CLI (every verb's parser) and the data layer leave Textual unloaded:
    only running `top` pays for it."""
    import subprocess
    import sys

    code = (
        "import sys; from orchestrator.cli import build_parser; build_parser(); "
        "import orchestrator.tui.data; print('textual' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_top_without_a_database_or_a_terminal(tmp_path: Path) -> None:
    """No team database: exit 3 and say how to start one. Not a terminal: exit 2 and point
    at the verbs meant for scripts. No traceback either way."""
    missing = octy("top", cwd=tmp_path)  # standard input /dev/null: no terminal
    assert missing.returncode == 3
    assert "no team database at queue/team.db" in missing.stderr
    assert "Traceback" not in missing.stderr
    with Mailbox(tmp_path / "queue" / "team.db"):
        pass
    piped = octy("top", cwd=tmp_path)
    assert piped.returncode == 2
    assert "top needs a terminal" in piped.stderr
    assert octy("top", "--interval", "0", cwd=tmp_path).returncode == 2


async def test_trace_title_escapes_a_message_id_written_by_plain_sql(tmp_path: Path) -> None:
    """The id of the message an agent holds comes from the queue, which plain SQL may
    write: the trace screen's title shows it escaped, not as a terminal escape."""
    import sqlite3

    from orchestrator.tui.screens import TextScreen

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("alpha", pid=None, state="ready")
        sent = mb.request("user", "alpha", "queued")
    hostile = "m\x1b]0;PWNED\x07\u202e[/]x"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE messages SET id = ?, status = 'leased', lease_owner = 'alpha', "
            "claimed_at = ?, lease_expires = ? WHERE id = ?",
            (hostile, time.time(), time.time() + 600, sent.id),
        )
    conn.close()
    app = TopApp(TeamSource(db, tmp_path / "logs"), refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(AgentTable)
        while not table.row_count or table.row_text("alpha")[6] == "-":
            await pilot.pause(0.05)
        await pilot.press("t")
        while app.screen.id != "trace":
            await pilot.pause(0.05)
        screen = app.screen
        assert isinstance(screen, TextScreen)
        assert clean(hostile) in screen.heading
        assert "\x1b" not in screen.heading
        assert "\u202e" not in screen.heading


async def test_a_failed_read_stays_marked_until_a_read_succeeds(tmp_path: Path) -> None:
    """The team's database moved away while top runs: the team line says the read failed
    and keeps saying it after the toast has gone (the figures below it are frozen), until
    the database is back. The filter in use is on the team line too."""
    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("alpha", pid=None, state="ready")
        mb.register("beta", pid=None, state="ready")
    app = TopApp(TeamSource(db, tmp_path / "logs"), refresh_s=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(AgentTable)
        line = lambda: str(app.query_one(TeamLine).render())  # noqa: E731
        while table.row_count < 2:
            await pilot.pause(0.05)
        assert "UTC" in line()  # the "as of" clock is labelled as the events' are

        await pilot.press("slash", "a", "l", "enter")
        while table.row_count != 1:
            await pilot.pause(0.05)
        assert "filter: al" in line()

        moved = tmp_path / "elsewhere.db"
        db.rename(moved)
        while "READ FAILED" not in line():
            await pilot.pause(0.05)
        while app._notifications:  # the toast times out; the marker must not
            await pilot.pause(0.1)
        assert "READ FAILED" in line()
        assert "figures as of" in line()
        assert table.row_count == 1  # the last good read, still shown

        moved.rename(db)
        while "READ FAILED" in line():
            await pilot.pause(0.05)
        assert "filter: al" in line()


def test_team_counts_read_the_partial_indexes_not_the_table(tmp_path: Path) -> None:
    """The counts `top` reads every second come from the queue's partial indexes: the
    query plan names an index for each and scans no table (done messages pile up)."""
    import sqlite3

    from orchestrator.tui.figures import CLAIMED_SQL, COUNTS_SQL

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db):
        pass
    conn = sqlite3.connect(db)
    try:
        for sql in (COUNTS_SQL, CLAIMED_SQL):
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            reads = [step for step in plan if "messages" in step]
            assert reads, plan
            assert all("USING" in step and "INDEX" in step for step in reads), plan
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {COUNTS_SQL}"))
        for index in ("messages_claim", "messages_leased", "messages_dead"):
            assert index in plan
    finally:
        conn.close()


def test_costs_read_the_spend_ledger_as_it_grows(tmp_path: Path) -> None:
    """The ledger is summed from the rows added since the last read (a file of 35 days of
    turns is not read whole every second), another file at the same path is summed anew,
    and what plain SQL may write there (text, 1e400) is left out instead of shown."""
    import sqlite3

    from orchestrator.budget import Ledger

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="ready", meta={"cost_usd": 0.5, "supervised": True})
    ledger = Ledger(db)
    ledger.record("a", 0.25, {}, time.time())
    ledger.record("gone", 0.125, {}, time.time())  # an agent no longer in the registry
    source = TeamSource(db, tmp_path / "logs")
    snap = source.snapshot()
    assert [r.cost_usd for r in snap.agents] == [0.5]  # the registry's total is larger
    assert snap.team.cost_usd == 0.625
    ledger.record("a", 0.5, {}, time.time())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO spend (agent, at, usd) VALUES ('a', 0, 'lots'), ('a', 0, 1e400)")
    conn.close()
    snap = source.snapshot()
    assert [r.cost_usd for r in snap.agents] == [0.75]  # now the ledger's is
    assert snap.team.cost_usd == 0.875
    ledger.close()

    db.rename(tmp_path / "old.db")  # a fresh team in the same folder
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="ready", meta={"supervised": True})
    fresh = Ledger(db)
    fresh.record("a", 0.0625, {}, time.time())
    fresh.close()
    snap = source.snapshot()
    assert snap.team.cost_usd == 0.0625


def test_a_pid_that_is_not_the_agents_process_here_is_not_sampled(tmp_path: Path) -> None:
    """The registry's pid names a process of this machine that is not the agent's (its
    recorded start time differs: a reused pid, or another machine's number): `top`
    shows no pid and no CPU or memory for it, as `ps` does, instead of that process's."""
    from orchestrator.lockfile import SupervisorLock

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        meta = {"supervised": True, "pid_start": 1, "started_at": time.time()}
        mb.register("a", pid=os.getpid(), state="ready", meta=meta)
    lock = SupervisorLock(db)
    lock.acquire()  # a supervisor holds the team: its agents' pids are live ones
    try:
        (row,) = TeamSource(db, tmp_path / "logs").snapshot().agents
    finally:
        lock.release()
    assert (row.pid, row.rss_bytes, row.cpu_pct) == (None, None, None)


def test_budget_and_context_figures_written_by_plain_sql_are_not_trusted(
    tmp_path: Path,
) -> None:
    """The registry's `budget` and `context` documents are JSON any process may write: a
    share or a spend that is text, a list, a budget that is not a document. `ps` ended
    with a ValueError traceback and `top` showed nothing but `READ FAILED` for the whole
    team, for one agent's row; now the bad figures show as `-` and the rest as written."""
    import json
    import sqlite3

    db = tmp_path / "queue" / "team.db"
    good = {
        "agent": {"usd": 0.5, "usd_limit": 1.0, "tokens": 0, "tokens_limit": None, "share": 0.5},
        "team": None,
    }
    hostile = {
        "a1": {"budget": {"agent": {"share": "x", "usd": "y", "usd_limit": 5}}},
        "a2": {"budget": {"agent": {"share": "inf", "tokens": "z", "tokens_limit": 10}}},
        "a3": {"budget": ["x"], "context": {"tokens": 10**30, "window": 1}},
        "a4": {"budget": {"agent": {"share": [1], "usd_limit": "5"}}},
        "a5": {"budget": {"team": "nope", "agent": {"share": None, "usd_limit": 1e300}}},
        "a6": {"context": {"tokens": 5, "window": True}},
        "ok": {"budget": good, "context": {"tokens": 41_000, "window": 200_000}},
    }
    with Mailbox(db) as mb:
        for name in hostile:
            mb.register(name, pid=None, state="ready")
    conn = sqlite3.connect(db)
    with conn:
        for name, meta in hostile.items():
            conn.execute("UPDATE agents SET meta = ? WHERE name = ?", (json.dumps(meta), name))
    conn.close()

    done = octy("ps", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:]}
    assert sorted(rows) == sorted(hostile)
    assert "$0.5000/$1.0000 (50%)" in rows["ok"]
    assert "41k/200k (20%)" in rows["ok"]
    assert "y" not in rows["a1"].split()

    snap = TeamSource(db, tmp_path / "logs").snapshot()
    shares = {r.name: (r.budget_share, r.context_share) for r in snap.agents}
    assert shares["ok"] == (0.5, 41_000 / 200_000)
    for name in ("a1", "a2", "a4", "a5"):
        assert shares[name][0] is None, name
    assert shares["a6"][1] is None  # a window of `true` is not one token
    drawn = {r.name: [c.plain.strip() for c in cells(r, live=False)] for r in snap.agents}
    ctx = [h for _, h in COLUMNS].index("CTX%")
    assert drawn["a3"][ctx] == ">9999"  # 10**30 tokens in a window of 1: not 31 digits
    assert drawn["ok"][ctx] == "20"


def test_a_paused_row_says_which_budget_pauses_it(tmp_path: Path) -> None:
    """`paused` alone did not say why: the row now says `(budget)`, `(team budget)` or both,
    from the registry's `budget.paused_by`; anything else there says nothing."""
    import json
    import sqlite3

    db = tmp_path / "queue" / "team.db"
    paused_by = {
        "own": ["agent"],
        "team": ["team"],
        "both": ["team", "agent"],
        "odd": "agent",
        "junk": [1, "x\x1b[2J"],
    }
    with Mailbox(db) as mb:
        for name in paused_by:
            mb.register(name, pid=None, state="paused")
        mb.register("idle", pid=None, state="ready", meta={"budget": {"paused_by": ["agent"]}})
    conn = sqlite3.connect(db)
    with conn:
        for name, by in paused_by.items():
            meta = json.dumps({"budget": {"paused_by": by}})
            conn.execute("UPDATE agents SET meta = ? WHERE name = ?", (meta, name))
    conn.close()
    snap = TeamSource(db, tmp_path / "logs").snapshot()
    assert {r.name: r.reason for r in snap.agents} == {
        "own": "budget",
        "team": "team budget",
        "both": "budget, team budget",
        "odd": None,
        "junk": None,
        "idle": None,
    }
    # `ps` says the same beside the state (it said a bare `paused`).
    done = octy("ps", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {r["name"]: r["reason"] for r in json.loads(done.stdout)["agents"]} == {
        r.name: r.reason for r in snap.agents
    }


def test_the_team_line_marks_its_cost_an_estimate_when_part_of_it_is(tmp_path: Path) -> None:
    """Left open by the last session: an agent's COST read `~$` when some of it was the
    runner's estimate (a cut-off turn, a model of unknown price at the highest rate), but
    the team line's total, which holds it, read `$` as if every cent were the CLI's. Now
    `~$` there too: from an agent in the table, and from one the registry no longer has."""
    from rich.text import Text

    from orchestrator.budget import Ledger

    def team_cost(source: TeamSource) -> str:
        line = Text()
        TeamLine._team_text(line, source.snapshot().team)
        return next(w for w in line.plain.split() if "$" in w)

    db = tmp_path / "queue" / "team.db"
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="ready", meta={"supervised": True})
    ledger = Ledger(db)
    ledger.record("a", 0.25, {}, time.time())
    source = TeamSource(db, tmp_path / "logs")
    assert team_cost(source) == "$0.2500"
    ledger.record("gone", 0.125, {}, time.time(), estimated=True)  # not in the registry
    assert team_cost(source) == "~$0.3750"
    ledger.close()

    db.rename(tmp_path / "old.db")  # a fresh team: the estimate is an agent's in the table
    with Mailbox(db) as mb:
        mb.register("a", pid=None, state="ready", meta={"supervised": True})
    fresh = Ledger(db)
    fresh.record("a", 0.5, {}, time.time())
    assert team_cost(source) == "$0.5000"
    fresh.record("a", 0.0625, {}, time.time(), estimated=True)
    snap = source.snapshot()
    assert [r.cost_estimated for r in snap.agents] == [True]
    assert team_cost(source) == "~$0.5625"
    fresh.close()
