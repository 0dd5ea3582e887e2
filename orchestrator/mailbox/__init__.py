"""The embedded SQLite message queue between agents, scripts and the CLI.

``Mailbox`` is the synchronous client, ``AsyncMailbox`` the one for event
loops; both speak to one SQLite file in WAL mode that any process (or plain
SQL from another language) may open. See queue/README.md for the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.mailbox.backend import AsyncMailboxBackend, MailboxBackend
from orchestrator.mailbox.model import (
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    KEEP,
    MAX_BODY_BYTES,
    MAX_BODY_DEPTH,
    SUPERVISOR,
    SUPERVISOR_OWNER_PREFIX,
    USER,
    AgentInfo,
    Message,
    SweepResult,
    new_id,
)
from orchestrator.mailbox.schema import SCHEMA_VERSION
from orchestrator.mailbox.store import Mailbox

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "KEEP",
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "SCHEMA_VERSION",
    "SUPERVISOR",
    "SUPERVISOR_OWNER_PREFIX",
    "USER",
    "AgentInfo",
    "AsyncMailbox",
    "AsyncMailboxBackend",
    "Mailbox",
    "MailboxBackend",
    "Message",
    "SweepResult",
    "new_id",
]

if TYPE_CHECKING:
    from orchestrator.mailbox.aio import AsyncMailbox


def __getattr__(name: str) -> Any:
    """``AsyncMailbox`` on first use: it pulls in asyncio and anyio, which a script or
    CLI verb writing one row never needs (issue 14: the CLI's start-up)."""
    if name == "AsyncMailbox":
        from orchestrator.mailbox.aio import AsyncMailbox  # noqa: PLC0415 - lazy on purpose

        return AsyncMailbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # the SQLite clients satisfy the backend interfaces (checked by mypy)
    _sync_backend: type[MailboxBackend] = Mailbox
    _async_backend: type[AsyncMailboxBackend] = AsyncMailbox
