"""The relay's can_message rule is the roster's (``AgentSpec.may_message``), for the
``agents`` tool's listing and for a send alike (issue 15.6). A real queue, no claude."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator import errors
from orchestrator.mailbox import AsyncMailbox
from orchestrator.relay import Relay
from orchestrator.roster import load_roster

ROSTER = """\
agents:
  alice:
    prompt: A.
    can_message: [bob]
  bob:
    prompt: B.
  carol:
    prompt: C.
    can_message: [alice]
"""


async def test_agents_says_whom_the_caller_may_message(tmp_path: Path) -> None:
    """Regression: ``may_message`` was computed from each listed agent's own can_message
    (whether carol may message carol), so alice saw carol as reachable and was then refused."""
    (tmp_path / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    roster = load_roster(tmp_path / "agents.yaml")
    async with await AsyncMailbox(tmp_path / "team.db").open() as am:
        for name in roster.agents:
            await am.register(name)
        alice = Relay("alice", am, lambda: roster)
        listed = json.loads((await alice.agents({}))["content"][0]["text"])
        reachable = {row["name"]: row["may_message"] for row in listed}
        assert reachable == {"alice": False, "bob": True, "carol": False}
        for name, allowed in reachable.items():
            assert allowed == roster.agents["alice"].may_message(name)
        bob_sees = json.loads(
            (await Relay("bob", am, lambda: roster).agents({}))["content"][0]["text"]
        )
        assert all(row["may_message"] for row in bob_sees)  # no can_message: everyone

        refused = await alice.send({"to": "carol", "message": "hi"})
        assert refused.get("is_error")
        assert errors.NotAllowed.code in refused["content"][0]["text"]
        unknown = await alice.send({"to": "zed", "message": "hi"})
        assert errors.RecipientUnknown.code in unknown["content"][0]["text"]
        sent = await alice.send({"to": "bob", "message": "hi"})
        assert not sent.get("is_error")
        assert [m.body for m in await am.peek("bob")] == ["hi"]
