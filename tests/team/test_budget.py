"""Budgets and context without a team: the roster keys, the ledger in a real SQLite file,
fixed windows, the figures, the context-window table, and the scripted model's usage
figures and "prompt is too long" error over HTTP."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import ResultMessage
from cli_runner import octy

from orchestrator.budget import TEAM, Ledger, turn_spend, window
from orchestrator.budget_watch import BudgetWatch
from orchestrator.context import too_long as prompt_too_long
from orchestrator.context import window_for
from orchestrator.errors import RosterErrors, ScriptError
from orchestrator.mailbox import AsyncMailbox, Mailbox
from orchestrator.roster import parse_roster
from orchestrator.roster.model import Budget
from orchestrator.scripted_model import Script, ScriptedModel

HOUR = Budget(usd=1.0, tokens=None, per="1h", per_s=3600.0)


def roster(text: str, tmp_path: Path) -> Any:
    return parse_roster(text, tmp_path / "agents.yaml")


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(RosterErrors) as caught:
        roster(text, tmp_path)
    return [f"{e.key}: {e.reason}" for e in caught.value.errors]


# --- roster keys -------------------------------------------------------------------------


def test_budget_keys_per_agent_in_defaults_and_team_wide(tmp_path: Path) -> None:
    r = roster(
        """
budget: {usd: 20, per: 1d}
defaults: {prompt: hi, budget: {tokens: 500000, per: 1h}, compact_at: 0.7}
agents:
  a: {budget: {usd: 2.5, per: run}, context_window: 50000}
  b: {compact_at: null, budget: null}
  c: {}
""",
        tmp_path,
    )
    assert r.budget == Budget(usd=20.0, tokens=None, per="1d", per_s=86400.0)
    assert r.agents["a"].budget == Budget(usd=2.5, tokens=None, per="run", per_s=None)
    assert r.agents["b"].budget is None  # null: no budget, whatever the defaults say
    assert r.agents["c"].budget == Budget(usd=None, tokens=500_000, per="1h", per_s=3600.0)
    assert (r.agents["a"].compact_at, r.agents["b"].compact_at) == (0.7, None)
    assert (r.agents["a"].context_window, r.agents["c"].context_window) == (50_000, None)
    assert r.to_dict()["agents"]["a"]["budget"] == {"usd": 2.5, "tokens": None, "per": "run"}
    assert roster("agents: {a: {prompt: x}}", tmp_path).agents["a"].compact_at == 0.8


def test_budget_windows_accept_durations_and_days(tmp_path: Path) -> None:
    r = roster(
        "agents: {a: {prompt: x, budget: {usd: 1, per: 7d}}, "
        "b: {prompt: x, budget: {usd: 1, per: 30s}}}",
        tmp_path,
    )
    assert r.agents["a"].budget.per_s == 7 * 86400  # type: ignore[union-attr]
    assert r.agents["b"].budget.per_s == 30  # type: ignore[union-attr]
    assert r.agents["b"].budget.per == "30s"  # type: ignore[union-attr]


def test_bad_budget_and_context_settings_are_reported_where_written(tmp_path: Path) -> None:
    found = problems(
        """
budget: {usd: -1, per: weekly, limit: 3}
agents:
  a: {prompt: x, budget: {}, compact_at: 1.5, context_window: 10}
  b: {prompt: x, budget: 5, compact_at: yes}
