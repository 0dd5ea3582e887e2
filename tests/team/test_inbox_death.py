"""A claude CLI that dies while its agent's inbox is in the middle of a claim: the death is
seen at once, not after the idle wait that follows an empty claim (30 s). The supervisor
runs in this process (as embedding does), with the real CLI against the scripted model;
the CLI is killed with a real SIGKILL from inside the claim, so the death always lands
there, whatever the timing.

No clock: what is asserted is whether an idle wait began after the death was told."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from team_harness import agent_rule

from orchestrator.inbox import Inbox
from orchestrator.mailbox import AsyncMailbox
from orchestrator.roster import Roster, load_roster
from orchestrator.supervisor import Supervisor

pytestmark = [
    # session_options ignores it once, at import; pytest's "error" filter comes back each test
    pytest.mark.filterwarnings("ignore::claude_agent_sdk.CanUseToolShadowedWarning"),
    pytest.mark.cli,
    pytest.mark.slow,
]


def write_roster(folder: Path) -> Roster:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": "death",
        "defaults": {"backoff": {"initial": "50ms", "max": "200ms"}},
        "agents": {"a": {"prompt": "You are a.", "description": "a", "sandbox": False}},
    }
    (folder / "agents.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_roster(folder / "agents.yaml")


async def test_a_cli_that_dies_during_a_claim_is_restarted_without_an_idle_wait(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripted_model: Any,
    claude_env: Any,
) -> None:
    """The CLI's death wakes the inbox (turn_stream.pump); a wake that came while the claim
    was in the queue found no wait to cut short and was lost: the empty claim was followed
    by a 30 s wait for messages before the session looked at what the CLI had said, and
    the restart came that much later (measured: 30.0 s from the kill to the restart; 0.01 s
    now). Here the first claim of a's first session kills its CLI and returns only once
    the death has been told to the inbox."""
    model = scripted_model({"rules": [{"agent": agent_rule("a"), "text": "a here"}]})
    for key, value in claude_env(model).items():
        monkeypatch.setenv(key, value)
    for key in ("OCTY_DB", "OCTY_AGENT"):
        monkeypatch.delenv(key, raising=False)
    roster = write_roster(tmp_path / "team")
    sup = Supervisor(roster, watch_roster=False)

    told = anyio.Event()  # the death told to the inbox (its wake)
    killed_at: list[float] = []
    waits_after_death: list[str] = []
    real_wake, real_claim, real_wait = (
        Inbox.wake,
        AsyncMailbox.claim,
        AsyncMailbox.wait_for_messages,
    )

    def wake(self: Inbox) -> None:
        if killed_at:
            told.set()
        real_wake(self)

    async def claim(self: AsyncMailbox, recipient: str, **kwargs: Any) -> Any:
        slot = sup.slots.get("a")
        runner = slot.runner if slot is not None else None
        if recipient == "a" and not killed_at and runner is not None and runner.pid:
            killed_at.append(time.monotonic())
            os.kill(runner.pid, signal.SIGKILL)
            with anyio.fail_after(60):
                await told.wait()
        return await real_claim(self, recipient, **kwargs)

    async def wait_for_messages(self: AsyncMailbox, recipient: str, timeout_s: float) -> bool:
        if recipient == "a" and told.is_set():
            waits_after_death.append(recipient)
        return await real_wait(self, recipient, timeout_s)

    monkeypatch.setattr(Inbox, "wake", wake)
    monkeypatch.setattr(AsyncMailbox, "claim", claim)
    monkeypatch.setattr(AsyncMailbox, "wait_for_messages", wait_for_messages)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sup.run)
        with anyio.fail_after(120):
            while sup.slots.get("a") is None or sup.slots["a"].life.restart_count < 1:
                await sup.state_changed.wait()
        sup.stop()
        assert killed_at, "a's CLI was never killed mid-claim"
        print(f"from the kill to the restart: {time.monotonic() - killed_at[0]:.3f}s")  # reported
    assert waits_after_death == [], "an idle wait began after the CLI's death was told"
