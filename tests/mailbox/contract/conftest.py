"""The queue's conformance suite: every test here runs against each backend.

``q`` is a fresh queue per test (a new SQLite file, or a new bucket on one JetStream
server started for the session) with ``alice``, ``bob`` and ``carol`` registered, on a
clock the test moves by hand. A backend plugs in by adding a branch to ``_open`` and a
name to ``BACKENDS``; its tests are the same functions, unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from contract_openers import Opener
from mailbox_workers.support import FakeClock
from natsserver import NatsCluster, NatsServer

from orchestrator.mailbox import AsyncMailboxBackend
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox

BACKENDS = ("sqlite", "nats")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A three-node JetStream cluster of real nats-servers, for one test."""
    c = NatsCluster(tmp_path / "cluster").start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opener(
    backend_name: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[Opener]:
    o = Opener(backend_name, tmp_path, clock, request)
    yield o
    for backend in reversed(o.opened):
        await backend.aclose()


@pytest.fixture
async def backend(opener: Opener) -> AsyncMailboxBackend:
    """A fresh, empty queue."""
    return await opener.open()


@pytest.fixture
async def q(backend: AsyncMailboxBackend) -> AsyncMailboxBackend:
    """A fresh queue with alice, bob and carol registered."""
    for name in ("alice", "bob", "carol"):
        await backend.register(name)
    return backend


@pytest.fixture
async def nats_mb(nats_server: NatsServer) -> AsyncIterator[NatsMailbox]:
    """A NATS queue alone (a bucket of its own on the session's server) with alice and bob
    registered: for the NATS-only tests that take its store away under it."""
    config = NatsConfig((nats_server.url,), namespace=f"t{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as opened:
        for name in ("alice", "bob"):
            await opened.register(name)
        yield opened