""",
        tmp_path,
    )
    assert "budget.usd: must be greater than 0, got -1; leave it out for no limit" in found
    assert any(
        p.startswith("budget.per: invalid duration 'weekly'") and "1h, 1d, run" in p for p in found
    )
    assert "budget.limit: unknown key 'limit'; valid keys are usd, tokens, per" in found
    assert (
        "agents.a.budget: a budget needs 'usd', 'tokens' or both (write null for no budget)"
    ) in found
    assert (
        "agents.a.compact_at: must be above 0 and at most 1 (a share of the window), got 1.5"
    ) in found
    assert "agents.a.context_window: must be at least 1000, got 10" in found
    assert any(p.startswith("agents.b.budget: expected a mapping") for p in found)
    assert any(p.startswith("agents.b.compact_at: expected a fraction") for p in found)


# --- windows, ledger, figures --------------------------------------------------------------


def test_windows_are_fixed_and_aligned_to_the_epoch() -> None:
    t = 1_795_000_000.0 + 1234.5  # some time in an hour
    start, end = window(HOUR, t, run_started=0.0)
    assert start % 3600 == 0
    assert start <= t < end == start + 3600
    day = Budget(usd=1.0, tokens=None, per="1d", per_s=86400.0)
    assert window(day, t, 0.0)[0] % 86400 == 0  # UTC midnight
    run = Budget(usd=1.0, tokens=None, per="run", per_s=None)
    assert window(run, t, run_started=42.0) == (42.0, None)


def test_ledger_keeps_spend_across_reopening_and_counts_by_window(tmp_path: Path) -> None:
    db = tmp_path / "team.db"
    Mailbox(db).close()  # the queue's file: the ledger lives beside the queue's tables
    ledger = Ledger(db)
    tokens = {
        "input_tokens": 1000,
        "output_tokens": 50,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 20,
    }
    ledger.record("a", 0.25, tokens, at=10_000.0)
    ledger.record("a", 0.5, tokens, at=13_700.0)
    ledger.record("b", 1.0, {}, at=13_800.0)
    ledger.close()
    reopened = Ledger(db)  # a restart does not reset
    assert reopened.spent("a", since=0).usd == pytest.approx(0.75)
    assert reopened.spent("a", since=0).tokens == 2 * 1370
    assert reopened.spent("a", since=10_800.0).usd == pytest.approx(0.5)  # this hour only
    assert reopened.spent(None, since=0).usd == pytest.approx(1.75)  # the team
    standing = reopened.standing("a", HOUR, now=14_000.0, run_started=0.0)
    assert standing.share == pytest.approx(0.5)
    assert not standing.warn
    team = reopened.standing(TEAM, HOUR, now=14_000.0, run_started=0.0)
    assert team.over
    assert team.figures()["scope"] == "team"
    assert team.describe().startswith("spent $1.5000 of $1.0000 per 1h (resets 1970-01-01 04:00")
    reopened.set_mark("warned/a", 10_800.0)
    assert reopened.mark("warned/a") == 10_800.0
    assert reopened.marks() == {"warned/a": 10_800.0}
    assert reopened.prune(before=11_000.0) == 1
    reopened.close()


def test_a_ledger_from_before_estimates_gains_the_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    """A team database written before the ``estimated`` column: opened by this version
    (and by two at once), the column is added, the old rows count as the CLI's figures,
    and an estimated row is marked."""
    db = tmp_path / "team.db"
    Mailbox(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE spend (seq INTEGER PRIMARY KEY, agent TEXT NOT NULL, at REAL NOT NULL,"
            " usd REAL NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,"
            " output_tokens INTEGER NOT NULL DEFAULT 0,"
            " cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,"
            " cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute("INSERT INTO spend (agent, at, usd) VALUES ('a', 1.0, 0.5)")
    first, second = Ledger(db), Ledger(db)
    first.record("a", 0.25, {"input_tokens": 10}, at=2.0, estimated=True)
    assert second.spent("a", since=0).usd == pytest.approx(0.75)
    first.close()
    second.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT usd, estimated FROM spend ORDER BY seq").fetchall()
    assert rows == [(0.5, 0), (0.25, 1)]


def test_turn_spend_ignores_missing_and_hostile_figures() -> None:
    usd, tokens = turn_spend(
        {
            "cost_usd": float("nan"),
            "input_tokens": True,
            "output_tokens": -5,
            "cache_read_input_tokens": "9",
        }
    )
    assert usd == 0.0
    assert set(tokens.values()) == {0}
    usd, tokens = turn_spend({"cost_usd": 0.125, "input_tokens": 7})
    assert (usd, tokens["input_tokens"]) == (0.125, 7)


def test_context_window_table_override_and_reported() -> None:
    assert window_for("claude-sonnet-4-5", None) == 200_000
    assert window_for("claude-sonnet-4-5[1m]", None) == 1_000_000
    assert window_for("claude-sonnet-4-5", 50_000) == 50_000  # context_window: wins
    assert window_for("claude-opus-5-5", None, reported=1_000_000) == 1_000_000
    # The CLI's figure wins over the name: a 1M session chosen through env or settings
    # (the roster says `sonnet`) was counted against 200k, compacting 5x too early.
    assert window_for("claude-sonnet-4-5", None, reported=1_000_000) == 1_000_000
    assert window_for("claude-sonnet-4-5", 50_000, reported=1_000_000) == 50_000
    assert window_for(None, None) == 200_000


def test_a_prompt_too_long_result_is_recognised() -> None:
    def result(text: str, error: bool = True) -> ResultMessage:
        return ResultMessage(
            subtype="success",
            duration_ms=1,
            duration_api_ms=0,
            is_error=error,
            num_turns=1,
            session_id="s",
            result=text,
        )

    assert prompt_too_long(result("Prompt is too long · the request is ~215000 tokens"))
    assert not prompt_too_long(result("Prompt is too long", error=False))
    assert not prompt_too_long(result("API Error: 500"))


# --- the scripted model ------------------------------------------------------------------


def post(model: ScriptedModel, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        model.base_url + "/v1/messages",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_scripted_rules_set_usage_and_answer_prompt_too_long() -> None:
    script = {
        "rules": [
            {
                "match": "big",
                "text": "ok",
                "usage": {
                    "input_tokens": 150_000,
                    "output_tokens": 800,
                    "cache_read_input_tokens": 20_000,
                    "cache_creation_input_tokens": 4000,
                },
            },
            {"match": "huge", "error": "prompt_too_long"},
        ]
    }
    body = {"model": "m", "max_tokens": 10, "tools": [{"name": "t", "input_schema": {}}]}
    with ScriptedModel(script) as model:
        status, text = post(model, {**body, "messages": [{"role": "user", "content": "big"}]})
        assert status == 200
        usage = json.loads(text)["usage"]
        assert usage == {
            "input_tokens": 150_000,
            "output_tokens": 800,
            "cache_read_input_tokens": 20_000,
            "cache_creation_input_tokens": 4000,
        }
        status, stream = post(
            model, {**body, "stream": True, "messages": [{"role": "user", "content": "big"}]}
        )
        assert '"cache_read_input_tokens": 20000' in stream
        assert '"output_tokens": 800' in stream
        status, error = post(model, {**body, "messages": [{"role": "user", "content": "huge"}]})
        assert status == 400
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"].startswith("prompt is too long: ")


def test_scripted_usage_and_named_errors_are_checked() -> None:
    with pytest.raises(ScriptError, match="unknown named error 'too_big'"):
        Script.from_dict({"rules": [{"error": "too_big"}]})
    with pytest.raises(ScriptError, match="cache_read_input_tokens"):
        Script.from_dict({"rules": [{"text": "x", "usage": {"cache_read_input_tokens": -1}}]})


def test_ps_cells_show_spend_against_budget_and_context_against_window() -> None:
    from orchestrator.cli.budget_verbs import budget_cell, context_cell

    row = {
        "budget": {
            "agent": {
                "usd": 0.012,
                "usd_limit": 0.01,
                "tokens": 0,
                "tokens_limit": None,
                "share": 1.2,
            },
            "team": {
                "usd": 3.0,
                "usd_limit": None,
                "tokens": 850_000,
                "tokens_limit": 1_000_000,
                "share": 0.85,
            },
        },
        "context": {"tokens": 41_000, "window": 200_000},
    }
    assert budget_cell(row) == "$0.0120/$0.0100 (120%); team 850k/1M tok (85%)"
    assert context_cell(row) == "41k/200k (20%)"
    assert budget_cell({"budget": None}) == context_cell({"context": None}) == "-"


def test_resume_without_a_running_team_exits_5_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "queue" / "team.db"
    Mailbox(db).close()
    done = octy("resume", "alice", "--db", str(db), cwd=Path.cwd())
    assert done.returncode == 5
    assert "no supervisor is running" in done.stderr
    assert "Traceback" not in done.stderr


def test_ledger_never_creates_a_database_nor_writes_to_a_replaced_one(tmp_path: Path) -> None:
    import sqlite3

    from orchestrator.errors import DatabaseReplaced

    with pytest.raises(sqlite3.OperationalError):
        Ledger(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    db = tmp_path / "team.db"
    Mailbox(db).close()
    ledger = Ledger(db)
    db.rename(tmp_path / "moved.db")
    Mailbox(db).close()  # another file takes the path
    with pytest.raises(DatabaseReplaced):
        ledger.record("a", 1.0, {}, at=1.0)
    ledger.close()
    assert Ledger(db).spent("a", since=0).usd == 0.0
    assert Ledger(tmp_path / "moved.db").spent("a", since=0).usd == 0.0


# alice, bob and carol under a team budget of 50,000 tokens a day
_THREE_UNDER_50K_TOKENS = (
    "budget: {tokens: 50000, per: 1d}\n"
    "defaults: {prompt: work}\n"
    "agents:\n"
    "  alice: {}\n"
    "  bob: {}\n"
    "  carol: {}\n"
)


class _Idle:
    """The supervisor side of BudgetWatch when no agent runs: nothing to pause."""

    def agent_state(self, name: str) -> None:
        return None

    async def pause_agent(self, name: str) -> None: ...

    async def unpause_agent(self, name: str) -> None: ...


def test_the_team_check_counts_the_other_agents_turns_in_progress(tmp_path: Path) -> None:
    """A team budget of 50,000 tokens, 10,000 in the ledger: alice's turn at 20,100 is under
    it alone, over it with bob's and carol's turns in progress; her own in-progress tally
    is not counted twice, a finished turn (0) is no longer counted, and her own budget
    never counts the others'."""
    spec = roster(
        "budget: {tokens: 50000, per: 1d}\n"
        "defaults: {prompt: work}\n"
        "agents:\n"
        "  alice: {budget: {tokens: 100000, per: 1d}}\n"
        "  bob: {}\n"
        "  carol: {}\n",
        tmp_path,
    )

    async def main() -> list[bool]:
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: spec, _Idle())
            await watch.open(am)
            watch.ledger.record("bob", 0.0, {"input_tokens": 10_000}, time.time())
            seen = [await watch.over_with("alice", 20_100)]
            watch.in_turn("alice", 20_100)
            watch.in_turn("bob", 10_000)
            seen.append(await watch.over_with("alice", 20_100))
            watch.in_turn("carol", 10_000)
            seen.append(await watch.over_with("alice", 20_100))
            watch.in_turn("carol", 0)  # carol's turn is in the ledger now
            seen.append(await watch.over_with("alice", 20_100))
            watch.close()
            return seen

    assert anyio.run(main) == [False, False, True, False]


