"""The queue on NATS JetStream: the same contract as the SQLite ``AsyncMailbox``, for a
team spread over several machines. See records.py for how state maps onto one
key-value bucket, and the README's NATS section for when to choose it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.mailbox.nats.connect import NatsConfig
from orchestrator.mailbox.nats.mailbox import NatsMailbox

__all__ = ["NatsConfig", "NatsMailbox"]

if TYPE_CHECKING:  # the JetStream client satisfies the same interface (checked by mypy)
    from orchestrator.mailbox.backend import AsyncMailboxBackend

    _async_backend: type[AsyncMailboxBackend] = NatsMailbox
