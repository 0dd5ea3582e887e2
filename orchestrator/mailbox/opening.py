"""Open the team's queue from its roster: SQLite by default, NATS JetStream when the
roster has ``queue: nats://...``. The one place that chooses a backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

from orchestrator.mailbox.backend import AsyncMailboxBackend, MailboxBackend
from orchestrator.mailbox.store import Mailbox

# The CLI opens the queue to write one row: the event loop (anyio, the async client) and
# the roster's modules load only where they are used (issue 14: the CLI's start-up).
if TYPE_CHECKING:
    from orchestrator.roster import Roster
    from orchestrator.roster.queue_setting import QueueSetting

QueuePlace: TypeAlias = "Path | QueueSetting"
"""Where a queue is: a SQLite file, or the roster's ``queue:`` (NATS)."""


def _create_local(path: Path) -> None:
    with Mailbox(path):
        pass


def place_of(roster: Roster) -> QueuePlace:
    return roster.database if roster.queue is None else roster.queue


def check_queue(roster: Roster) -> None:
    """Reach the roster's NATS queue once (connect, open the bucket) so ``up`` says at
    once, in the terminal, when the server is unreachable, refuses the login or has no
    JetStream (QueueUnavailable), or when a supervisor on another machine runs the team
    (TeamHeldElsewhere). Nothing to do for SQLite."""
    if roster.queue is None:
        return

    import anyio  # noqa: PLC0415 - the event loop only for a NATS team

    from orchestrator.mailbox.nats.lease import current_holder, refused  # noqa: PLC0415
    from orchestrator.mailbox.nats.mailbox import NatsMailbox  # noqa: PLC0415

    async def probe() -> None:
        async with open_queue(roster) as mailbox:
            assert isinstance(mailbox, NatsMailbox)
            record = await current_holder(mailbox)
            if record is not None:
                raise refused(mailbox, record)

    anyio.run(probe)


@contextmanager
def open_sync(
    place: QueuePlace, *, readonly: bool = False, create: bool = True
) -> Iterator[MailboxBackend]:
    """The synchronous client the CLI verbs use, for either backend. (``readonly`` and
    ``create`` are SQLite's: a NATS bucket is created on first use, and JetStream
    permissions, not the client, decide who may write.)"""
    if isinstance(place, Path):
        with Mailbox(place, create=create, readonly=readonly) as mailbox:
            yield mailbox
        return
    from orchestrator.mailbox.nats import NatsConfig  # noqa: PLC0415 - only NATS teams load nats-py
    from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox  # noqa: PLC0415

    with BlockingNatsMailbox(NatsConfig.from_setting(place)) as blocking:
        yield cast(MailboxBackend, blocking)


@asynccontextmanager
async def open_queue(
    roster: Roster, *, holder: str | None = None
) -> AsyncIterator[AsyncMailboxBackend]:
    """``async with open_queue(roster) as mailbox``; QueueUnavailable when a NATS server
    cannot be reached or has no JetStream. With ``holder`` (the supervisor), a NATS
    team's lease is held for as long as the queue is open: TeamHeldElsewhere if
    another supervisor, on any machine, holds it. (SQLite: the lock file does that.)"""
    import anyio.to_thread  # noqa: PLC0415 - see the imports above

    from orchestrator.mailbox.aio import AsyncMailbox  # noqa: PLC0415

    if roster.queue is None:
        async with AsyncMailbox(roster.database) as mailbox:
            yield mailbox
        return
    from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: PLC0415 - only NATS teams load nats-py
    from orchestrator.mailbox.nats.lease import TeamLease  # noqa: PLC0415

    async with NatsMailbox(NatsConfig.from_setting(roster.queue)) as nats_mailbox:
        if holder is None:
            yield nats_mailbox
            return
        lease = await TeamLease(nats_mailbox, holder).take()
        # The supervisor's local file still holds what is per machine: the budget
        # ledger (spend) lives in the roster's `database`, created here as usual.
        await anyio.to_thread.run_sync(_create_local, roster.database)
        try:
            yield nats_mailbox
        finally:
            await lease.release()
