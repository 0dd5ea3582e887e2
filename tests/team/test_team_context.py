"""Context windows on a real team (real claude CLI, scripted model): compaction between
turns past compact_at, and a fresh session with a hand-over after "prompt is too long"."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator.scripted_model import conversation, last_user_text

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
SUMMARY_REQUEST = "create a detailed summary of the conversation so far"


def context_of(t: Team, name: str) -> dict[str, Any]:
    with t.mailbox() as mb:
        info = mb.agent(name)
    assert info is not None
    context = info.meta.get("context")
    return context if isinstance(context, dict) else {}


def test_past_compact_at_the_runner_has_the_cli_compact_between_turns(team: TeamFactory) -> None:
    """Window 10,000 (context_window), compact_at 0.8: a turn at 3,000 tokens leaves the
    conversation alone; a turn at 8,500 is followed by the CLI's /compact (a summary
    request to the model), logged `compacted` with the tokens before and after, and the
    next turn carries the summary instead of the history."""
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": SUMMARY_REQUEST,
                "text": "<summary>alice worked on the small and the big job</summary>",
            },
            {
                "agent": agent_rule("alice"),
                "match": "small job",
                "text": "small done",
                "usage": {"input_tokens": 2000, "cache_read_input_tokens": 1000},
            },
            {
                "agent": agent_rule("alice"),
                "match": "big job",
                "text": "big done",
                "usage": {
                    "input_tokens": 500,
                    "cache_read_input_tokens": 6000,
                    "cache_creation_input_tokens": 2000,
                },
            },
            {"agent": agent_rule("alice"), "match": "zebra job", "text": "zebra done"},
        ],
        {"alice": {"context_window": 10_000}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "small job") == "small done"
    t.wait_for(lambda: context_of(t, "alice").get("tokens") == 3000, what="context figures")
    assert context_of(t, "alice")["window"] == 10_000
    assert not t.model.requests_matching(SUMMARY_REQUEST)

    assert t.ask("alice", "big job") == "big done"
    compacted = t.wait_for(lambda: t.log_events("compacted"), what="compacted")[0]
    assert compacted["agent"] == "alice"
    assert compacted["before"] == 8500
    assert isinstance(compacted["after"], int)
    assert compacted["after"] < 8500
    assert len(t.model.requests_matching(SUMMARY_REQUEST)) >= 1
    t.wait_for(lambda: context_of(t, "alice").get("compacted_from") == 8500, what="published")

    assert t.ask("alice", "zebra job") == "zebra done"
    request = t.model.wait_for_request("zebra job", agent=agent_rule("alice"))
    history = json.dumps(conversation(request))
    assert "alice worked on the small and the big job" in history  # the summary...
    assert "small done" not in history  # ...instead of the turns it replaced
    assert len(t.log_events("compacted")) == 1  # zebra was small again: no second one


def test_compact_at_null_never_compacts(team: TeamFactory) -> None:
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": "big job",
                "text": "big done",
                "usage": {"input_tokens": 9500},
            }
        ],
        {"alice": {"context_window": 10_000, "compact_at": None}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "big job") == "big done"
    t.wait_for(lambda: context_of(t, "alice").get("tokens") == 9500, what="context figures")
    assert t.ask("alice", "big job again") == "big done"
    assert not t.model.requests_matching(SUMMARY_REQUEST)
    assert not t.log_events("compacting")


def test_a_context_overflow_starts_a_fresh_session_with_a_handover(team: TeamFactory) -> None:
    """The model answers "prompt is too long" to alice's conversation: the session is not
    resumed into the same failure; a fresh one starts (context_reset), told where alice
    was (her last result, the message in flight), and that message is delivered again
    and answered."""
    t = team(
        [
            # Any request of the old conversation that carries the boom message is too long.
            {
                "agent": agent_rule("alice"),
                "match": r"(?s)\A(?!.*Context reset).*boom",
                "error": "prompt_too_long",
            },
            {"agent": agent_rule("alice"), "match": "boom", "text": "boom handled"},
            {"agent": agent_rule("alice"), "match": "first", "text": "alice first result"},
        ],
        {"alice": {}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "first") == "alice first result"
    with t.mailbox() as mb:
        old_session = mb.agent("alice").meta["session_id"]  # type: ignore[union-attr]
    request = t.request("alice", "boom please")
    with t.mailbox() as mb:
        reply = mb.wait_for_reply(request.id, 90)
    assert reply.body == "boom handled"
    reset = t.log_events("context_reset")
    assert [e["agent"] for e in reset] == ["alice"]
    assert "too long" in reset[0]["detail"].lower()

    fresh = t.model.requests_matching("Context reset", agent=agent_rule("alice"))
    assert fresh, "the fresh session's first turn carries the hand-over"
    text = last_user_text(fresh[0])
    assert "alice first result" in text  # the last result
    assert request.id in text  # the message in flight, delivered again in the same turn
    assert "boom please" in text
    roles = [role for role, _ in conversation(fresh[0])]
    assert "assistant" not in roles  # a fresh conversation, not the old one resumed
    with t.mailbox() as mb:
        info = mb.agent("alice")
        assert info is not None
        assert info.meta["session_id"] != old_session
        # The ack follows the reply (the runner yields in between so the asker hears
        # first): wait for it rather than race it.
        t.wait_for(lambda: mb.get(request.id).status == "done", what="the request acked")


def test_a_compaction_that_cannot_get_below_the_threshold_is_not_repeated_every_turn(
    team: TeamFactory,
) -> None:
    """A 1,000-token window is smaller than the CLI's own system prompt: compacting once
    cannot get below 80 %, so the next turns do not compact again until the context has
    grown by a tenth of the window past what the compaction left."""
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": SUMMARY_REQUEST,
                "text": "<summary>short</summary>",
            },
            {
                "agent": agent_rule("alice"),
                "match": "job",
                "text": "done",
                "usage": {"input_tokens": 900},
            },
        ],
        {"alice": {"context_window": 1000}},
    )
    t.up()
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    compacted = t.wait_for(lambda: t.log_events("compacted"), what="compacted")[0]
    assert compacted["after"] > 800  # still over the threshold
    for n in (2, 3):
        assert t.ask("alice", f"job {n}") == "done"
    t.wait_for(lambda: context_of(t, "alice").get("tokens") == 900, what="figures")
    assert len(t.log_events("compacting")) == 1


def test_a_compaction_gone_silent_restarts_the_session_like_a_hung_turn(
    team: TeamFactory,
) -> None:
    """The model takes longer than turn_timeout to write the summary: the compaction is
    abandoned and the session restarted (its late answer must not pass for the next
    turn's); the next request is answered by the new session."""
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": SUMMARY_REQUEST,
                "delay": 6,
                "text": "<summary>late</summary>",
            },
            {
                "agent": agent_rule("alice"),
                "match": r"job \d",
                "text": "done {0}",
                "usage": {"input_tokens": 9000},
            },
        ],
        {"alice": {"context_window": 10_000, "turn_timeout": "2s"}},
    )
    t.up()
    t.wait_ready("alice")
    pid = t.agent_pid("alice")
    assert t.ask("alice", "job 1") == "done job 1"
    failed = t.wait_for(lambda: t.log_events("compact_failed"), what="compact_failed")[0]
    assert failed["reason"] == "timeout"
    restart = t.wait_for(lambda: t.log_events("restarting"), what="restart")[0]
    assert restart["reason"] == "turn_timeout"
    t.wait_for(lambda: t.agent_pid("alice") not in (None, pid), what="a new claude process")
    assert t.ask("alice", "job 2") == "done job 2"


