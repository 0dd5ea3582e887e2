"""`inbox NAME --ack` is refused for an agent of the running team (its messages are the
agent's to handle). An agent removed from agents.yaml while the team was down is no agent
of the team the next `up` runs: nobody handles its mail, and its row keeps the `supervised`
mark of the team that ran it. `inbox --ack` of it was refused ("an agent of the running
team"), so its queued messages could not be taken by anyone while the team ran; and
`unregister` of it was refused the same way."""

from __future__ import annotations

import json
from typing import Any

from team_harness import agent_rule


def test_inbox_ack_of_an_agent_no_longer_in_the_roster_is_allowed(team: Any) -> None:
    t = team([{"agent": agent_rule("a"), "text": "a is up"}], {"a": {}, "b": {}})
    t.up("a")
    t.wait_ready("a")
    t.octy("send", "b", "for the old b")
    t.octy("down")
    assert t.wait_exit() == 0
    t.write_roster({"a": {}})  # b retired while the team was down
    t.up()
    t.wait_ready("a")

    done = t.octy("inbox", "b", "--ack", "--json", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "for the old b" in json.dumps(json.loads(done.stdout))
    refused = t.octy("inbox", "a", "--ack", check=False)  # still refused for a
    assert refused.returncode == 1, refused
    # And `unregister b`, refused with "remove it from agents.yaml (the team then removes
    # it)": done already, and the team removes nothing it was not started with.
    gone = t.octy("unregister", "b", check=False)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "b" not in t.states()
    assert t.octy("unregister", "a", check=False).returncode == 1
