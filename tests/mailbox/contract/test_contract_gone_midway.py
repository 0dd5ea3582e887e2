"""A message gone between the supervisor's listing and its write: answered by its agent
and removed by `queue purge` from another terminal (either backend), or lost with a
NATS server's store. What the supervisor does for the others it listed goes on; the one
gone is said once (`request_gone`), not raised: on SQLite as on NATS, since the listing
and each write are separate transactions on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from contract_openers import Opener
from structlog.testing import capture_logs

from orchestrator import errors
from orchestrator.budget_watch import BudgetWatch
from orchestrator.give_back import GiveBack
from orchestrator.inbox import Inbox
from orchestrator.mailbox import AsyncMailboxBackend, Mailbox
from orchestrator.model_errors import Failure
from orchestrator.outage import Outage
from orchestrator.roster import parse_roster
from orchestrator.supervision import restarts


class _Team:
    """What answering an agent's waiting requests needs (restarts.Answering)."""

    def __init__(self, mailbox: AsyncMailboxBackend) -> None:
        self.mailbox = mailbox
        self.abandoned: list[BaseException] = []

    def abandon(self, exc: BaseException) -> None:
        self.abandoned.append(exc)


class _Idle:
    """The supervisor side of BudgetWatch: no agent runs here, nothing to pause."""

    def agent_state(self, name: str) -> None:
        return None

    async def pause_agent(self, name: str) -> None: ...

    async def unpause_agent(self, name: str) -> None: ...


