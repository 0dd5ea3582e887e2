"""Which agents this supervisor may run: the supervisor's side of the agent leases.

On SQLite the team lives on one machine and the lock file beside the database lets
one supervisor in: every agent is ours (:class:`LocalLeases`). On a NATS queue
several supervisors may share a team, each holding a lease per agent it runs
(:class:`orchestrator.mailbox.nats.lease.AgentLeases`). The supervisor calls the
same few methods either way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from orchestrator import errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.mailbox.backend import AsyncMailboxBackend
    from orchestrator.mailbox.nats.lease import LostCallback
    from orchestrator.roster.queue_setting import QueueSetting


class AgentLeases(Protocol):
    exclusive: bool
    """True: no other supervisor can run this team's agents (SQLite, the lock file)."""

    async def held_elsewhere(self, agent: str) -> errors.AgentHeldElsewhere | None: ...
    async def take(self, agent: str) -> None: ...
    async def release(self, agent: str) -> None: ...
    async def release_all(self) -> None: ...
    async def keep(self, lost: LostCallback) -> None: ...
    async def announce(self) -> None:
        """Say in the team that this supervisor lives (renewed by :meth:`keep`)."""
        ...

    async def leave(self) -> None:
        """This supervisor stops: its presence goes (best effort)."""
        ...

    def holds(self, agent: str) -> bool:
        """This supervisor runs ``agent`` (holds its lease)."""
        ...

    async def write_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        *,
        still: Callable[[], bool] | None = None,
        **fields: Any,
    ) -> errors.AgentHeldElsewhere | None:
        """``mailbox.update_agent(agent, **fields)`` unless another supervisor holds the
        agent (then nothing is written and the holder is returned), checked in the same
        conditional write on NATS: a lease taken between the check and the write refuses
        it. RecipientUnknown if the row is absent. ``still()`` False (asked before each
        try of the write): stale, nothing written, None returned."""
        ...

    async def register_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
    ) -> errors.AgentHeldElsewhere | None:
        """``mailbox.register(...)`` (``meta`` None: the row's kept) of a row deleted
        under us, or of an agent a reload adds or changes, unless another supervisor
        holds the agent (then nothing is written and the holder is returned), checked in
        the same conditional write on NATS, as :meth:`write_row`."""
        ...

    async def supervisor_gone(self, host: str, pid: int, sent_at: float) -> str | None:
        """Why the supervisor on ``host`` with ``pid`` is known not to run any more, or
        None while it may (alive, or too soon to tell for a command sent at ``sent_at``)."""
        ...

    def gone_hint(self) -> str:
        """What the user can do about a gone supervisor's agents, for the error."""
        ...


class LocalLeases:
    """One supervisor per team (the lock file): every agent is this supervisor's."""

    exclusive = True

    async def held_elsewhere(self, agent: str) -> errors.AgentHeldElsewhere | None:
        return None

    async def take(self, agent: str) -> None:
        return None

    async def release(self, agent: str) -> None:
        return None

    async def release_all(self) -> None:
        return None

    async def keep(self, lost: LostCallback) -> None:
        await anyio.sleep_forever()

    async def announce(self) -> None:
        return None

    async def leave(self) -> None:
        return None

    def holds(self, agent: str) -> bool:
        return True

    async def write_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        *,
        still: Callable[[], bool] | None = None,
        **fields: Any,
    ) -> errors.AgentHeldElsewhere | None:
        # Every row is ours: nothing asked. One write, never tried again here (a refused
        # one is owed to the housekeeping, which writes the state then).
        if still is None or still():
            await mailbox.update_agent(agent, **fields)
        return None

    async def register_row(
        self,
        mailbox: AsyncMailboxBackend,
        agent: str,
        description: str,
        *,
        pid: int | None,
        state: str,
        meta: dict[str, Any] | None,
    ) -> errors.AgentHeldElsewhere | None:
        await mailbox.register(agent, description, pid=pid, state=state, meta=meta)
        return None

    async def supervisor_gone(self, host: str, pid: int, sent_at: float) -> str | None:
        # We hold the team's lock: no other supervisor of this database runs.
        return f"the supervisor pid {os.getpid()} holds this team's lock now"

    def gone_hint(self) -> str:
        return "this supervisor runs the team's agents now; send the command again"


def agent_leases(
    mailbox: AsyncMailboxBackend, holder: str, setting: QueueSetting | None
) -> AgentLeases:
    """The leases for the queue the supervisor opened (``setting``: the roster's queue)."""
    if setting is None:
        return LocalLeases()
    from orchestrator.mailbox.nats.lease import AgentLeases as NatsLeases  # noqa: PLC0415
    from orchestrator.mailbox.nats.mailbox import NatsMailbox  # noqa: PLC0415

    assert isinstance(mailbox, NatsMailbox)
    return NatsLeases(mailbox, holder, lease_s=setting.agent_lease_s)