def test_a_failed_compaction_backs_off_instead_of_retrying_every_turn(
    team: TeamFactory,
) -> None:
    """The summary request is refused (400) each time: after the first failure the runner
    lets 4 turns pass before compacting again (the log says so), where it retried after
    every turn, each a paid summary request."""
    t = team(
        [
            {
                "agent": agent_rule("alice"),
                "match": SUMMARY_REQUEST,
                "error": {"status": 400, "type": "invalid_request_error", "message": "bad"},
            },
            {
                "agent": agent_rule("alice"),
                "match": r"job \d",
                "text": "done {0}",
                "usage": {"input_tokens": 9000},
            },
        ],
        {"alice": {"context_window": 10_000}},
    )
    t.up()
    t.wait_ready("alice")
    for n in range(1, 6):
        assert t.ask("alice", f"job {n}") == f"done job {n}"
    t.wait_for(lambda: len(t.log_events("compacting")) >= 2, what="the retry")
    failed = t.wait_for(lambda: t.log_events("compact_failed"), what="compact_failed")[0]
    assert (failed["retry_after_turns"], failed["retry_at_tokens"]) == (4, 10_000)
    assert failed["retry"] == "after 4 more turns, or once the context reaches 10,000 tokens"
    # The log's order: turn 1, the failed compaction, turns 2-5, then the retry.
    path = t.folder / "logs" / "supervisor.jsonl"
    order = [json.loads(line).get("event") for line in path.read_text().splitlines()]
    steps = [e for e in order if e in ("turn", "compacting")]
    assert steps[:7] == ["turn", "compacting", "turn", "turn", "turn", "turn", "compacting"]


def test_a_model_the_cli_does_not_know_is_given_the_default_window_not_the_clis_guess(
    team: TeamFactory,
) -> None:
    """For a model name outside its catalog (a gateway's) the CLI reports a 1,000,000-token
    window, a guess: at 170,000 tokens of a 200,000-token model the agent showed 17 % and
    never compacted, until the model refused the prompt. The window is now the default
    (200,000) unless `context_window:` says otherwise; a catalog model keeps the CLI's
    figure (claude-opus-5-5: 1,000,000)."""
    rules: list[dict[str, Any]] = []
    for name in ("gw", "big", "opus"):
        rules += [
            {
                "agent": agent_rule(name),
                "match": SUMMARY_REQUEST,
                "text": "<summary>the big job</summary>",
            },
            {
                "agent": agent_rule(name),
                "match": "big job",
                "text": "big done",
                "usage": {"input_tokens": 170_000, "output_tokens": 10},
            },
        ]
    t = team(
        rules,
        {
            "gw": {"model": "my-gateway/sonnet"},
            "big": {"model": "my-gateway/sonnet", "context_window": 1_000_000},
            "opus": {"model": "claude-opus-5-5"},
        },
    )
    t.up()
    t.wait_ready("gw", "big", "opus")
    for name in ("gw", "big", "opus"):
        assert t.ask(name, "big job") == "big done"
    compacted = t.wait_for(lambda: t.log_events("compacted", "gw"), what="gw compacted")[0]
    assert compacted["before"] == 170_000
    t.wait_for(lambda: context_of(t, "big").get("tokens") == 170_000, what="big's figures")
    t.wait_for(lambda: context_of(t, "opus").get("tokens") == 170_000, what="opus's figures")
    assert context_of(t, "big")["window"] == 1_000_000
    assert context_of(t, "opus")["window"] == 1_000_000
    assert not t.log_events("compacting", "big")
    assert not t.log_events("compacting", "opus")