def test_an_agent_stopped_by_the_others_turns_claims_nothing_until_they_end(
    tmp_path: Path,
) -> None:
    """Found making test_agents_at_once_stop_near_the_team_token_budget robust: carol's
    turn, stopped for the team's 50,000 tokens by alice's and bob's turns in progress
    (the ledger alone under it), went back to the queue, carol claimed it again at once
    and crossed again: one request more per stop (140,507 tokens, 1 run in 15 under
    load). She is held now until both turns have ended (recorded and evaluated by then),
    those turns only (a busy team always has some turn in progress); an agent over with
    the ledger alone is not held by this (pausing is evaluate's)."""
    spec = roster(_THREE_UNDER_50K_TOKENS, tmp_path)

    async def main() -> list[object]:
        seen: list[object] = []
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: spec, _Idle())
            await watch.open(am)
            free = anyio.Event()

            async def claim() -> None:
                await watch.hold("carol")
                free.set()

            watch.in_turn("alice", 20_100)
            watch.in_turn("bob", 20_100)
            watch.in_turn("carol", 20_100)
            seen.append(await watch.over_with("carol", 20_100))  # over with theirs only
            watch.in_turn("carol", 0)  # her turn stopped, in the ledger
            async with anyio.create_task_group() as tg:
                tg.start_soon(claim)
                await anyio.wait_all_tasks_blocked()
                seen.append(free.is_set())
                watch.in_turn("alice", 0)
                await anyio.wait_all_tasks_blocked()
                seen.append(free.is_set())  # bob's turn still in progress
                watch.in_turn("alice", 5_000)  # a new turn of hers: not waited for
                watch.in_turn("bob", 0)
                await anyio.wait_all_tasks_blocked()
                seen.append(free.is_set())
                tg.cancel_scope.cancel()  # a carol still held fails above, never hangs
            watch.in_turn("alice", 0)
            watch.ledger.record("alice", 0.0, {"input_tokens": 45_000}, time.time())
            watch.in_turn("bob", 20_100)
            seen.append(await watch.over_with("alice", 20_100))  # over with the ledger
            with anyio.fail_after(5):  # a safety net, not a measurement
                await watch.hold("alice")
            seen.append("alice not held")
            watch.close()
        return seen

    assert anyio.run(main) == [True, False, False, True, True, "alice not held"]


