"""One bad message must not take others with it, or cost without end (issue 16 B), and a model
that cannot be reached is visible at once (issue 9.2). Real claude CLI, scripted model."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule, text_of

from orchestrator import errors
from orchestrator.mailbox import MAX_BODY_BYTES
from orchestrator.redact import MAX_LOG_DEPTH, TOO_DEEP
from orchestrator.scripted_model import ScriptedModel

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_a_body_near_the_queue_limit_is_delivered_without_a_crash(team: TeamFactory) -> None:
    """The queue accepts bodies up to 1 MiB: one that size reaches the agent, whose answer
    as big comes back whole (before: the SDK's 1 MiB line buffer ended the session five
    times, then the request was dead). An answer over the limit is cut, and says so."""
    t = team(
        [
            {"agent": agent_rule("a"), "match": "twice\n(y+)\n</message>", "text": "{1}{1}"},
            {"agent": agent_rule("a"), "match": ">\n(y+)\n</message>", "text": "{1}"},
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    body = "y" * (MAX_BODY_BYTES - 16)
    assert t.ask("a", body, timeout=120) == body
    twice = t.ask("a", "twice\n" + "y" * 600_000, timeout=120)
    assert twice.startswith("y" * 600_000)
    assert twice.endswith("over the queue's limit]")
    with t.mailbox() as mb:
        info = mb.agent("a")
        assert info is not None
        assert info.meta.get("restarts", 0) == 0


def _events(t: Team, agent: str, name: str) -> list[dict[str, Any]]:
    path = t.folder / "logs" / f"{agent}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def _failure(t: Team, request_id: str, timeout: float = 90) -> errors.RequestFailed:
    with t.mailbox() as mb, pytest.raises(errors.RequestFailed) as caught:
        mb.wait_for_reply(request_id, timeout)
    return caught.value


def test_a_poison_request_fails_alone_once_and_its_batch_goes_through(team: TeamFactory) -> None:
    """Four requests batched into one turn; the model answers 400 to one of them. The batch
    is retried one message at a time: the three innocent ones are answered, the poison one
    fails once alone and its asker gets turn_failed with the model's reason (before: the
    batch was nacked and re-batched until all four were dead letters). The CLI keeps a
    failed user message in the session and merges it into the next turn (measured), so
    the session is rewound to its last good turn: later turns are not poisoned."""
    a = agent_rule("a")
    t = team(
        [
            {"agent": a, "match": "slow", "delay": 2, "text": "slow done"},
            {"agent": a, "match": "poison", "error": {"status": 400, "message": "bad image"}},
            {"agent": a, "match": "innocent (\\d)", "text": "fine {1}"},
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    slow = t.request("a", "slow")
    t.wait_for(lambda: t.states().get("a") == "busy", what="a busy with the slow one")
    poison = t.request("a", "poison pill")
    innocent = [t.request("a", f"innocent {i}") for i in range(3)]
    with t.mailbox() as mb:
        assert text_of(mb.wait_for_reply(slow.id, 60).body) == "slow done"
        for i, m in enumerate(innocent):
            assert text_of(mb.wait_for_reply(m.id, 90).body) == f"fine {i}"
    failed = _failure(t, poison.id)
    assert failed.code == "turn_failed"
    assert "bad image" in failed.detail
    with t.mailbox() as mb:
        dead = mb.get(poison.id)
        assert (dead.status, dead.error, dead.attempts) == ("dead", "turn_failed", 2)
    t.wait_for(lambda: all(_done(t, m.id) for m in innocent), what="the innocent ones acked")
    assert t.ask("a", "innocent 7") == "fine 7"  # the session is not poisoned
    assert _events(t, "a", "session_rewound")


def test_max_turns_exceeded_fails_the_request_once(team: TeamFactory) -> None:
    """A turn that hits max_turns would hit it again, paid again: the asker gets turn_failed
    naming max_turns after one attempt (before: five attempts, each re-running the turn)."""
    t = team(
        [{"agent": agent_rule("a"), "tool_use": {"name": "mcp__octy__agents"}}],
        {"a": {"max_turns": 1}},
    )
    t.up()
    t.wait_ready("a")
    request = t.request("a", "loop forever")
    failed = _failure(t, request.id)
    assert failed.code == "turn_failed"
    assert "max_turns" in failed.detail
    with t.mailbox() as mb:
        assert mb.get(request.id).attempts == 1


def test_a_persistent_529_is_bounded_and_visible(team: TeamFactory) -> None:
    """An overloaded model: each turn's retries are bounded by model_retries, every retry is
    a model_error event (status, type, attempt) and ps shows the reason beside the state;
    after the message's attempts the asker gets turn_failed with the 529 in it."""
    t = team(
        [{"agent": agent_rule("a"), "error": {"status": 529, "message": "Overloaded"}}],
        {"a": {"model_retries": 2}},
    )
    t.up()
    t.wait_ready("a")
    with t.mailbox() as mb:
        request = mb.request("user", "a", "anyone there?", max_attempts=2)
    row = t.wait_for(lambda: (r := _ps_row(t, "a"))["model_error"] and r, what="the reason in ps")
    assert "529" in row["model_error"]
    failed = _failure(t, request.id)
    assert failed.code == "turn_failed"
    assert "529" in failed.detail
    retries = _events(t, "a", "model_error")
    assert retries[0]["status"] == 529
    assert retries[0]["type"] == "overloaded"
    assert {e["max_retries"] for e in retries} == {2}
    # Two attempts, each the first call and two retries: bounded, however long it stays down.
    assert len(t.model.requests_matching("anyone there")) == 2 * 3


