"""What the asker reads when its peer's session dies on the request every time (review
I.4): turn_failed, as the README says of a peer whose turn kept failing. Real SQLite
queue, the runner's own GiveBack."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from orchestrator import errors
from orchestrator.give_back import GiveBack
from orchestrator.mailbox import AsyncMailbox
from orchestrator.outage import Outage


async def test_a_request_whose_session_dies_every_time_is_turn_failed(tmp_path: Path) -> None:
    async with AsyncMailbox(tmp_path / "t.db") as mb:
        for name in ("a", "b"):
            await mb.register(name)
        log = structlog.get_logger().bind(agent="b")
        giving = GiveBack(mb, "b", "b-session", log, Outage(log))
        notice = await mb.send("a", "b", "fyi")
        req = await mb.request("a", "b", "question", wait_s=60)
        for _ in range(req.max_attempts):
            held = await mb.claim("b", owner="b-session", limit=10)
            await giving.inflight(held, failed=True)
        with pytest.raises(errors.TurnFailed) as got:
            await mb.wait_for_reply(req.id, 5)
        assert got.value.code == "turn_failed"
        assert f"session died on it {req.max_attempts} times" in str(got.value)
        assert (await mb.get(req.id)).status == "dead"
        assert (await mb.get(notice.id)).status == "dead"  # a notice ends dead, as before
