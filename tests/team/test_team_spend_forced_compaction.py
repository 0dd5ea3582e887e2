"""A compaction cut by a forced stop: the agent's claude SIGSTOPped while its summary
request hangs, `restart` (`up --grace 1`) (real claude CLI, scripted model)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from team_harness import Team
from test_team_spend import (
    SUMMARY,
    cli_stopped,
    compaction_charged_then_next_turn,
    hung_compaction_rules,
)

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_a_compaction_cut_by_a_forced_stop_is_charged(team: TeamFactory) -> None:
    """The first turn (1,000 tokens, $0.0056) fills the 1,000-token window: the runner
    sends /compact, the summary request hangs, the CLI is SIGSTOPped, `restart` (grace
    1s). The stop waits for the compaction as for a turn (the grace, an interrupt, then
    the force): it waited out the compaction's timeout (turn_timeout, 10 minutes), its
    --grace ignored, and charged nothing of it. The summary request is charged as one cut
    by the CLI's death is (the context in use as input: 900 tokens, $0.0036, an estimate);
    the killed CLI saved nothing (resumed, it continued from the figures it had resumed
    with: $0.0056 after the next turn), so that turn is charged its own $0.0056 (it was
    charged nothing: the last result's figures taken as the baseline)."""
    t = team(
        hung_compaction_rules(),
        {"alice": {"context_window": 1000}},
    )
    t.up(extra=["--grace", "1"])  # what a restart gives a turn (a compaction) in progress
    t.wait_ready("alice")
    assert t.ask("alice", "job 1") == "done"
    t.wait_for(lambda: t.model.requests_matching(SUMMARY), 60, "the summary request")
    with cli_stopped(t):
        t.octy("restart", "alice")
    ended = [(e["reason"], e["detail"]) for e in t.log_events("session_ended", "alice")]
    assert ended == [("stopped", "forced")]
    compaction_charged_then_next_turn(
        t, "forced", tokens=900, usd=0.0036, turn_usd=0.0056, turn_tokens=1_000
    )
