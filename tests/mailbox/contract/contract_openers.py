"""What the contract tests import by name: :class:`Opener` and :func:`everything`.

Here, not in conftest.py: a test module's `from conftest import Opener` found another
folder's conftest first (tests/cli/conftest.py) when one pytest run collected both
folders, and the run stopped at an ImportError. This module's name is the only one of
its kind under tests/.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mailbox_workers.support import FakeClock
from natsserver import NatsServer

from orchestrator.mailbox import AsyncMailbox, AsyncMailboxBackend
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox


class Opener:
    """Opens more clients on the same queue (a second process, another machine)."""

    def __init__(
        self, name: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
    ) -> None:
        self.name = name
        self.path = tmp_path / "team.db"
        self.clock = clock
        self.namespace = f"t{uuid.uuid4().hex[:12]}"
        self.request = request
        self.opened: list[AsyncMailboxBackend] = []

    async def open(self) -> AsyncMailboxBackend:
        backend: AsyncMailboxBackend
        if self.name == "sqlite":
            backend = await AsyncMailbox(self.path, clock=self.clock).open()
        else:
            server: NatsServer = self.request.getfixturevalue("nats_server")
            config = NatsConfig((server.url,), namespace=self.namespace)
            backend = await NatsMailbox(config, clock=self.clock).open()
        self.opened.append(backend)
        return backend


async def everything(q: AsyncMailboxBackend) -> list[object]:
    """The whole visible state, to check that a refused call wrote nothing."""
    return [await q.list(limit=1_000_000), await q.agents()]
