"""The conditional writes of the registry and the leases through a NATS server lost
mid-write (records.update, records.create_guarded, lease.AgentLeases._claim_row): each
is tried again in faults.retrying's one loop, within its one budget. A real
nats-server; the faults are the errors nats-py raises, injected at the KV's write."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats.errors
import pytest
from natsserver import NatsServer

from orchestrator import errors
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox, faults
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.lease import AgentLeases


@pytest.fixture
async def mailbox(nats_server: NatsServer) -> AsyncIterator[NatsMailbox]:
    config = NatsConfig((nats_server.url,), namespace=f"retry{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config) as mailbox:
        yield mailbox


def _failing_writes(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch, plan: list[str]
) -> list[str]:
    """The bucket's writes (each a JetStream publish: a value, or a take's delete
    marker) follow ``plan``, one step a write: ``refused`` (no responders, nothing
    stored), ``lost`` (stored, the answer lost: a timeout), ``ok``; past its end,
    ``refused`` for ever. Returns the steps taken."""
    js = mailbox.kv._js
    real_publish = js.publish
    taken: list[str] = []

    async def publish(subject: str, payload: bytes = b"", *args: Any, **kw: Any) -> Any:
        step = plan[len(taken)] if len(taken) < len(plan) else "refused"
        taken.append(step)
        if step == "refused":
            raise nats.errors.NoRespondersError
        ack = await real_publish(subject, payload, *args, **kw)
        if step == "lost":
            raise nats.errors.TimeoutError
        return ack

    monkeypatch.setattr(js, "publish", publish)
    return taken


async def _no_guard() -> None:
    return None


async def test_a_guarded_create_whose_answer_was_lost_is_its_own_success(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused once (not stored), then stored with the answer lost: the read after finds
    its own bytes, a success, not a row someone else wrote; one write each."""
    taken = _failing_writes(mailbox, monkeypatch, ["refused", "lost"])
    assert await rec.create_guarded(mailbox.kv, "a.alpha", b"row", _no_guard)
    assert taken == ["refused", "lost"]
    assert await rec.get(mailbox.kv, "a.alpha") == (b"row", 1)


async def test_an_update_whose_answer_was_lost_is_its_own_success(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rec.put(mailbox.kv, "a.alpha", b"1")
    taken = _failing_writes(mailbox, monkeypatch, ["refused", "lost"])
    assert await rec.update(mailbox.kv, "a.alpha", lambda old: old + b"+") == (b"1", b"1+")
    assert taken == ["refused", "lost"]  # not a third write over its own


async def test_a_take_through_refused_writes_moves_the_rows_revision_once(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The take's rewrite of an absent row (a delete marker) refused twice, then
    stored: the row reads absent still, at a new revision."""
    leases = AgentLeases(mailbox, "octy-supervisor:here")
    _, before = await rec.last_entry(mailbox.kv, "a.alpha")
    taken = _failing_writes(mailbox, monkeypatch, ["refused", "refused", "ok"])
    await leases._claim_row("alpha")
    assert taken == ["refused", "refused", "ok"]
    value, after = await rec.last_entry(mailbox.kv, "a.alpha")
    assert (value, before) == (None, 0)
    assert after > before


async def test_each_conditional_write_gives_up_after_the_one_budget(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream without a leader for good: each write is tried again until
    faults.RETRY_S has passed, then the error is raised (never spun on for ever)."""
    await rec.put(mailbox.kv, "a.beta", b"1")
    monkeypatch.setattr(faults, "RETRY_S", 0.3)
    taken = _failing_writes(mailbox, monkeypatch, [])
    leases = AgentLeases(mailbox, "octy-supervisor:here")
    calls = [
        rec.create_guarded(mailbox.kv, "a.alpha", b"row", _no_guard),
        rec.update(mailbox.kv, "a.beta", lambda old: old + b"+"),
        leases._claim_row("alpha"),
    ]
    for call in calls:
        taken.clear()
        with pytest.raises(nats.errors.NoRespondersError):
            await call
        assert len(taken) >= 2  # tried again after a pause, not given up at once
    assert await rec.get(mailbox.kv, "a.alpha") is None
    assert await rec.get(mailbox.kv, "a.beta") == (b"1", 1)


class _Spun(Exception):
    """The guarded create went on past any bound (the test stops it)."""


def _counted_updates(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch, before: Any = None
) -> list[int]:
    """Every conditional write of the bucket counted (its ``last``); ``before(key)``
    runs ahead of each, on the real server. Past 200 writes the test stops a spin."""
    kv = mailbox.kv
    real_update = kv.update
    lasts: list[int] = []

    async def update(key: str, value: bytes, last: int | None = None, **kw: Any) -> Any:
        lasts.append(int(last or 0))
        if len(lasts) > 200:
            raise _Spun
        if before is not None:
            await before(key)
        return await real_update(key, value, last=last, **kw)

    monkeypatch.setattr(kv, "update", update)
    return lasts


async def test_a_contended_guarded_create_still_succeeds(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer moves the key between each of our reads and writes three times
    (a take's delete marker each time: the key stays absent): each write is refused
    by the server as written since its read, read again, and the fourth lands."""
    moved = 0

    async def another_writer(key: str) -> None:
        nonlocal moved
        if moved < 3:
            moved += 1
            _, last = await rec.last_entry(mailbox.kv, key)
            await rec.mark_deleted(mailbox.kv, key, last)

    lasts = _counted_updates(mailbox, monkeypatch, another_writer)
    assert await rec.create_guarded(mailbox.kv, "a.alpha", b"row", _no_guard)
    assert len(lasts) == 4
    assert lasts == sorted(lasts)  # each try read the revision the last marker left
    assert (await rec.get(mailbox.kv, "a.alpha"))[0] == b"row"  # type: ignore[index]


async def test_a_guarded_create_that_is_always_refused_ends_with_a_clear_error(
    mailbox: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revision read that the server's check never agrees with (as when a delete
    marker was read as revision 0: 5,591 writes in 5 s): every write refused as
    written since its read. It used to read and write again at once, for ever; it now
    stops after CONFLICT_TRIES writes with QueueUnavailable naming the key."""
    _, last = await rec.last_entry(mailbox.kv, "a.alpha")
    await rec.mark_deleted(mailbox.kv, "a.alpha", last)  # absent, at a revision > 0
    real_last_entry = rec.last_entry

    async def stale(kv: Any, key: str) -> tuple[bytes | None, int]:
        found, _ = await real_last_entry(kv, key)
        return found, 0  # the marker's revision never seen

    monkeypatch.setattr(rec, "last_entry", stale)
    lasts = _counted_updates(mailbox, monkeypatch)
    with pytest.raises(errors.QueueUnavailable, match=r"create of a\.alpha was refused 10 times"):
        await rec.create_guarded(mailbox.kv, "a.alpha", b"row", _no_guard)
    assert len(lasts) == rec.CONFLICT_TRIES
    assert await rec.get(mailbox.kv, "a.alpha") is None
