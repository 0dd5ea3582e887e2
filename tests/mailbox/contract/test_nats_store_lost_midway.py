"""A server that loses its store between an operation's read and its write: the moment a
session met in a loaded run of test_nats_store_lost.py's two-machine test.

There alpha replied, its ack checked the lease (read before the loss), then the server
restarted without its store; the ack's compare-and-set read the message again and found
nothing (a read of a missing stream says "key not found"), MessageNotFound escaped the
ack, the session crashed (`session_crashed`) and alpha's claude was started again: 3 of
15 runs under load. The store is lost here at that exact moment, deterministically: the
bucket's stream is deleted right after the operation's first read, as a server restarted
without its store leaves it. A message gone between the check and the change is a lease
lost (ack, extend), a message not to claim (claim) or nothing to hand back (release), as
on SQLite, where the two are one transaction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from contract_openers import lose_the_store
from natsserver import NatsServer
from structlog.testing import capture_logs

from orchestrator import control, errors
from orchestrator.approval_wait import Approvals
from orchestrator.give_back import GiveBack
from orchestrator.inbox import Inbox
from orchestrator.mailbox import SUPERVISOR, USER, Message
from orchestrator.mailbox.backend import fail_waiting
from orchestrator.mailbox.nats import NatsConfig, NatsMailbox
from orchestrator.model_errors import Failure
from orchestrator.outage import Outage
from orchestrator.relay import Relay
from orchestrator.roster._build import parse_roster


@pytest.fixture
def mb(nats_mb: NatsMailbox) -> NatsMailbox:
    return nats_mb


def _lost_after(mb: NatsMailbox, name: str) -> None:
    """The store is lost right after ``mb.<name>`` (a read) answers, once."""
    read: Callable[..., Awaitable[Any]] = getattr(mb, name)
    done = False

    async def then_lost(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        result = await read(*args, **kwargs)
        if not done:
            done = True
            await lose_the_store(mb)
        return result

    setattr(mb, name, then_lost)


async def _claimed(mb: NatsMailbox, kind: str = "request") -> Message:
    if kind == "request":
        sent = await mb.request("alice", "bob", "capital of France?")
    else:
        sent = await mb.send("alice", "bob", "fyi")
    (claimed,) = await mb.claim("bob", owner="bob-1", lease_s=60)
    assert claimed.id == sent.id
    return claimed


async def test_an_ack_whose_message_goes_with_the_store_after_its_check_is_a_lost_lease(
    mb: NatsMailbox,
) -> None:
    m = await _claimed(mb)
    _lost_after(mb, "_held")
    with pytest.raises(errors.LeaseLost) as lost:
        await mb.ack([m.id], owner="bob-1")
    assert lost.value.message_id == m.id


async def test_an_extend_whose_message_goes_with_the_store_after_its_check_is_a_lost_lease(
    mb: NatsMailbox,
) -> None:
    m = await _claimed(mb, "send")
    _lost_after(mb, "_held")
    with pytest.raises(errors.LeaseLost):
        await mb.extend([m.id], owner="bob-1", lease_s=60)


async def test_a_claim_whose_message_goes_with_the_store_after_the_listing_takes_nothing(
    mb: NatsMailbox,
) -> None:
    await mb.send("alice", "bob", "fyi")
    _lost_after(mb, "_open_for")
    assert await mb.claim("bob", owner="bob-1") == []


async def test_a_release_whose_message_goes_with_the_store_after_its_read_hands_back_nothing(
    mb: NatsMailbox,
) -> None:
    m = await _claimed(mb, "send")
    _lost_after(mb, "_load")
    assert await mb.release("bob-1", [m.id]) == 0


async def test_the_session_answers_and_goes_on_when_the_store_goes_before_its_ack(
    mb: NatsMailbox,
) -> None:
    """The runner's side of the two-machine failure: the reply is stored, the ack finds
    the message gone with the store. Logged as a lost lease, nothing raised into the
    session (which would end it, and restart the agent's claude)."""
    m = await _claimed(mb)
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        inbox = Inbox(mb, "bob", "bob-1", log, Outage(log), stop=anyio.Event(), hold=None)
        inbox.inflight = [m]
        _lost_after(mb, "_held")
        await inbox.answer([m], set(), "Paris")
    assert inbox.inflight == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["lease_lost"]
    assert [e["message_id"] for e in logs if e["event"] == "lease_lost"] == [m.id]


async def test_a_failed_turn_whose_request_went_with_the_store_is_said_not_raised(
    mb: NatsMailbox,
) -> None:
    """The turn failed for good while the store was lost: its asker cannot be answered
    (the request is gone). Said once (`request_gone`), not raised into the session."""
    m = await _claimed(mb)
    await lose_the_store(mb)
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        giving = GiveBack(mb, "bob", "bob-1", log, Outage(log))
        await giving.failed_turn([m], Failure("deterministic", "the model refused"))
    gone = [e for e in logs if e["event"] == "request_gone"]
    assert [e["request_id"] for e in gone] == [m.id]


async def test_a_failure_answered_before_the_store_went_is_not_said_unanswered(
    mb: NatsMailbox,
) -> None:
    """The turn failed for good; its error answer was stored, then the store went before
    the request was marked dead (the answer is one write, the request's end another).
    It was said "its failure is not answered", false of an answer stored (and maybe
    read by its asker)."""
    m = await _claimed(mb)
    _lost_after(mb, "_put_reply")
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        giving = GiveBack(mb, "bob", "bob-1", log, Outage(log))
        await giving.failed_turn([m], Failure("deterministic", "the model refused"))
    (gone,) = [e for e in logs if e["event"] == "request_gone"]
    assert gone["request_id"] == m.id
    assert gone["answered"] is True
    assert gone["reason"].startswith("its failure was answered, then the request went (lost")
    assert "not answered" not in gone["reason"]


async def test_requests_failed_for_an_agent_count_one_answered_before_the_store_went(
    mb: NatsMailbox,
) -> None:
    """A stop (or a budget's pause) answers the requests waiting for the agent: one whose
    answer was stored before the store went is among those answered, said as it was."""
    sent = await mb.request("alice", "bob", "capital of France?")
    _lost_after(mb, "_put_reply")
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        answered = await fail_waiting(mb, "bob", "recipient_stopped", "stopped", log)
    assert answered == [sent.id]
    (gone,) = [e for e in logs if e["event"] == "request_gone"]
    assert gone["answered"] is True
    assert gone["reason"].startswith("its failure was answered")


async def test_a_dead_sessions_last_attempt_gone_with_the_store_is_said_not_raised(
    mb: NatsMailbox,
) -> None:
    """A session died holding a request on its last attempt: its asker is answered
    turn_failed after a check that the claim is still the session's. The store went
    between the check and the answer: the request is gone, nothing to give back. Its
    MessageNotFound escaped the session's cleanup (the runner's `finally`), skipping
    the close of its claude process, and ended in `session_crashed`."""
    sent = await mb.request("alice", "bob", "capital of France?", max_attempts=1)
    (m,) = await mb.claim("bob", owner="bob-1", lease_s=60)
    assert (m.id, m.attempts) == (sent.id, 1)
    _lost_after(mb, "get")
    with capture_logs() as logs:
        log: Any = structlog.get_logger()
        giving = GiveBack(mb, "bob", "bob-1", log, Outage(log))
        await giving.inflight([m], failed=True)
    said = [(e["event"], e.get("message_id")) for e in logs if e["log_level"] == "warning"]
    assert ("lease_lost", m.id) in said
    assert "requeued" not in [e["event"] for e in logs]


async def test_a_commands_request_gone_with_the_store_is_said_once_not_retried(
    mb: NatsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command (`stop bob` from a terminal) was claimed and run; the store went before
    its answer. The reply's MessageNotFound was taken for a refusal and tried again 60
    times, a second apart, then `command_reply_failed`; now said once, and given up."""
    monkeypatch.setattr(control, "CONTROL_RETRY_S", 0.0)  # the old retries, without the wait
    await mb.register_supervisor(os.getpid(), {})
    await mb.request(USER, SUPERVISOR, {"command": "stop", "agent": "bob"})
    (m,) = await mb.claim(SUPERVISOR, owner="sup-1", lease_s=300)
    await lose_the_store(mb)
    with capture_logs() as logs:
        await control._answer(mb, "sup-1", m, {"ok": True})
    said = [e["event"] for e in logs]
    assert said == ["request_gone"]


async def test_a_sweep_passes_over_a_message_purged_since_its_listing(
    nats_server: NatsServer,
) -> None:
    """The supervisor's sweep lists every message, then settles each one whose lease ran
    out: one acked by its (late) consumer and purged by `queue purge` in between is
    passed over, as a claim passes it. Its MessageNotFound ended the sweep (the messages
    after it left for the next round, `chore_failed` said). On SQLite the sweep is one
    transaction: the same purge lands before or after it."""
    now = [1_700_000_000.0]
    config = NatsConfig((nats_server.url,), namespace=f"t{uuid.uuid4().hex[:8]}")
    async with NatsMailbox(config, clock=lambda: now[0]) as mb:
        for name in ("alice", "bob"):
            await mb.register(name)
        first = await mb.send("alice", "bob", "one")
        second = await mb.send("alice", "bob", "two")
        claimed = await mb.claim("bob", owner="bob-1", lease_s=10, limit=2)
        assert [m.id for m in claimed] == [first.id, second.id]
        now[0] += 20  # both leases ran out, nobody swept yet
        listing = mb._all_messages
        done = False

        async def then_purged(*args: Any, **kwargs: Any) -> list[Message]:
            nonlocal done
            found = await listing(*args, **kwargs)
            if not done:
                done = True
                await mb.ack([first.id], owner="bob-1")  # late, but still its lease
                assert await mb.purge(statuses=("done",)) == 1
            return found

        setattr(mb, "_all_messages", then_purged)  # noqa: B010
        swept = await mb.sweep()
        assert swept.requeued == 1
        assert (await mb.get(second.id)).status == "pending"


async def test_an_ask_whose_request_goes_with_the_store_while_waited_on_says_not_found(
    mb: NatsMailbox, tmp_path: Path
) -> None:
    """alice asks bob with the relay's `ask`; the store goes right after the request is
    written, while alice waits: the tool answers `not_found`, said once in the log. It
    raised MessageNotFound out of the tool (read by the model as a bare "no message with
    id", nothing logged)."""
    text = "agents:\n  alice:\n    prompt: a\n  bob:\n    prompt: b\n"
    roster = parse_roster(text, tmp_path / "agents.yaml", environ={})
    relay = Relay("alice", mb, lambda: roster, peer_state=lambda _name: "ready")
    _lost_after(mb, "request")
    with capture_logs() as logs, anyio.fail_after(30):
        out = await relay.ask({"to": "bob", "message": "capital of France?", "timeout_s": 20})
    assert out.get("is_error") is True
    assert out["content"][0]["text"].startswith("error not_found: ")
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["request_gone"]


async def test_an_approval_whose_request_goes_with_the_store_while_waited_on_is_denied(
    mb: NatsMailbox,
) -> None:
    """bob's call waits for alice's approval; the store goes right after the request is
    written. Denied, with why, said once (`request_gone`); its MessageNotFound came out of
    the check, which the hook turned into `policy_failed` (an error in the check)."""

    async def on_event(_event: object, _data: object) -> None:
        return None

    approvals = Approvals("bob", mb, lambda: ("alice", 20.0), lambda: None, on_event)
    _lost_after(mb, "request")
    with capture_logs() as logs, anyio.fail_after(30):
        granted, reason = await approvals.decide("Bash", {"command": "ls"}, None)
    assert not granted
    assert "no longer in the queue" in reason
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["request_gone"]
