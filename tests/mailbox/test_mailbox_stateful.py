"""Hypothesis stateful test of the queue: no message lost, none acked twice, whatever the order.

A plain-Python model of every message's state runs next to a real Mailbox
(real SQLite file, injectable clock). After every step the database must hold
exactly the messages the model holds, in the same status, with the same
attempts and lease owner. Acks that succeed are recorded: an id acked twice
is a failure.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from mailbox_workers.support import FakeClock

from orchestrator import errors
from orchestrator.mailbox import Mailbox

RECIPIENTS = ("a", "b")
OWNERS = ("w1", "w2", "w3")


@dataclass
class Model:
    """What the queue should know about one message."""

    id: str
    seq: int
    kind: str
    recipient: str
    status: str = "pending"
    attempts: int = 0
    max_attempts: int = 1
    owner: str | None = None
    lease_expires: float | None = None
    available_at: float = 0.0
    expires_at: float | None = None
    done_at: float | None = None
    error: str | None = None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mailbox-stateful-"))
        self.clock = FakeClock(1000.0)
        self.mb = Mailbox(self.dir / "team.db", clock=self.clock)
        for name in RECIPIENTS:
            self.mb.register(name)
        self.model: dict[str, Model] = {}
        self.replies: dict[str, float] = {}  # request id -> done_at of its response
        self.acked: set[str] = set()
        self.seq = 0

    def teardown(self) -> None:
        self.mb.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- model mechanics (mirror the documented rules) ---------------------

    def _expire(self, recipient: str | None) -> None:
        now = self.clock.now
        for m in self.model.values():
            if recipient is not None and m.recipient != recipient:
                continue
            if m.status == "leased" and m.lease_expires is not None and m.lease_expires <= now:
                if m.attempts >= m.max_attempts:
                    m.status, m.error, m.done_at = "dead", "max_attempts", now
                    m.lease_expires = None
                else:
                    m.status, m.owner, m.lease_expires = "pending", None, None
        for m in self.model.values():
            if recipient is not None and m.recipient != recipient:
                continue
            if m.status == "pending" and m.expires_at is not None and m.expires_at <= now:
                m.status, m.error, m.done_at = "dead", "expired", now

    def _claimable(self, recipient: str) -> list[Model]:
        now = self.clock.now
        ready = [
            m
            for m in self.model.values()
            if m.recipient == recipient
            and m.status == "pending"
            and m.available_at <= now
            and (m.expires_at is None or m.expires_at > now)
        ]
        return sorted(ready, key=lambda m: (m.available_at, m.seq))

    def _leased_by(self, owner: str) -> list[Model]:
        return [m for m in self.model.values() if m.status == "leased" and m.owner == owner]

    # --- rules --------------------------------------------------------------

    @rule(
        recipient=st.sampled_from(RECIPIENTS),
        kind=st.sampled_from(("notice", "request")),
        max_attempts=st.integers(1, 3),
        ttl=st.none() | st.floats(1, 20),
    )
    def send(self, recipient: str, kind: str, max_attempts: int, ttl: float | None) -> None:
        if kind == "request":
            m = self.mb.request("user", recipient, self.seq, ttl_s=ttl, max_attempts=max_attempts)
        else:
            m = self.mb.send("user", recipient, self.seq, ttl_s=ttl, max_attempts=max_attempts)
        now = self.clock.now
        self.model[m.id] = Model(
            m.id,
            self.seq,
            kind,
            recipient,
            max_attempts=max_attempts,
            available_at=now,
            expires_at=None if ttl is None else now + ttl,
        )
        self.seq += 1

    @rule(
        recipient=st.sampled_from(RECIPIENTS),
        owner=st.sampled_from(OWNERS),
        limit=st.integers(1, 3),
        lease=st.floats(1, 10),
    )
    def claim(self, recipient: str, owner: str, limit: int, lease: float) -> None:
        self._expire(recipient)
        expected = self._claimable(recipient)[:limit]
        got = self.mb.claim(recipient, owner=owner, lease_s=lease, limit=limit)
        assert [m.id for m in got] == [m.id for m in expected]
        for m in expected:
            m.status, m.owner, m.attempts = "leased", owner, m.attempts + 1
            m.lease_expires = self.clock.now + lease

    @rule(owner=st.sampled_from(OWNERS), data=st.data())
    def ack(self, owner: str, data: st.DataObject) -> None:
        candidates = sorted(self.model)
        if not candidates:
            return
        ids = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
        should_work = all(
            self.model[i].status == "leased" and self.model[i].owner == owner for i in ids
        )
        try:
            self.mb.ack(ids, owner=owner)
        except errors.LeaseLost:
            assert not should_work
            return
        assert should_work
        for i in ids:
            assert i not in self.acked, f"{i} acked twice"
            self.acked.add(i)
            m = self.model[i]
            m.status, m.lease_expires, m.done_at = "done", None, self.clock.now

    @rule(owner=st.sampled_from(OWNERS), delay=st.sampled_from((0.0, 0.0, 5.0)), data=st.data())
    def nack(self, owner: str, delay: float, data: st.DataObject) -> None:
        held = self._leased_by(owner)
        others = [m for m in self.model.values() if m not in held]
        pool = held or others
        if not pool:
            return
        m = data.draw(st.sampled_from(sorted(pool, key=lambda x: x.seq)))
        if m.status != "leased" or m.owner != owner:
            with pytest.raises(errors.LeaseLost):
                self.mb.nack(m.id, owner=owner, delay_s=delay)
            return
        result = self.mb.nack(m.id, owner=owner, delay_s=delay)
        now = self.clock.now
        if m.attempts >= m.max_attempts:
            m.status, m.error, m.lease_expires, m.done_at = "dead", "max_attempts", None, now
        else:
            m.status, m.owner, m.lease_expires, m.available_at = "pending", None, None, now + delay
        assert result.status == m.status

    @rule(owner=st.sampled_from(OWNERS))
    def release(self, owner: str) -> None:
        held = self._leased_by(owner)
        assert self.mb.release(owner) == len(held)
        for m in held:
            m.status, m.owner, m.lease_expires = "pending", None, None
            m.attempts = max(m.attempts - 1, 0)

    @rule(seconds=st.floats(0.5, 15))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(retention=st.sampled_from((5.0, 1000.0)))
    def sweep(self, retention: float) -> None:
        now = self.clock.now
        requeued = sum(  # leases returned to pending (a TTL may kill them right after)
            1
            for m in self.model.values()
            if m.status == "leased"
            and m.lease_expires is not None
            and m.lease_expires <= now
            and m.attempts < m.max_attempts
        )
        self._expire(None)
        result = self.mb.sweep(retention_s=retention)
        cutoff = self.clock.now - retention
        pruned = [
            i
            for i, m in self.model.items()
            if m.status == "done" and m.done_at is not None and m.done_at <= cutoff
        ]
        for i in pruned:
            del self.model[i]
        # ...except the reply of a request still pending or leased (it keeps the request
        # from being answered twice after a redelivery).
        stale_replies = [
            r
            for r, t in self.replies.items()
            if t <= cutoff
            and not (r in self.model and self.model[r].status in ("pending", "leased"))
        ]
        for r in stale_replies:
            del self.replies[r]
        assert result.pruned == len(pruned) + len(stale_replies)
        assert result.requeued == requeued

    @rule(data=st.data())
    def reply(self, data: st.DataObject) -> None:
        requests = sorted(i for i, m in self.model.items() if m.kind == "request")
        if not requests:
            return
        rid = data.draw(st.sampled_from(requests))
        if rid in self.replies:
            with pytest.raises(errors.AlreadyReplied):
                self.mb.reply(rid, self.model[rid].recipient, "again")
            return
        self.mb.reply(rid, self.model[rid].recipient, "answer")
        self.replies[rid] = self.clock.now

    @precondition(lambda self: any(m.status == "dead" for m in self.model.values()))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        dead = sorted(i for i, m in self.model.items() if m.status == "dead")
        m = self.model[data.draw(st.sampled_from(dead))]
        self.mb.retry(m.id)
        m.status, m.attempts, m.error, m.owner, m.lease_expires = "pending", 0, None, None, None
        m.expires_at, m.done_at, m.available_at = None, None, self.clock.now

    # --- invariants ---------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        rows = {m.id: m for m in self.mb.list(limit=100_000) if m.kind != "response"}
        assert set(rows) == set(self.model), "messages lost or invented"
        for i, want in self.model.items():
            got = rows[i]
            assert (got.status, got.attempts) == (want.status, want.attempts), i
            if want.status == "leased":
                assert (got.lease_owner, got.lease_expires) == (want.owner, want.lease_expires)
            if want.status == "dead":
                assert got.error == want.error

    @invariant()
    def replies_match_model(self) -> None:
        responses = [m for m in self.mb.list(limit=100_000) if m.kind == "response"]
        assert sorted(m.correlation_id or "" for m in responses) == sorted(self.replies)

    @invariant()
    def done_means_acked(self) -> None:
        done = {i for i, m in self.model.items() if m.status == "done"}
        assert done <= self.acked


QueueMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueStateMachine = QueueMachine.TestCase