def _ps_row(t: Team, name: str) -> dict[str, Any]:
    rows = json.loads(t.octy("ps", "--json").stdout)["agents"]
    return next(r for r in rows if r["name"] == name)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_fails_fast_and_nothing_is_lost(team: TeamFactory) -> None:
    """ANTHROPIC_BASE_URL at a closed port: `up` refuses and says so; started anyway, an ask
    is answered model_unavailable (connection refused) at once instead of minutes of retries,
    ps shows why; a notice is kept and delivered once the model is back, and the request,
    retried from the dead letters, is answered."""
    port = _closed_port()
    t = team(
        [{"agent": agent_rule("a"), "text": "back again"}],
        {"a": {"env": {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}, "model_retries": 8}},
    )
    refused = t.octy("up", "-d", check=False)
    assert refused.returncode == 1
    assert f"connection refused at 127.0.0.1:{port}" in refused.stderr
    assert "--no-model-check" in refused.stderr
    t.octy("up", "-d", "--no-model-check")
    t.wait_ready("a")
    request = t.request("a", "hello?")
    failed = _failure(t, request.id)
    assert failed.code == "model_unavailable"
    assert "connection refused" in failed.detail
    assert _events(t, "a", "model_error")[0]["status"] is None
    assert "connection refused" in (_ps_row(t, "a")["model_error"] or "")
    assert "connection refused" in t.octy("ps").stdout
    with t.mailbox() as mb:
        notice = mb.send("user", "a", "a note for later")
    t.wait_for(lambda: len(_events(t, "a", "turn_failed")) >= 2, what="the notice tried")

    with ScriptedModel({"default": {"text": "back again"}}, port=port):  # the model is back
        t.wait_for(
            lambda: t.messages(status="done") and _done(t, notice.id),
            timeout=90,
            what="the notice delivered",
        )
        t.octy("queue", "retry", request.id)
        with t.mailbox() as mb:
            assert text_of(mb.wait_for_reply(request.id, 60).body) == "back again"
        assert _ps_row(t, "a")["model_error"] is None
        t.octy("down")


def _done(t: Team, message_id: str) -> bool:
    with t.mailbox() as mb:
        return mb.get(message_id).status == "done"