def test_a_budget_spent_to_the_cent_in_many_turns_is_spent(tmp_path: Path) -> None:
    """Ten turns of $0.10 against $1.00: SQLite's sum of REALs is 0.9999999999999999, and the
    agent was not paused at its exact boundary while `ps` said `$1.0000 of $1.0000` (nor
    warned at eight). A share within a rounding error of a threshold has reached it."""
    db = tmp_path / "team.db"
    Mailbox(db).close()
    ledger = Ledger(db)
    for i in range(10):
        ledger.record("a", 0.1, {}, at=10_000.0 + i)
    ledger.record("b", 0.3, {}, at=10_000.0)
    ledger.record("b", 0.39999, {}, at=10_001.0)
    assert ledger.spent("a", since=0).usd != 1.0  # the float sum this is about
    spent = ledger.standing("a", HOUR, now=10_100.0, run_started=0.0)
    assert spent.over
    assert spent.share == 1.0
    ledger.record("w", 0.1, {}, at=10_000.0)
    for i in range(7):
        ledger.record("w", 0.1, {}, at=10_001.0 + i)
    assert ledger.spent("w", since=0).usd != 0.8
    eight = ledger.standing("w", HOUR, now=10_100.0, run_started=0.0)
    assert eight.warn  # 80 %, exactly
    assert not eight.over
    under = ledger.standing("b", Budget(usd=0.7, tokens=None, per="1h", per_s=3600.0), 10_100.0, 0)
    assert not under.over  # $0.69999: a thousandth of a cent short is not spent
    tiny = Budget(usd=1e-9, tokens=None, per="1h", per_s=3600.0)
    ledger.record("c", 4e-7, {}, at=10_000.0)  # a budget below a micro-dollar holds too
    assert ledger.standing("c", tiny, 10_100.0, 0).over
    ledger.close()


