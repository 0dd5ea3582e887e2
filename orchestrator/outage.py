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

from orchestrator import errors

T = TypeVar("T")

RETRY_S = 1.0  # between tries of a step the queue refused (each try retries 15 s itself)
TOOL_RETRY_S = 45.0
"""How long a relay tool (send, ask, reply) keeps trying a write the queue refused
before the model reads the error: a leader election takes seconds, a node's death a
reconnect; a queue out of reach for longer is news for the model and the operator."""


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

    async def retry(
        self, doing: str, step: Callable[[], Awaitable[T]], *, within_s: float | None = None
    ) -> T:
        """``step()`` until the queue answers it. Only QueueStalled is tried again
        (the step must be safe to repeat: a reply is written only if absent, a nack
        repeated after a lost answer finds its lease gone, a message sent under the
        id chosen for it is stored once); cancellation (a forced stop) ends the wait.
        With ``within_s``, the error of a try failing after that long is raised."""
        import anyio  # noqa: PLC0415 - the CLI imports this module; anyio is not its to load

        deadline = None if within_s is None else time.monotonic() + within_s
        while True:
            try:
                result = await step()
            except errors.QueueStalled as exc:
                self.down(doing, exc)
                if deadline is not None and time.monotonic() + RETRY_S > deadline:
                    self.since = None  # the next call warns again: the caller heard of it
                    raise
                await anyio.sleep(RETRY_S)
                continue
            self.up()
            return result


def retry_blocking(
    step: Callable[[], T], *, told: Callable[[errors.QueueStalled], None], within_s: float
) -> T:
    """:meth:`Outage.retry` for the CLI's blocking calls: ``step()`` again while the queue
    refuses it (QueueStalled), ``told`` the first time, for up to ``within_s``; then
    the error is raised. The step must be safe to repeat (a message under its chosen id)."""
    deadline = time.monotonic() + within_s
    said = False
    while True:
        try:
            return step()
        except errors.QueueStalled as exc:
            if time.monotonic() + RETRY_S > deadline:
                raise
            if not said:
                told(exc)
                said = True
        time.sleep(RETRY_S)
