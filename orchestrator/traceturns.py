"""Turns that handled several messages at once, as `trace` sees them.

Messages delivered together are one turn (up to ``batching.BATCH_LIMIT``), and every
message that turn sends carries the first one's id as its cause: the queue keeps one
cause per message, which plain-SQL readers of ``messages.cause_id`` rely on. The turn
cannot say which of its messages prompted a hop, so a hop belongs to all of them.
The turn's log line lists the batch (``turn messages=[…]``) and `trace` reads it
anyway: from it, a traced message handled second in a batch finds the hops of its
turn through the first message's id, within the turn's time. The queue's schema and
the relay stay as they are; the cost is one more read of the logs, only when a traced
message shared a turn with one outside its family.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator import errors
from orchestrator.mailbox import Message
from orchestrator.mailbox.backend import MailboxBackend
from orchestrator.tracelines import TURN_ENDS


@dataclass(frozen=True)
class SharedTurn:
    """One turn of ``agent`` that handled ``ids`` together, from ``start`` (its messages
    were received) to ``end`` (it finished or failed), epoch seconds."""

    agent: str
    ids: tuple[str, ...]
    start: float
    end: float


def shared_turns(events: Iterable[Mapping[str, Any]]) -> list[SharedTurn]:
    """The turns of several messages in ``events``, oldest first."""
    received: dict[tuple[str, str], float] = {}  # (agent, message) -> its latest delivery
    found: list[SharedTurn] = []
    for e in events:
        at, agent, name = _epoch(e.get("timestamp")), e.get("agent"), e.get("event")
        if at is None or not isinstance(agent, str):
            continue
        if name == "received" and isinstance(e.get("message_id"), str):
            received[(agent, e["message_id"])] = at
        elif name in TURN_ENDS:
            listed = e.get("messages")
            ids = tuple(i for i in listed if isinstance(i, str)) if isinstance(listed, list) else ()
            # The runner logs `received` right after writing the turn's prompt, before the
            # model can act on it: no hop of the turn is older than its deliveries.
            starts = [received[(agent, i)] for i in ids if (agent, i) in received]
            if len(ids) > 1 and starts:
                found.append(SharedTurn(agent, ids, min(starts), at))
    return found


def hops_of(
    mailbox: MailboxBackend, turns: Iterable[SharedTurn], known: Collection[str]
) -> tuple[list[Message], dict[str, str]]:
    """The messages the shared ``turns`` of ``known`` messages caused through a first
    message outside ``known`` (and everything those caused, and their replies), with
    the first message's id -> the known one it shared the turn with (for depths)."""
    found: dict[str, Message] = {}
    stands_for: dict[str, str] = {}
    for turn in turns:
        mine = [i for i in turn.ids if i in known]
        first = turn.ids[0]
        if not mine or first in known:
            continue  # the hops already follow their cause into the family
        try:
            family = mailbox.related(first)
        except errors.MessageNotFound:  # pruned by the sweep: the hops' rows may be too
            continue
        kept: set[str] = set()
        for m in family:  # oldest first: a message comes after its cause
            hop = (
                m.kind != "response"  # the first message's own reply is its alone
                and m.cause_id == first
                and m.sender == turn.agent
                and turn.start <= m.created_at <= turn.end
            )
            up = m.correlation_id if m.kind == "response" else m.cause_id
            if hop or up in kept:
                kept.add(m.id)
                found.setdefault(m.id, m)
        if kept:
            stands_for.setdefault(first, mine[0])
    return list(found.values()), stands_for


def _epoch(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None
    except ValueError:
        return None
