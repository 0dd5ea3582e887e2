"""A turn cut off before its result (turn_timeout, the claude process killed) is charged
dollars too: its requests' tokens priced from the bundled CLI's own table (the CLI prices
a turn only at its result, which never came), marked as an estimate in the spend event
and the ledger, and charged once: the CLI's own figure at the next result replaces the
estimate. A `usd` budget pauses the agent once the estimate crosses it (real claude CLI,
scripted model whose rules set the usage; the default model is claude-opus-5-5, $4 and
$20 per million input and output tokens)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from typing import Any

import pytest
from team_harness import Team, agent_rule
from test_team_spend import SUMMARY, hung_compaction_rules

from orchestrator import errors
from orchestrator.scripted_model import tool_results

pytestmark = [pytest.mark.cli, pytest.mark.slow]

WARM = 0.0042  # 1,000 input and 10 output tokens at opus-5-5's rates
REDELIVERED = 0.12206  # 30,010 input and 101 output: the redelivered turn, priced by the CLI
# The cut turn's tally: its first request's 30,000 input tokens and the 1 output token its
# message_start had counted when the CLI sent the assistant message.
ESTIMATE = 0.12002


def rules(hang_s: float, warm: bool = True) -> list[dict[str, Any]]:
    """A warm-up turn (the session has a running total), then a turn whose first request
    (30,100 tokens, a tool call) is answered and whose second hangs for ``hang_s`` once;
    redelivered, the turn ends with 11 more tokens."""
    a = agent_rule("alice")
    return [
        {
            "agent": a,
            "match": "warm",
            "text": "warmed",
            "usage": {"input_tokens": 1000, "output_tokens": 10},
        },
        {"agent": a, "tool_result": "alice", "text": "late", "delay": hang_s, "times": 1},
        {
            "agent": a,
            "tool_result": "alice",
            "text": "fine",
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
        {
            "agent": a,
            "match": "slow",
            "tool_use": {"name": "mcp__octy__agents", "input": {}},
            "usage": {"input_tokens": 30000, "output_tokens": 100},
        },
    ][0 if warm else 1 :]


def ledger(t: Team, agent: str = "alice") -> list[tuple[float, int]]:
    """(usd, estimated) of the agent's spend rows, in order."""
    with sqlite3.connect(t.db_path) as db:
        return [
            (round(usd, 6), est)
            for usd, est in db.execute(
                "SELECT usd, estimated FROM spend WHERE agent = ? ORDER BY seq", (agent,)
            )
        ]


def ledger_tokens(t: Team, agent: str = "alice") -> int:
    with sqlite3.connect(t.db_path) as db:
        row = db.execute(
            "SELECT sum(input_tokens + output_tokens + cache_read_input_tokens"
            " + cache_creation_input_tokens) FROM spend WHERE agent = ?",
            (agent,),
        ).fetchone()
    return int(row[0])


# Tokens, once each: the warm-up, the cut turn's tally, the redelivered turn.
TOKENS = 1010 + 30_001 + 30_111


def last_session_total(t: Team) -> float:
    return float(t.log_events("turn", "alice")[-1]["session_cost_usd"])