def test_an_agent_held_for_the_others_turns_says_so_in_ps(tmp_path: Path) -> None:
    """Found by review: carol, held (hold) for alice's and bob's turns in progress, claimed
    nothing while `ps` said `ready` and nothing else; a turn of theirs may run for its
    whole turn_timeout. The registry's budget document names them (`held_for`), `ps` shows
    `held for alice, bob's turns (team budget)` beside `ready`, and once those turns have
    ended the next evaluation clears it."""
    from orchestrator.cli.team_verbs import ps_rows

    spec = roster(_THREE_UNDER_50K_TOKENS, tmp_path)
    db = tmp_path / "team.db"

    def carol() -> tuple[str, object]:
        (row,) = ps_rows(db, ["carol"])
        return row["state"], row["reason"]

    async def main() -> list[object]:
        seen: list[object] = []
        async with await AsyncMailbox(db).open() as am:
            for name in ("alice", "bob", "carol"):
                await am.register(name, state="ready", meta={"supervised": True})
            watch = BudgetWatch(db, lambda: spec, _Idle())
            await watch.open(am)
            for name in ("alice", "bob", "carol"):
                watch.in_turn(name, 20_100)
            assert await watch.over_with("carol", 20_100)  # over with theirs only
            watch.in_turn("carol", 0)  # her turn stopped, in the ledger
            await watch.evaluate("turn")
            seen.append(await anyio.to_thread.run_sync(carol))
            watch.in_turn("alice", 0)
            await watch.evaluate("window")
            seen.append(await anyio.to_thread.run_sync(carol))
            watch.in_turn("bob", 0)
            await watch.evaluate("window")
            seen.append(await anyio.to_thread.run_sync(carol))
            watch.close()
        return seen

    from orchestrator.tui.data import _reason  # top's reason column

    held = {"budget": {"held_for": ["bob", "x y", 3]}}  # any process may write the registry
    assert _reason({"state": "ready"}, held) == "held for bob's turn (team budget)"
    assert anyio.run(main) == [
        ("ready", "held for alice, bob's turns (team budget)"),
        ("ready", "held for bob's turn (team budget)"),
        ("ready", None),
    ]


