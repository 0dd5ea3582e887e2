"""Open the team's queue from its roster: SQLite by default, NATS JetStream when the
roster has ``queue: nats://...``. The one place that chooses a backend."""

from __future__ import annotations

import sys
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
    JetStream (QueueUnavailable). Nothing to do for SQLite. (Which agents this
    supervisor may run is decided per agent as it starts them: agent_leases.py.)"""
    if roster.queue is None:
        return

    import anyio  # noqa: PLC0415 - the event loop only for a NATS team

    async def probe() -> None:
        async with open_queue(roster):
            pass

    anyio.run(probe)


@contextmanager
def open_sync(
    place: QueuePlace, *, readonly: bool = False, create: bool = True, quiet: bool = False
) -> Iterator[MailboxBackend]:
    """The synchronous client the CLI verbs use, for either backend. (``readonly`` and
    ``create`` are SQLite's: a NATS bucket is created on first use, and JetStream
    permissions, not the client, decide who may write.) A NATS bucket made here is said
    in one line on stderr (:func:`made_bucket_note`), unless ``quiet`` (`top`'s screen):
    a verb met a server that lost the team's store, or a `namespace:` naming no team,
    and showed an empty queue as the team's."""
    if isinstance(place, Path):
        with Mailbox(place, create=create, readonly=readonly) as mailbox:
            yield mailbox
        return
    from orchestrator.mailbox.nats import NatsConfig  # noqa: PLC0415 - only NATS teams load nats-py
    from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox  # noqa: PLC0415

    config = NatsConfig.from_setting(place)
    with BlockingNatsMailbox(config) as blocking:
        if blocking.made_bucket and not quiet:
            print(made_bucket_note(config.namespace, config.display), file=sys.stderr)
        yield cast(MailboxBackend, blocking)


def made_bucket_note(namespace: str, servers: str) -> str:
    """What a CLI verb says when it found no NATS bucket and made it."""
    return (
        f"octy-orchestrate: no bucket '{namespace}' on {servers}: made it, empty (a new "
        "team; else the server restarted without its store, and what was queued is lost, "
        "or `namespace:` in agents.yaml names another team)"
    )


@asynccontextmanager
async def open_queue(
    roster: Roster, *, holder: str | None = None
) -> AsyncIterator[AsyncMailboxBackend]:
    """``async with open_queue(roster) as mailbox``; QueueUnavailable when a NATS server
    cannot be reached or has no JetStream. ``holder`` (the supervisor's instance) also
    makes the local file a NATS team's supervisor still needs."""
    import anyio.to_thread  # noqa: PLC0415 - see the imports above

    from orchestrator.mailbox.aio import AsyncMailbox  # noqa: PLC0415

    if roster.queue is None:
        async with AsyncMailbox(roster.database) as mailbox:
            yield mailbox
        return
    from orchestrator.mailbox.nats import NatsConfig, NatsMailbox  # noqa: PLC0415 - only NATS teams load nats-py

    async with NatsMailbox(NatsConfig.from_setting(roster.queue)) as nats_mailbox:
        if holder is not None:
            # The supervisor's local file still holds what is per machine: the budget
            # ledger (spend) lives in the roster's `database`, created here as usual.
            await anyio.to_thread.run_sync(_create_local, roster.database)
            if nats_mailbox.replicas_differ is not None:
                # Said once per start, by the supervisor (its log; `up`'s terminal), and
                # shown by `ps` while it lasts: not by every verb that opens the queue.
                import structlog  # noqa: PLC0415 - a NATS supervisor's only

                structlog.get_logger().warning(
                    "queue_replicas_differ", **nats_mailbox.replicas_differ
                )
        yield nats_mailbox