def test_a_turn_timeouts_dollars_are_estimated_then_the_clis_figure_wins(
    team: Any,
) -> None:
    """turn_timeout 3s while the second request hangs: the cut turn is charged its
    estimated dollars (they were $0), marked as an estimate. Closed cleanly, the CLI
    kept the cut request in its running total and the resumed session's next turn
    includes it: the estimate is taken off there, so the ledger's sum is the CLI's own
    total for the session (charged once; with the estimate alone added it was counted
    twice)."""
    t = team(rules(30), {"alice": {"turn_timeout": "3s"}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "warm up", timeout=120) == "warmed"
    assert t.ask("alice", "slow job", timeout=120) == "fine"
    t.wait_for(lambda: len(ledger(t)) == 3, 30, "three spend rows")
    (spend,) = t.log_events("spend", "alice")
    assert spend["cause"] == "turn_timeout"
    assert (spend["cost_usd"], spend["cost_estimated"]) == (ESTIMATE, True)
    assert "price_unknown" not in spend
    rows = ledger(t)
    assert rows[:2] == [(WARM, 0), (ESTIMATE, 1)]
    assert rows[2][1] == 0  # the CLI's figure
    # The CLI's own total: the warm turn, the cut request in full (30,000 + 100 tokens,
    # the CLI had its final count) and the redelivered turn.
    total = last_session_total(t)
    assert total == pytest.approx(WARM + 0.122 + REDELIVERED)
    assert sum(usd for usd, _ in rows) == pytest.approx(total)
    # Tokens the same way: the next turn's are the CLI's running count's difference from
    # the cut tally's, so the 99 output tokens the tally missed are counted there, once
    # (the cut 30,100 were counted twice when the baseline was kept without the tally).
    assert ledger_tokens(t) == 1010 + 30_100 + 30_111


def test_a_killed_turns_dollars_are_estimated_and_the_redelivery_charged_in_full(
    team: Any,
) -> None:
    """The claude process is SIGKILLed while the second request hangs: the cut turn is
    charged its estimate (it was $0). Killed, the CLI saved no running total, and the
    resumed one starts again from what it resumed with: the redelivered turn is charged
    its full cost (it was charged less the warm-up's, the old baseline), each once."""
    t = team(rules(120), {"alice": {}})
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "warm up", timeout=120) == "warmed"
    pid = t.agent_pid("alice")
    assert pid is not None
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the second request")
    os.kill(pid, signal.SIGKILL)
    mb = t.mailbox()
    reply = t.wait_for(lambda: mb.find_reply(request.id), 120, "the redelivered turn's reply")
    assert reply.body == "fine"
    t.wait_for(lambda: len(ledger(t)) == 3, 30, "three spend rows")
    (spend,) = t.log_events("spend", "alice")
    assert (spend["cause"], spend["cost_usd"], spend["cost_estimated"]) == (
        "session_died",
        ESTIMATE,
        True,
    )
    assert ledger(t) == [(WARM, 0), (ESTIMATE, 1), (REDELIVERED, 0)]
    assert ledger_tokens(t) == TOKENS
    assert last_session_total(t) == pytest.approx(REDELIVERED)  # the CLI started again at 0
    # ps's COST (the registry's total, or the ledger's sum) has the estimate in it
    ps = {a["name"]: a for a in json.loads(t.octy("ps", "--json").stdout)["agents"]}
    assert ps["alice"]["cost_usd"] == pytest.approx(WARM + ESTIMATE + REDELIVERED)


def test_a_usd_budget_pauses_the_agent_on_a_cut_turns_estimate(team: Any) -> None:
    """A $0.10 budget and a turn cut off by the CLI's death after $0.12 of requests: the
    agent is paused on the estimate and the redelivered request answered budget_exceeded
    (the turn cost $0 before, so it ran again, and again on each death)."""
    t = team(rules(120, warm=False), {"alice": {"budget": {"usd": 0.1, "per": "1d"}}})
    t.up()
    t.wait_ready("alice")
    pid = t.agent_pid("alice")
    assert pid is not None
    request = t.request("alice", "slow job")
    t.wait_for(lambda: [r for r in t.model.requests if tool_results(r)], 60, "the second request")
    os.kill(pid, signal.SIGKILL)
    with t.mailbox() as mb, pytest.raises(errors.BudgetExceeded) as refused:
        mb.wait_for_reply(request.id, 120)
    assert "$0.1200 of $0.1000" in str(refused.value)
    t.wait_for(lambda: t.states().get("alice") == "paused", 30, "alice paused")
    assert len(t.model.requests_matching("slow")) == 1  # the turn did not run again
    assert ledger(t) == [(ESTIMATE, 1)]


