"""What the contract tests import by name: :class:`Opener`, :func:`everything`,
:func:`lose_the_store` and :func:`cli_roster`.

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


async def lose_the_store(mb: NatsMailbox) -> None:
    """What a server restarted without its JetStream folder has: no bucket."""
    await mb.nc.jetstream().delete_stream(f"KV_{mb.config.namespace}")


def cli_roster(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> NatsConfig:
    """A roster of one agent (bob) on the server at ``url``, in a namespace of its own, in
    the current folder: what the CLI verbs find, as a user's team folder."""
    namespace = f"{prefix}{uuid.uuid4().hex[:8]}"
    (tmp_path / "agents.yaml").write_text(
        f"name: t\nqueue:\n  servers: {url}\n  namespace: {namespace}\n"
        "agents:\n  bob:\n    prompt: answers\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTY_DB", raising=False)
    return NatsConfig((url,), namespace=namespace)
