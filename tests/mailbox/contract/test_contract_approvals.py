"""Contract: an approval's grant is used once, on every backend. The agent's side of
approvals (orchestrator.approval_wait) keeps the grants it acted on in the queue, so a new
session (after a restart) reuses only an answer nobody acted on yet."""

from __future__ import annotations

import time
from typing import Any

import anyio
from contract_openers import Opener
from mailbox_workers.support import FakeClock

from orchestrator.approval_wait import USED_META, Approvals
from orchestrator.approvals import key_of
from orchestrator.lifecycle import RunnerEvent
from orchestrator.mailbox import AsyncMailboxBackend, Message

Q = AsyncMailboxBackend
CALL = ("Bash", {"command": "git push"})


async def _no_event(_event: RunnerEvent, _data: dict[str, Any]) -> None:
    return None


def session(q: Q) -> Approvals:
    """A fresh session of agent alice whose approver is bob (nothing in memory)."""
    return Approvals("alice", q, lambda: ("bob", 600.0), lambda: None, _no_event)


async def asked_besides(q: Q, known: set[str]) -> Message:
    """The first approval request of alice's not in ``known``, once it is in the queue."""
    with anyio.fail_after(30):
        while True:
            fresh = [m for m in await q.list(sender="alice") if m.id not in known]
            if fresh:
                return fresh[0]
            await anyio.sleep(0.02)


async def test_a_grant_is_used_once_across_sessions(q: Q, opener: Opener, clock: FakeClock) -> None:
    clock.now = time.time()  # the wait compares the request's age with the real clock
    tool, tool_input = CALL
    # Asked by a session that died before the answer came: the answer is nobody's yet.
    asked = await q.request(
        "alice",
        "bob",
        {"approval": {"key": key_of("alice", tool, tool_input, None), "tool": tool}},
    )
    await q.reply(asked.id, "bob", {"approval": "granted"})
    assert await session(q).decide(tool, tool_input, None) == (True, "approved by bob")
    info = await q.agent("alice")
    assert info is not None
    assert info.meta[USED_META] == [asked.id]

    # The session after a restart makes the same call: it asks again, from another
    # client too (another process, another machine: only the queue knows).
    other = await opener.open()
    result: list[tuple[bool, str]] = []
    async with anyio.create_task_group() as tg:

        async def decide() -> None:
            result.append(await session(other).decide(tool, tool_input, None))

        tg.start_soon(decide)
        fresh = await asked_besides(q, {asked.id})
        await q.reply(fresh.id, "bob", {"approval": "denied", "reason": "once"})
    assert result == [(False, "denied by bob: once")]
    info = await q.agent("alice")
    assert info is not None
    assert info.meta[USED_META] == [asked.id]  # a denial is not a use


async def test_a_call_too_big_for_a_body_is_asked_with_its_input_shortened(
    q: Q, clock: FakeClock
) -> None:
    """A 2 MiB Write: the request carries a shortened input (the queue takes at most 1 MiB),
    its key is over the whole input, and the grant lets that call run."""
    clock.now = time.time()
    content = "x" * (2 * 1024 * 1024)
    tool_input = {"file_path": "big.txt", "content": content}
    result: list[tuple[bool, str]] = []
    async with anyio.create_task_group() as tg:

        async def decide() -> None:
            result.append(await session(q).decide("Write", tool_input, None))

        tg.start_soon(decide)
        asked = await asked_besides(q, set())
        fields = asked.body["approval"]
        assert fields["key"] == key_of("alice", "Write", tool_input, None)
        assert fields["input_shortened"] is True
        assert fields["input"]["file_path"] == "big.txt"
        assert fields["input"]["content"].startswith("x" * 1000)
        assert "more characters, cut by octy-orchestrate" in fields["input"]["content"]
        await q.reply(asked.id, "bob", "approved")
    assert result == [(True, "approved by bob: approved")]
