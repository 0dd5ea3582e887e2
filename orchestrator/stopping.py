"""Stopping one agent's session: nothing more is claimed or connected at once, a turn
in progress gets its grace, then the CLI is interrupted, and if it does not end the
turn either, the session is cancelled (forced).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import anyio
from claude_agent_sdk import ClaudeSDKClient, ClaudeSDKError

from orchestrator.mailbox import Message

FORCE_AFTER_INTERRUPT_S = 5.0  # after an interrupt, give the CLI this long to end the turn


class Stopping:
    """One runner's stop: ``requested`` once asked, ``interrupted`` once a stop cut the
    turn in progress short; ``session_scope`` is the session's, cancelled when forced."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.requested = anyio.Event()
        self.interrupted = False
        self.session_scope: anyio.CancelScope | None = None
        self._grace_deadline = math.inf
        self._turn_over = anyio.Event()  # a fresh one per turn; set when the turn ends
        self._turn_over.set()

    def request(self, grace_s: float) -> None:
        """Stop claiming; let a running turn finish within ``grace_s``, then interrupt it."""
        self._grace_deadline = min(self._grace_deadline, time.monotonic() + grace_s)
        self.requested.set()

    def force(self) -> None:
        self.requested.set()
        if self.session_scope is not None:
            self.session_scope.cancel()

    def turn_started(self) -> None:
        self._turn_over = anyio.Event()

    def turn_ended(self) -> None:
        self._turn_over.set()

    async def interrupt_after_grace(
        self, client: ClaudeSDKClient, inflight: Callable[[], list[Message]]
    ) -> None:
        """Once a stop is asked: the turn in progress (``inflight``: its messages) gets the
        grace left, then an interrupt, then FORCE_AFTER_INTERRUPT_S before the force."""
        await self.requested.wait()
        turn_over = self._turn_over
        with anyio.move_on_after(max(0.0, self._grace_deadline - time.monotonic())):
            await turn_over.wait()
        if turn_over.is_set():
            return
        self.interrupted = True
        self.log.warning("interrupting", messages=[m.id for m in inflight()])
        with anyio.move_on_after(FORCE_AFTER_INTERRUPT_S):
            try:
                await client.interrupt()
            except ClaudeSDKError as exc:
                self.log.warning("interrupt_failed", error=str(exc))
            await turn_over.wait()
            return
        self.force()