def test_a_rejected_key_is_found_by_up_and_fails_turns_fast(team: TeamFactory) -> None:
    """The model refuses the key (scripted 401 on every endpoint): `up` says the key was
    rejected and starts nothing; started anyway, a request is answered model_unavailable
    after the first refusal instead of model_retries (8) more."""
    t = team([{"agent": agent_rule("a"), "text": "never"}], {"a": {"model_retries": 8}})
    t.model.stop()
    locked = ScriptedModel({"api_key": "sk-ant-the-right-one", "default": {"text": "x"}})
    t.model = locked.start()
    t.env["ANTHROPIC_BASE_URL"] = locked.base_url
    try:
        refused = t.octy("up", check=False)
        assert refused.returncode == 1
        assert "the API key was rejected (HTTP 401" in refused.stderr
        assert t.states().get("a") is None  # no agent started
        t.octy("up", "-d", "--no-model-check")
        t.wait_ready("a")
        request = t.request("a", "hello?")
        failed = _failure(t, request.id)
        assert failed.code == "model_unavailable"
        assert "API key was rejected" in failed.detail
        calls = [r for r in locked.requests if r["path"] == "/v1/messages" and not r["side"]]
        # Not 1 + 8 retries. Up to 3: the key reaches the CLI through its apiKeyHelper
        # (agent_env), and on a 401 the CLI runs the helper again once and retries.
        assert 1 <= len(calls) <= 3
        t.octy("down")
    finally:
        locked.stop()


def test_a_tool_input_nested_600_deep_is_logged_cut_and_the_turn_goes_on(
    team: TeamFactory,
) -> None:
    """A model's tool input nested 600 levels deep: logging it (``tool_used``, redacted on
    the way) raised RecursionError inside the session, which crashed, was restarted and,
    the attempt not counted, crashed again on every redelivery. It is now logged cut
    below 64 levels and the turn is answered."""
    deep: Any = "x"
    for _ in range(600):
        deep = [deep]
    a = agent_rule("a")
    t = team(
        [
            {
                "agent": a,
                "match": "go deep",
                "tool_use": {"name": "mcp__octy__agents", "input": {"extra": deep}},
                "times": 1,
            },
            {"agent": a, "text": "came back up"},
        ],
        {"a": {}},
    )
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "go deep", timeout=120) == "came back up"
    [used] = _events(t, "a", "tool_used")
    cut = used["input"]["extra"]
    for _ in range(MAX_LOG_DEPTH - 1):  # the input mapping is level 0, "extra" level 1...
        [cut] = cut
    assert cut == TOO_DEEP
    assert not _events(t, "a", "session_crashed")
    with t.mailbox() as mb:
        info = mb.agent("a")
        assert info is not None
        assert info.meta.get("restarts", 0) == 0


def test_a_lone_surrogate_from_the_model_ends_no_session(team: TeamFactory) -> None:
    """Found by review: half an emoji ("\\ud83d", valid in the API's JSON) in a tool input
    crashed the session when its log line was written, and in a final text when the reply
    was stored; uncounted, it crashed every restart until the agent was failed with every
    request queued for it. The log line now carries the escape, the relay refuses the body
    as any invalid one, and the reply holds U+FFFD where the half emoji was."""
    a = agent_rule("a")
    t = team(
        [
            {"agent": a, "tool_result": "(?s).", "text": "done \ud83d", "times": 1},
            {
                "agent": a,
                "match": "poison",
                "tool_use": {
                    "name": "mcp__octy__send",
                    "input": {"to": "b", "message": "hi \ud83d"},
                },
            },
            {"agent": a, "match": "hello", "text": "a here"},
            {"agent": agent_rule("b"), "text": "b here"},
        ],
        {"a": {}, "b": {}},
    )
    t.up()
    t.wait_ready("a", "b")
    assert t.ask("a", "poison", timeout=120) == "done \ufffd"
    assert t.ask("a", "hello", timeout=120) == "a here"
    [used] = _events(t, "a", "tool_used")
    assert used["input"]["message"] == "hi \ud83d"  # the line is JSON with the escape
    assert not _events(t, "a", "session_crashed")
    t.wait_ready("a", "b")  # after its last turn's bookkeeping: never failed, never restarted
    with t.mailbox() as mb:
        info = mb.agent("a")
        assert info is not None
        assert info.meta.get("restarts", 0) == 0
