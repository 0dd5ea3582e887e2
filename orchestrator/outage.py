"""One agent's session riding out a queue it cannot use for now (QueueStalled): a NATS
server restarting, a cluster electing a leader for longer than a primitive's own 15 s
of retries, a SQLite file whose write lock another program keeps past the busy timeout
(an sqlite3 shell left in BEGIN), or a full disk.

What the session was doing is stored in the queue (its claimed messages, the request it
answers), so an outage costs time, never the session: the runner tries the step again
once the queue is back instead of ending and restarting the session, which would drop
the turn's answer and have the model do the work again. One warning when the queue is
found out of reach and one line when it is back, however many tries in between.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from orchestrator import errors

T = TypeVar("T")

RETRY_S = 1.0  # between tries of a step the queue refused (each try retries 15 s itself)


class Outage:
    """Whether the queue is out of reach for one runner, and since when."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.since: float | None = None

    def down(self, doing: str, exc: errors.QueueStalled) -> None:
        """A step failed on an unreachable queue: warn once per outage."""
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("queue_out_of_reach", doing=doing, error=str(exc), retry_s=RETRY_S)

    def up(self) -> None:
        """A step went through: the outage (if any) is over."""
        if self.since is not None:
            self.log.info("queue_back", out_s=round(time.monotonic() - self.since, 1))
            self.since = None

    async def retry(self, doing: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step()`` until the queue answers it. Only QueueStalled is tried again
        (the step must be safe to repeat: a reply is written only if absent, a nack
        repeated after a lost answer finds its lease gone); cancellation (a forced stop)
        ends the wait."""
        while True:
            try:
                result = await step()
            except errors.QueueStalled as exc:
                self.down(doing, exc)
                await anyio.sleep(RETRY_S)
                continue
            self.up()
            return result