def test_resume_on_an_agent_held_for_the_others_turns_says_it_is_held(tmp_path: Path) -> None:
    """Regression: `resume carol`, with `ps` showing carol `ready (held for alice, bob's
    turns (team budget))`, said "'carol' is not paused by a budget; nothing to override",
    and `resume` without a name "no agent is paused by a budget": nothing of why she claims
    nothing, nor until when. Now both say she is held for those turns, until they have
    ended and been counted (exit 0: nothing failed); the hold stays (it is no budget to
    override: it keeps the team's overshoot bounded). An agent neither paused nor held
    is told so as before."""
    spec = roster(_THREE_UNDER_50K_TOKENS, tmp_path)

    async def main() -> list[object]:
        seen: list[object] = []
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: spec, _Idle())
            await watch.open(am)
            for name in ("alice", "bob", "carol"):
                watch.in_turn(name, 20_100)
            assert await watch.over_with("carol", 20_100)  # over with theirs only
            watch.in_turn("carol", 0)  # her turn stopped, in the ledger
            await watch.evaluate("turn")
            seen.append(await watch.resume(["carol"]))
            seen.append(await watch.resume([]))
            seen.append(await watch.resume(["alice"]))
            free = anyio.Event()

            async def claim() -> None:
                await watch.hold("carol")
                free.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(claim)
                await anyio.wait_all_tasks_blocked()
                seen.append(free.is_set())  # still held after `resume`
                tg.cancel_scope.cancel()
            watch.in_turn("alice", 0)
            seen.append([r["message"] for r in await watch.resume(["carol"])])
            watch.in_turn("bob", 0)
            seen.append(await watch.resume(["carol"]))
            watch.close()
        return seen

    held_both = (
        "'carol' is not paused by a budget: it is held for alice, bob's turns in progress "
        "(team budget): it claims nothing until those have ended and been counted, then "
        "runs on its own (or is paused, if the team budget is spent; `resume` overrides that)"
    )
    held_bob = (
        "'carol' is not paused by a budget: it is held for bob's turn in progress (team "
        "budget): it claims nothing until that turn has ended and been counted, then runs "
        "on its own (or is paused, if the team budget is spent; `resume` overrides that)"
    )
    carol = {"agent": "carol", "resumed": False, "held_for": ["alice", "bob"]}
    assert anyio.run(main) == [
        [{**carol, "message": held_both}],
        [{**carol, "message": held_both}],
        [
            {
                "agent": "alice",
                "resumed": False,
                "message": "'alice' is not paused by a budget; nothing to override",
            }
        ],
        False,
        [held_bob],
        [
            {
                "agent": "carol",
                "resumed": False,
                "message": "'carol' is not paused by a budget; nothing to override",
            }
        ],
    ]