def test_a_model_of_unknown_price_is_estimated_at_the_highest_rate_or_the_rosters(
    team: Any,
) -> None:
    """Two agents on models the CLI does not know, cut by turn_timeout: one at the
    highest known rate ($15 and $75 per million), flagged `price_unknown`; the other at
    the roster's `prices:` for its model."""
    rules_: list[dict[str, Any]] = []
    for name in ("alice", "bob"):
        a = agent_rule(name)
        rules_ += [
            {"agent": a, "tool_result": name, "text": "late", "delay": 30, "times": 1},
            {"agent": a, "tool_result": name, "text": "fine"},
            {
                "agent": a,
                "match": "slow",
                "tool_use": {"name": "mcp__octy__agents", "input": {}},
                "usage": {"input_tokens": 30000, "output_tokens": 100},
            },
        ]
    t = team(
        rules_,
        {
            "alice": {"turn_timeout": "3s", "model": "gw-unknown"},
            "bob": {"turn_timeout": "3s", "model": "gw-priced"},
        },
        prices={"gw-priced": {"input": 1, "output": 2}},
    )
    t.up()
    t.wait_ready("alice", "bob")
    assert t.ask("alice", "slow job", timeout=120) == "fine"
    assert t.ask("bob", "slow job", timeout=120) == "fine"
    (alice,) = t.log_events("spend", "alice")
    assert (alice["cost_usd"], alice["price_unknown"]) == (0.450075, ["gw-unknown"])
    (bob,) = t.log_events("spend", "bob")
    assert bob["cost_usd"] == 0.030002
    assert "price_unknown" not in bob


def test_a_compaction_cut_off_by_the_clis_death_is_estimated(team: Any) -> None:
    """The first turn fills the 1,000-token window (900 input tokens): the runner sends
    /compact, and the CLI is killed while the summary request hangs. The CLI streams no
    message for that request, so it is charged the conversation it summarises, the
    context in use, as input at the model's rate (it was not charged at all); the agent
    runs on."""
    t = team(
        hung_compaction_rules(),
        {"alice": {"context_window": 1000}},
    )
    t.up()
    t.wait_ready("alice")
    pid = t.agent_pid("alice")
    assert pid is not None
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.model.requests_matching(SUMMARY), 60, "the summary request")
    os.kill(pid, signal.SIGKILL)
    spend = t.wait_for(lambda: t.log_events("spend", "alice"), 60, "the compaction's spend")
    assert [(e["cause"], e["cut_off"]) for e in spend] == [("compaction", "session_died")]
    assert (spend[0]["input_tokens"], spend[0]["cost_usd"]) == (900, 0.0036)
    assert spend[0]["cost_estimated"] is True
    t.wait_for(lambda: len(ledger(t)) == 2, 30, "the turn and the compaction in the ledger")
    assert ledger(t)[1] == (0.0036, 1)
    t.wait_for(lambda: t.states().get("alice") == "ready", 60, "alice restarted")
    assert t.ask("alice", "job 2") == "done"


def test_a_session_killed_between_turns_charges_its_next_turn_in_full(team: Any) -> None:
    """The claude process is killed between two turns. It had saved no running total (it
    does when it exits cleanly), so the resumed one starts again from the one it resumed
    with: the next turn is charged its full cost (it was charged less the warm-up's, the
    difference from the last total seen)."""
    a = agent_rule("alice")
    t = team(
        [
            {
                "agent": a,
                "match": "warm",
                "text": "warmed",
                "usage": {"input_tokens": 1000, "output_tokens": 10},
            },
            {
                "agent": a,
                "match": "big",
                "text": "big done",
                "usage": {"input_tokens": 30010, "output_tokens": 101},
            },
        ],
        {"alice": {}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "warm up", timeout=120) == "warmed"
    pid = t.agent_pid("alice")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t.wait_for(
        lambda: t.agent_pid("alice") not in (None, pid) and t.states().get("alice") == "ready",
        90,
        "alice restarted",
    )
    assert t.ask("alice", "big job", timeout=120) == "big done"
    t.wait_for(lambda: len(ledger(t)) == 2, 30, "two spend rows")
    assert ledger(t) == [(WARM, 0), (REDELIVERED, 0)]
    assert not t.log_events("spend", "alice")  # nothing was cut off: no estimate