def _answered_and_purged_after_list(q: AsyncMailboxBackend, other: AsyncMailboxBackend) -> None:
    """Right after ``q.list`` first answers, bob's oldest request is claimed, answered
    and acked by bob, then purged by `queue purge` (another client, another terminal)."""
    listing = q.list
    done = False

    async def then_gone(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        found = await listing(*args, **kwargs)
        if not done:
            done = True
            (m,) = await other.claim("bob", owner="bob-1")
            await other.reply(m.id, "bob", "done already")
            await other.ack([m.id], owner="bob-1")
            assert await other.purge(statuses=("done",)) == 2  # the request and its reply
        return found

    setattr(q, "list", then_gone)  # noqa: B010 - on this client only


async def test_a_stop_fails_the_requests_after_one_purged_since_the_listing(
    q: AsyncMailboxBackend, opener: Opener
) -> None:
    """`stop bob` answers every request waiting for bob (recipient_stopped). The first
    listed was answered and purged meanwhile: its MessageNotFound ended the loop, logged
    as `requests_not_failed`, and the second's asker waited out its whole timeout."""
    first = await q.request("alice", "bob", "one")
    second = await q.request("carol", "bob", "two")
    _answered_and_purged_after_list(q, await opener.open())
    with capture_logs() as logs:
        await restarts.fail_requests(
            _Team(q), "bob", errors.RecipientStopped.code, "'bob' was stopped"
        )
    reply = await q.find_reply(second.id)
    assert reply is not None
    assert reply.error == errors.RecipientStopped.code
    gone = [e["request_id"] for e in logs if e["event"] == "request_gone"]
    assert gone == [first.id]
    assert "requests_not_failed" not in [e["event"] for e in logs]
    with pytest.raises(errors.MessageNotFound):
        await q.get(first.id)


async def test_a_budget_pause_refuses_the_requests_after_one_purged_since_the_listing(
    q: AsyncMailboxBackend, opener: Opener, tmp_path: Path
) -> None:
    """A paused agent's queued requests are refused at once (budget_exceeded). One
    answered and purged since the listing raised out of the refusals: the budget check
    that paused the agent stopped there (`budget_check_failed`), and the requests after
    it waited for the next check."""
    first = await q.request("alice", "bob", "one")
    second = await q.request("carol", "bob", "two")
    _answered_and_purged_after_list(q, await opener.open())
    spec = parse_roster("defaults: {prompt: work}\nagents:\n  bob: {}\n", tmp_path / "a.yaml")
    Mailbox(tmp_path / "spend.db").close()  # the ledger's file, made as the queue's is
    watch = BudgetWatch(tmp_path / "spend.db", lambda: spec, _Idle())
    await watch.open(q)
    try:
        with capture_logs() as logs:
            await watch._refuse_requests("bob", [])
    finally:
        watch.close()
    reply = await q.find_reply(second.id)
    assert reply is not None
    assert reply.error == errors.BudgetExceeded.code
    gone = [e["request_id"] for e in logs if e["event"] == "request_gone"]
    assert gone == [first.id]


async def test_a_claim_ended_and_purged_before_its_answer_is_the_same_on_both_backends(
    q: AsyncMailboxBackend, opener: Opener
) -> None:
    """`queue purge` deletes done and dead messages only, so a claim is purged before its
    ack only once it ended meanwhile: here bob's request is failed by the supervisor
    (`stop bob`: recipient_stopped, dead) and purged from another terminal while bob's
    turn runs. The turn's answer is dropped (`request_gone`), the ack is a lost lease
    (`lease_lost`), nothing raised into the session; a nack, an extend and a release of
    it say the same on either backend. On SQLite a nack of it raised MessageNotFound
    (NATS: LeaseLost), which a failed turn's give-back raised into the session."""
    asked = await q.request("alice", "bob", "one")
    (m,) = await q.claim("bob", owner="bob-1")
    other = await opener.open()
    assert await other.fail_request(asked.id, errors.RecipientStopped.code, "stopped")
    assert await other.purge() == 2  # the request and its error reply
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        inbox = Inbox(q, "bob", "bob-1", log, Outage(log), stop=anyio.Event(), hold=None)
        inbox.inflight = [m]
        await inbox.answer([m], set(), "done")
    assert inbox.inflight == []
    said = [(e["event"], e.get("request_id") or e.get("message_id")) for e in logs]
    assert said == [("request_gone", m.id), ("lease_lost", m.id)]
    with capture_logs() as logs:  # the turn failed (retried later): its give-back
        giving = GiveBack(q, "bob", "bob-1", log, Outage(log))
        await giving.failed_turn([m], Failure("transient", "overloaded"))
    assert [(e["event"], e.get("message_id")) for e in logs] == [("lease_lost", m.id)]
    with pytest.raises(errors.LeaseLost):
        await q.nack(m.id, owner="bob-1")
    with pytest.raises(errors.LeaseLost):
        await q.extend([m.id], owner="bob-1", lease_s=60)
    assert await q.release("bob-1", [m.id]) == 0


async def test_a_batch_whose_one_request_went_acks_and_extends_the_others(
    q: AsyncMailboxBackend, opener: Opener, clock: Any
) -> None:
    """bob holds two requests in one turn; one is failed by the supervisor and purged
    meanwhile. An ack or an extension is all or nothing on either backend: the gone one
    made it refuse the other too, left leased, its lease run out and its request
    delivered again. Now the gone one is said once (`lease_lost`), the other is
    extended and acked."""
    first = await q.request("alice", "bob", "one")
    second = await q.request("carol", "bob", "two")
    batch = await q.claim("bob", owner="bob-1", limit=2)
    assert [m.id for m in batch] == [first.id, second.id]
    other = await opener.open()
    assert await other.fail_request(first.id, errors.RecipientStopped.code, "stopped")
    assert await other.purge() == 2
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        inbox = Inbox(q, "bob", "bob-1", log, Outage(log), stop=anyio.Event(), hold=None)
        inbox.inflight = batch
        clock.advance(10)
        await inbox.extend_leases()
        await inbox.extend_leases()  # the next round: said once
        extended = await q.get(second.id)
        await inbox.answer(batch, set(), "done")
    assert extended.lease_expires == clock.now + 60
    assert (await q.get(second.id)).status == "done"
    said = [(e["event"], e.get("request_id") or e.get("message_id")) for e in logs]
    assert [s for s in said if s[0] != "replied"] == [
        ("lease_lost", first.id),
        ("request_gone", first.id),
    ]


async def test_a_failed_turn_on_a_purged_request_says_how_it_went_on_its_backend(
    q: AsyncMailboxBackend,
) -> None:
    """A failed turn's error answer meets its request purged (`queue purge` from another
    terminal after the supervisor failed it): `request_gone` says it was removed. On
    SQLite it said "removed, or lost with the NATS server's store", a server the team
    does not use."""
    await q.request("alice", "bob", "one")
    (m,) = await q.claim("bob", owner="bob-1", lease_s=60)
    await q.fail_request(m.id, "turn_failed", "gave up")
    assert await q.purge() >= 1
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        await GiveBack(q, "bob", "bob-1", log, Outage(log)).failed_turn(
            [m], Failure("deterministic", "the model refused")
        )
    (gone,) = [e for e in logs if e["event"] == "request_gone"]
    assert gone["request_id"] == m.id
    assert "removed" in gone["reason"]
    assert ("NATS" in gone["reason"]) == (type(q).__name__ == "NatsMailbox")
