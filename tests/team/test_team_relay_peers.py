"""The relay around peers that go away or are human (review I): an ask waiting when its
peer is stopped is answered at once, an agent may ask the human while a CLI ask waits
on it, and an asker restarted mid-ask does not make its peer work twice. Real supervisor,
bundled claude CLI, scripted model."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator import errors
from orchestrator.mailbox import USER
from orchestrator.prompts import text_of

pytestmark = [pytest.mark.cli]
TeamFactory = Callable[..., Team]


def ask_rule(agent: str, pattern: str, to: str, message: str, **extra: Any) -> dict[str, Any]:
    tool_input: dict[str, Any] = {"to": to, "message": message, **extra.pop("input", {})}
    return {
        "agent": agent_rule(agent),
        "match": pattern,
        "tool_use": {"name": "mcp__octy__ask", "input": tool_input},
        **extra,
    }


def text_rule(agent: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"agent": agent_rule(agent), "text": text, **extra}


def test_asks_waiting_on_a_peer_that_is_stopped_are_answered_at_once(team: TeamFactory) -> None:
    """a asks b (timeout 600 s) and a script's `ask b` waits too; `stop b`: both read
    recipient_stopped now, not after their timeout (a's turn and inbox waited with it).
    A notice and a request nobody waits on stay queued for the next start."""
    t = team(
        [
            text_rule("a", "a got: {1}", tool_result=r"(?s)^(.*)$"),
            ask_rule("a", r"go", "b", "slow question", input={"timeout_s": 600}),
            text_rule("b", "slow answer", match="slow question", delay=600),
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    r0 = t.request("a", "go")
    t.wait_for(
        lambda: [m for m in t.messages(sender="a", recipient="b") if m.status == "leased"],
        what="b holds a's request",
    )
    cli = t.octy_bg("ask", "b", "cli question", "--timeout", "600", "--json")
    t.wait_for(lambda: t.messages(sender=USER, recipient="b"), what="the CLI's request")
    with t.mailbox() as mb:
        notice = mb.send(USER, "b", "fyi")
        unwaited = mb.request(USER, "b", "whenever")
    t.octy("stop", "b", timeout=120)
    with t.mailbox() as mb:  # a's turn went on: it read the code as its tool's result
        answer = text_of(mb.wait_for_reply(r0.id, 60).body)
        assert answer.startswith("a got: error recipient_stopped: "), answer
        assert "'b' was stopped by the operator" in answer
        assert mb.get(notice.id).status == "pending"
        assert mb.get(unwaited.id).status == "pending"
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1, err
    assert json.loads(out)["error"] == errors.RecipientStopped.code
    assert "Traceback" not in err


def test_an_agent_asks_the_human_while_a_cli_ask_waits_on_it(team: TeamFactory) -> None:
    """A script's `ask a review` waits on a; a asks `user` which branch: `user` is no one
    blocked waiter (any terminal answers), so that is no deadlock."""
    t = team(
        [
            text_rule("a", "a saw: {1}", tool_result=r"(?s)^(.*)$"),
            ask_rule("a", "review", USER, "which branch?", input={"timeout_s": 60}),
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    cli = t.octy_bg("ask", "a", "review", "--timeout", "90")

    def asked() -> list[Any]:
        return [m for m in t.messages(sender="a", recipient=USER) if m.kind == "request"]

    (question,) = t.wait_for(asked, what="a asks the human")
    with t.mailbox() as mb:  # the operator, in another terminal
        mb.reply(question.id, USER, "main")
    out, err = cli.communicate(timeout=60)
    assert (cli.returncode, out.strip()) == (0, "a saw: main"), err


def test_an_asker_restarted_mid_ask_waits_on_its_first_request(team: TeamFactory) -> None:
    """a asks b; a's claude is SIGKILLed while it waits; its next session is given the
    same message and asks again: the same request, so b works once and its answer is
    a's (it used to be a second request: a migration or a deploy ran twice)."""
    t = team(
        [
            text_rule("a", "a got: {1}", tool_result=r"(?s)^(.*)$"),
            ask_rule("a", r"go", "b", "expensive question"),
            text_rule("b", "slow answer", match="expensive question", delay=8, times=1),
            text_rule("b", "answer again", match="expensive question"),
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    r0 = t.request("a", "go")
    (asked,) = t.wait_for(
        lambda: [m for m in t.messages(sender="a", recipient="b") if m.status == "leased"],
        what="b holds a's request",
    )
    pid = t.agent_pid("a")
    assert pid
    os.kill(pid, signal.SIGKILL)
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(r0.id, 90).body) == "a got: slow answer"
    asks = [m for m in t.messages(sender="a", recipient="b") if m.kind == "request"]
    assert [(m.id, m.status) for m in asks] == [(asked.id, "done")]
    assert len(t.model.requests_matching("expensive question", agent=agent_rule("b"))) == 1
    assert t.agent_pid("a") not in (None, pid)


def test_an_ask_replayed_after_its_peer_came_back_asks_again(team: TeamFactory) -> None:
    """a asks b; `stop b` answers a's ask recipient_stopped; b is started again, then a is
    restarted before its turn ended, so the turn is given to its next session, which asks
    the same. That ask is not the one stop answered (it reads that stale refusal, 'b was
    stopped', on every replay): it is asked again, and b answers it."""
    t = team(
        [
            text_rule("a", "a stuck", tool_result=r"recipient_stopped", delay=600, times=1),
            text_rule("a", "a got: {1}", tool_result=r"(?s)^(.*)$"),
            ask_rule("a", r"go", "b", "question", input={"timeout_s": 600}),
            text_rule("b", "late answer", match="question", delay=600, times=1),
            text_rule("b", "b's answer", match="question"),
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    r0 = t.request("a", "go")
    (first,) = t.wait_for(
        lambda: [m for m in t.messages(sender="a", recipient="b") if m.status == "leased"],
        what="b holds a's request",
    )
    t.octy("stop", "b", timeout=120)
    with t.mailbox() as mb:
        assert mb.get(first.id).error == errors.RecipientStopped.code
    t.wait_for(
        lambda: t.model.requests_matching(tool_result="recipient_stopped", agent=agent_rule("a")),
        what="a read recipient_stopped",
    )
    t.octy("start", "b")
    t.wait_ready("b")
    t.octy("restart", "a", timeout=120)
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(r0.id, 120).body) == "a got: b's answer"
    asks = [m for m in t.messages(sender="a", recipient="b") if m.kind == "request"]
    assert sorted(m.status for m in asks) == ["dead", "done"], asks
