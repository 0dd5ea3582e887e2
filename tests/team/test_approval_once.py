"""One grant, one call: an approval acted on is recorded in the queue, so the turn that a
restart redelivers, making the same call again, asks afresh instead of running it twice.
Real CLI, scripted model, a real SIGKILL of the supervisor."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from team_harness import Team, agent_rule
from test_approvals import cli, pending, wait_pending

from orchestrator.approval_wait import USED_META

TeamFactory = Callable[..., Team]


@pytest.mark.cli
def test_a_grant_acted_on_is_not_used_again_after_a_supervisor_sigkill(
    team: TeamFactory, tmp_path: Path
) -> None:
    """approve -> the command runs; the supervisor is SIGKILLed mid-turn; after `up` the
    redelivered turn makes the same call: a new approval is asked (the first one is used),
    and denying it leaves the command run once."""
    ran = tmp_path / "ran.txt"
    a = agent_rule("alpha")
    t = team(
        [
            # The turn is still in flight (the model "thinks") when the supervisor dies.
            {"agent": a, "tool_result": r"DEPLOYED-(\w+)", "text": "done {1}", "delay": 600},
            {"agent": a, "tool_result": r"(?s)^(.+)$", "text": "REFUSED {1}"},
            {
                "agent": a,
                "match": r"deploy (\w+)",
                "tool_use": {
                    "name": "Bash",
                    "input": {"command": "echo run >> ran.txt; echo DEPLOYED-{1}"},
                },
            },
        ],
        {"alpha": {"tools": ["Bash"], "approve": ["Bash"]}},
    )
    t.up()
    t.wait_ready("alpha")
    request = t.request("alpha", "deploy prod")
    (first,) = wait_pending(t)
    assert cli(tmp_path, "approve", first["id"]).returncode == 0
    t.wait_for(lambda: ran.exists() and ran.read_text() == "run\n", 60, "the command run")
    with t.mailbox() as mb:  # recorded before the hook said "allow"
        assert mb.agent("alpha").meta[USED_META] == [first["id"]]  # type: ignore[union-attr]
    assert t.proc is not None
    os.kill(t.proc.pid, signal.SIGKILL)
    t.proc.wait(30)

    t.up()
    second = t.wait_for(
        lambda: [r for r in pending(t) if r["id"] != first["id"]], 90, "a second approval"
    )[0]
    assert ran.read_text() == "run\n"  # not run again on the used grant
    assert cli(tmp_path, "deny", second["id"], "--reason", "once is enough").returncode == 0
    with t.mailbox() as mb:
        answer = mb.wait_for_reply(request.id, 60).body
    assert "denied by user: once is enough" in answer
    assert ran.read_text() == "run\n"
