"""One bad message must not take others with it, or cost without end (issue 16 B), and a model
that cannot be reached is visible at once (issue 9.2). Real claude CLI, scripted model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

from orchestrator.mailbox import MAX_BODY_BYTES

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