def test_resume_says_nothing_of_a_held_agent_removed_from_the_roster(tmp_path: Path) -> None:
    """Regression (review of the held `resume`): carol held for alice's and bob's turns,
    then removed from the roster by a reload while they went on: `resume` without a name
    still listed her, 'held for alice, bob's turns …, then runs on its own', an agent no
    longer in the team (a named `resume carol` is refused as unknown). A held agent still
    in the team is listed as before."""
    text = (
        "budget: {tokens: 50000, per: 1d}\n"
        "defaults: {prompt: work}\n"
        "agents:\n"
        "  alice: {}\n"
        "  bob: {}\n"
        "  carol: {}\n"
        "  dave: {}\n"
    )
    specs = [roster(text, tmp_path)]

    async def main() -> list[object]:
        seen: list[object] = []
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: specs[-1], _Idle())
            await watch.open(am)
            for name in ("alice", "bob"):
                watch.in_turn(name, 20_100)
            for name in ("carol", "dave"):
                watch.in_turn(name, 20_100)
                assert await watch.over_with(name, 20_100)  # over with theirs only
                watch.in_turn(name, 0)
            await watch.evaluate("turn")
            seen.append([r["agent"] for r in await watch.resume([])])
            specs.append(roster(text.replace("  carol: {}\n", ""), tmp_path))
            await watch.evaluate("reload")
            seen.append([(r["agent"], r.get("held_for")) for r in await watch.resume([])])
            watch.close()
        return seen

    assert anyio.run(main) == [["carol", "dave"], [("dave", ["alice", "bob"])]]


def test_resume_of_a_held_agent_paused_meanwhile_says_it_is_held_in_json_too(
    tmp_path: Path,
) -> None:
    """Regression (review): carol held for bob's turn, then the team budget spent (all
    paused): `resume carol` overrode it and its message added that she is still held,
    but its `--json` entry had no `held_for`, which the README gives for a held agent: a
    script reading it took her for free to run. Now the entry has it there too."""
    spec = roster(_THREE_UNDER_50K_TOKENS, tmp_path)

    async def main() -> dict[str, Any]:
        async with await AsyncMailbox(tmp_path / "team.db").open() as am:
            watch = BudgetWatch(tmp_path / "team.db", lambda: spec, _Idle())
            await watch.open(am)
            watch.in_turn("bob", 30_000)
            watch.in_turn("carol", 30_000)
            assert await watch.over_with("carol", 30_000)  # over with bob's
            watch.in_turn("carol", 0)
            await watch.after_turn("alice", {"input_tokens": 60_000})
            assert watch.is_blocked("carol")
            (entry,) = await watch.resume(["carol"])
            watch.close()
        return entry

    entry = anyio.run(main)
    assert entry["resumed"] is True
    assert entry["held_for"] == ["bob"]
    assert entry["message"].endswith(
        "; and it is held for bob's turn in progress (team budget): it claims nothing until "
        "that turn has ended and been counted, then runs on its own (or is paused, if the "
        "team budget is spent; `resume` overrides that)"
    )
