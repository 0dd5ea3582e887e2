"""A blocking wait for a reply that its caller can end (`still`), on both backends: the
CLI's `ask`, `restart`... stop waiting once the supervisor that would answer is gone.

It used to be done by cutting the wait into one-second waits and looking at the lock
between them; each of those cleared the request's wait-for edge on its way out, so a
cycle through a waiting script (`ask --as bob alice` while alice asks bob) was no longer
refused after the first second. One wait now asks `still` itself."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natsserver import NatsServer

from orchestrator import errors
from orchestrator.mailbox import Mailbox, MailboxBackend
from orchestrator.mailbox.nats import NatsConfig
from orchestrator.mailbox.nats.blocking import BlockingNatsMailbox


@pytest.fixture(params=["sqlite", "nats"])
def mb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailboxBackend]:
    if request.param == "sqlite":
        opened: Any = Mailbox(tmp_path / "team.db")
    else:
        server: NatsServer = request.getfixturevalue("nats_server")
        opened = BlockingNatsMailbox(
            NatsConfig((server.url,), namespace=f"w{uuid.uuid4().hex[:8]}")
        )
    with opened:
        for name in ("alice", "bob"):
            opened.register(name, "")
        yield opened


def test_the_wait_keeps_its_edge_until_still_says_no(mb: MailboxBackend) -> None:
    request = mb.request("bob", "alice", "q", wait_s=120)
    asked = threading.Semaphore(0)
    go_on = threading.Event()
    go_on.set()

    def still() -> bool:
        asked.release()
        return go_on.is_set()

    outcome: list[BaseException | object] = []

    def wait() -> None:
        try:
            outcome.append(mb.wait_for_reply(request.id, 120, still=still))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    for _ in range(3):  # three looks at `still`: past the one-second slices of before
        assert asked.acquire(timeout=60)
    with pytest.raises(errors.WouldDeadlock):  # bob still waits on alice
        mb.request("alice", "bob", "back?", wait_s=30)
    go_on.clear()
    waiter.join(60)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], errors.WaitStopped)
    mb.request("alice", "bob", "now?", wait_s=30)  # the edge went with the wait


def test_a_reply_that_came_in_is_returned_even_when_still_says_no(mb: MailboxBackend) -> None:
    request = mb.request("bob", "alice", "q", wait_s=30)
    mb.reply(request.id, "alice", "here")
    assert mb.wait_for_reply(request.id, 30, still=lambda: False).body == "here"
