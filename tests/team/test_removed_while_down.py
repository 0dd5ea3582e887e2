"""An agent removed from agents.yaml while the team was down: the next `up` treats its
row as a reload's removal treats it. Its row kept the `supervised` mark of the team that
ran it: `ps` listed it as a stopped agent of the team, `start b` was sent to a supervisor
that knows no `b` and failed, and a request queued for it waited for its TTL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from team_harness import agent_rule

from orchestrator import errors
from orchestrator.mailbox import USER


def _ran_then_down(t: Any) -> None:
    """The team of a and b ran, then went down: b's row is a supervised one, with its
    session's start recorded."""
    t.up()
    t.wait_ready("a", "b")
    t.octy("down")
    assert t.wait_exit() == 0


def test_up_forgets_an_agent_removed_while_the_team_was_down(team: Any) -> None:
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}, "b": {}})
    _ran_then_down(t)
    question = t.request("b", "for the old b")
    with t.mailbox() as mb:
        notice = mb.send(USER, "b", "a notice for the old b")
    t.write_roster({"a": {}})  # b retired while the team was down
    t.up()
    t.wait_ready("a")

    with t.mailbox() as mb:
        with pytest.raises(errors.RecipientRemoved) as failed:
            mb.wait_for_reply(question.id, 10)
        assert "'b' was removed from agents.yaml" in str(failed.value)
        assert mb.get(notice.id).status == "pending"  # not lost: `inbox b --ack` takes it
    # Kept for its notice, as an outside participant's row: no agent of the team.
    (row,) = [r for r in json.loads(t.octy("ps", "--json").stdout)["agents"] if r["name"] == "b"]
    assert row["external"] is True, row
    assert row["pending"] == 1, row
    assert row["uptime_s"] is None, row  # not up since the old team's session began
    start = t.octy("start", "b", check=False)
    assert start.returncode != 0
    assert "no agent named 'b'" in start.stderr, start.stderr
    (forgotten,) = t.log_events("removed_agent_forgotten")
    assert forgotten["agent"] == "b"
    assert forgotten["notices_kept"] == 1
    taken = t.octy("inbox", "b", "--ack", "--json")
    assert "a notice for the old b" in taken.stdout


def test_up_unregisters_a_removed_agent_with_nothing_queued(team: Any) -> None:
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}, "b": {}})
    _ran_then_down(t)
    question = t.request("b", "for the old b")
    t.write_roster({"a": {}})
    t.up()
    t.wait_for(lambda: t.log_events("removed_agent_forgotten"), what="b forgotten")
    assert "b" not in t.states()  # as after a reload's removal
    with t.mailbox() as mb, pytest.raises(errors.RecipientRemoved):
        mb.wait_for_reply(question.id, 10)


def test_up_of_another_roster_on_the_same_database_forgets_nothing(team: Any) -> None:
    """Two roster files in one folder share its default queue/team.db (one team at a
    time: the lock). `up -f review.yaml` is not agents.yaml edited: agents.yaml's agents
    were not removed, their rows and the requests waiting for them are left alone."""
    rules = [{"agent": agent_rule(n), "text": f"{n} is up"} for n in ("a", "c")]
    t = team(rules, {"a": {}, "b": {}})
    _ran_then_down(t)
    question = t.request("b", "for agents.yaml's b")
    t.roster_path = t.folder / "review.yaml"
    t.write_roster({"c": {}}, name="review")
    t.up()
    t.wait_for(lambda: len(t.log_events("start_up_done")) == 2, what="review's start-up")

    assert not t.log_events("removed_agent_forgotten")
    assert {"a", "b"} <= set(t.states())
    with t.mailbox() as mb:
        assert mb.get(question.id).status == "pending"
