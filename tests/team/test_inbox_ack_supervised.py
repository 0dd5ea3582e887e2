"""`inbox NAME --ack` takes delivery. Of an agent of the running team it took the messages
that agent was to handle: found as a new user (`stop lead`; `ask lead` says a notice "waits
in its inbox"; `send lead …`; `inbox lead --ack` printed it, acked it, and lead never saw
it). Refused now, as `unregister` of such an agent is; a peek stays allowed."""

from __future__ import annotations

import json
from typing import Any

from team_harness import agent_rule


def test_inbox_ack_does_not_take_a_running_teams_agent_mail(team: Any) -> None:
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}})
    t.up()
    t.wait_ready("a")
    t.octy("stop", "a")
    sent = json.loads(t.octy("send", "a", "keep this for a", "--json").stdout)["message"]["id"]

    refused = t.octy("inbox", "a", "--ack", check=False)
    assert refused.returncode == 1, refused
    assert "agent of the running team" in refused.stderr
    assert "keep this for a" not in refused.stdout
    assert "keep this for a" in t.octy("inbox", "a").stdout  # a peek: still there
    with t.mailbox() as mb:
        assert mb.get(sent).status == "pending"
