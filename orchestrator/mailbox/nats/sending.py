"""Putting messages in on JetStream: send, request (with deadlock refusal), broadcast,
reply, fail_request. The same promises as ``mailbox/sending.py``; see records.py for
the keys each one writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from orchestrator import errors
from orchestrator.mailbox.model import (
    DEFAULT_MAX_ATTEMPTS,
    Message,
    check_id,
    encode_body,
    make_message,
    new_id,
)
from orchestrator.mailbox.nats import records as rec
from orchestrator.mailbox.nats.core import NatsCore

_SEND_KINDS = ("notice", "request", "broadcast")


class _Written:
    """Whether a record found at ``m.<id>`` is ``message`` as this client wrote it, maybe
    changed since by its recipient (claimed, acked): the fields nobody changes after
    the write are the same, ``created_at`` to the microsecond among them unless the
    caller chose the id (its earlier call wrote the same message at another time).
    ``stored`` is the record found, once recognised."""

    def __init__(self, message: Message, *, same_time: bool) -> None:
        self.message = message
        self.same_time = same_time
        self.stored: Message | None = None

    def __call__(self, found: bytes) -> bool:
        m = self.message
        try:
            stored = rec.decode_message(found, rec.msg_key(m.id))
        except errors.RecordUnreadable:
            return False
        fixed = ("id", "kind", "sender", "recipient", "correlation_id", "body")
        if any(getattr(stored, f) != getattr(m, f) for f in fixed):
            return False
        if self.same_time and stored.created_at != m.created_at:
            return False
        self.stored = stored
        return True


class NatsSendOps(NatsCore):
    async def _put_new(
        self,
        *,
        kind: str,
        sender: str,
        recipient: str,
        body_text: str,
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        status: str = "pending",
        error: str | None = None,
        error_detail: str | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Write one new message under a fresh id. An open message's hint goes first:
        a crash in between leaves a hint without a message (skipped), never a pending
        message nobody can find. A drawn id already taken (by any client of either
        backend) is drawn again: ``m.<id>`` is created only if absent. A ``message_id``
        the caller chose is its own to repeat: the same message found under it is the
        one returned (stored once), another is MessageIdTaken."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if message_id is not None:
            check_id(message_id)
        now = self.now()
        for _ in range(5):
            mid = message_id or new_id()
            message = make_message(
                mid,
                kind,
                sender,
                recipient,
                correlation_id,
                cause_id,
                json.loads(body_text),
                status,
                0,
                max_attempts,
                None,
                None,
                now,
                now,
                None if ttl_s is None else now + ttl_s,
                None,
                now if status == "done" else None,
                error,
                error_detail,
            )
            record = rec.encode_message(message)
            self._check_size(len(record))
            hint = rec.hint_key(recipient, mid)
            ours = _Written(message, same_time=message_id is None)
            key = rec.msg_key(mid)
            if message_id is not None and (found := await rec.get(self.kv, key)) is not None:
                # Stored already: by this call's earlier try, or another message whose
                # id was reused; no hint of ours must then point at it (another's).
                if ours(found[0]):
                    return ours.stored or message
                raise errors.MessageIdTaken(message_id)
            if status == "pending":
                await rec.put(self.kv, hint, b"")
            if await rec.create(self.kv, key, record, ours=ours, again=message_id is not None):
                return ours.stored or message
            if message_id is not None:  # its hint may be the other message's: left alone
                raise errors.MessageIdTaken(message_id)
            if status == "pending":
                await self._delete(hint)
        raise errors.QueueError("could not draw a unique message id")  # pragma: no cover

    def _check_size(self, size: int) -> None:
        """The server's payload limit (1 MB by default) is below the queue's 1 MiB body
        limit plus the record around it: say so instead of a protocol error."""
        limit = self.nc.max_payload
        if size > limit:
            raise errors.InvalidBody(
                f"message is {size} bytes as a record, over the NATS server's max_payload "
                f"of {limit}; set `max_payload: 4MB` in the server's config, or put large "
                "payloads in a file and send its path"
            )

    async def send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        kind: Any = "notice",
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        message_id: str | None = None,
    ) -> Message:
        """Queue one message for a registered recipient (or ``user``). ``message_id``
        (from ``new_id()``) makes the send safe to repeat: see :meth:`_put_new`."""
        if kind not in _SEND_KINDS:
            raise ValueError(
                f"send() kind must be notice, request or broadcast, not {kind!r} "
                "(responses are made by reply())"
            )
        body_text = encode_body(body)
        await self._check_recipients([recipient])
        message = await self._put_new(
            kind=kind,
            sender=sender,
            recipient=recipient,
            body_text=body_text,
            correlation_id=correlation_id,
            cause_id=cause_id,
            ttl_s=ttl_s,
            max_attempts=max_attempts,
            message_id=message_id,
        )
        await self._wake(recipient)
        return message

    async def send_many(
        self,
        sender: str,
        messages: Sequence[tuple[str, Any]],
        *,
        kind: Any = "notice",
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[Message]:
        """Queue many ``(recipient, body)``: every body and recipient is checked before
        the first is written (a crash part-way leaves the first ones: no multi-key
        transactions on a key-value store, see the README's comparison)."""
        if kind not in _SEND_KINDS:
            raise ValueError(f"send_many() kind must be notice, request or broadcast, not {kind!r}")
        encoded = [(recipient, encode_body(body)) for recipient, body in messages]
        await self._check_recipients(r for r, _ in encoded)
        out = [
            await self._put_new(
                kind=kind,
                sender=sender,
                recipient=recipient,
                body_text=text,
                ttl_s=ttl_s,
                max_attempts=max_attempts,
            )
            for recipient, text in encoded
        ]
        await self._wake(*(r for r, _ in encoded))
        return out

    async def request(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        wait_s: float | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Queue a request. With ``wait_s`` the sender declares it will block for the
        reply; a request that would close a wait cycle raises WouldDeadlock, unwritten.
        ``message_id`` makes it safe to repeat, as for :meth:`send`.

        The edge is written before the cycle is looked for: of two asks that would
        close a cycle at the same moment on two machines, at least one sees the
        other's edge (both may refuse; neither deadlocks)."""
        body_text = encode_body(body)
        await self._check_recipients([recipient])
        fields: dict[str, Any] = {
            "kind": "request",
            "sender": sender,
            "recipient": recipient,
            "body_text": body_text,
            "cause_id": cause_id,
            "ttl_s": ttl_s,
            "max_attempts": max_attempts,
        }
        if wait_s is None:
            message = await self._put_new(message_id=message_id, **fields)
            await self._wake(recipient)
            return message
        if sender == recipient:
            raise errors.WouldDeadlock(request_id="", detail=f"{sender} -> {sender}")
        now = self.now()
        message_id = new_id() if message_id is None else check_id(message_id)
        stored = await rec.get(self.kv, rec.msg_key(message_id))
        if stored is not None:
            # The id is taken: by this very request (a repeat after a lost answer, or the
            # relay's ask made again by a replayed turn) or by another, whose edge must not
            # be touched (MessageIdTaken). Still open, it is waited on again: its edge is
            # set as for a new one (the first wait's may be gone), as SQLite's OR REPLACE.
            message = await self._put_new(message_id=message_id, **fields)
            if message.status not in ("pending", "leased"):
                await self._wake(recipient)
                return message
        edge = {"waiter": sender, "target": recipient, "expires_at": now + wait_s}
        await self._claim_edge(message_id, edge)
        try:
            cycle = await self._wait_cycle(sender, recipient, now, message_id)
            if cycle is not None:
                raise errors.WouldDeadlock(request_id="", detail=cycle)
            if stored is None:
                message = await self._put_new(message_id=message_id, **fields)
        except BaseException:
            await self._delete(rec.wait_key(message_id))  # the edge is this call's
            raise
        await self._wake(recipient)
        return message

    async def _claim_edge(self, message_id: str, edge: dict[str, Any]) -> None:
        """Write the wait edge of a request about to be sent, as this call's own. One
        already there with the same waiter and target is this request's (an earlier try
        of the same call that stopped before its message): taken over. Another one
        belongs to another ask in flight under this id: MessageIdTaken, left as it is
        (a refused call overwrote it, then deleted it: a real deadlock then passed)."""
        key = rec.wait_key(message_id)
        value = json.dumps(edge).encode()
        if await rec.create(self.kv, key, value):
            return
        found = await rec.get(self.kv, key)
        if found is not None:
            try:
                held = rec.decode_edge(found[0], key)
            except errors.RecordUnreadable as exc:
                self._unreadable(exc)
                raise errors.MessageIdTaken(message_id) from None
            if (held["waiter"], held["target"]) != (edge["waiter"], edge["target"]):
                raise errors.MessageIdTaken(message_id)
        await rec.put(self.kv, key, value)

    async def _wait_cycle(self, sender: str, recipient: str, now: float, own: str) -> str | None:
        """'a -> b -> a' if ``sender`` waiting on ``recipient`` closes a cycle of live
        edges. Paths never revisit a name, so the walk ends whatever the edges are."""
        if sender == "user":  # the human blocks on nobody: any terminal answers (SQLite's)
            return None
        edges: dict[str, set[str]] = {}
        for key in await self._keys("w."):
            found = await rec.get(self.kv, key)
            if key == rec.wait_key(own) or found is None:
                continue
            try:
                edge = rec.decode_edge(found[0], key)
            except errors.RecordUnreadable as exc:  # no edge: trusted, it could only refuse
                self._unreadable(exc)
                continue
            if edge["expires_at"] > now and edge["waiter"] != "user":  # as on SQLite
                edges.setdefault(edge["waiter"], set()).add(edge["target"])
        paths, seen = [[recipient]], {recipient}  # each name once: linear, as on SQLite
        while paths:
            path = paths.pop(0)
            if path[-1] == sender:
                return " -> ".join([sender, *path])
            ahead = [t for t in sorted(edges.get(path[-1], ())) if t not in seen]
            seen.update(ahead)
            paths.extend([*path, t] for t in ahead)
        return None

    async def broadcast(
        self, sender: str, body: Any, *, ttl_s: float | None = None
    ) -> list[Message]:
        """One ``broadcast`` message to every registered agent except the sender,
        ``user`` and ``supervisor``."""
        body_text = encode_body(body)
        names = await self._broadcast_names(sender)
        out = [
            await self._put_new(
                kind="broadcast", sender=sender, recipient=name, body_text=body_text, ttl_s=ttl_s
            )
            for name in names
        ]
        await self._wake(*names)
        return out

    async def _request_for_reply(self, request_id: str) -> Message:
        request = await self._load(request_id)
        if request.kind != "request":
            raise errors.NotARequest(request_id, request.kind)
        return request

    async def _put_reply(self, request: Message, response: Message) -> bool:
        """The exactly-once step: ``r.<request id>`` is created only if absent."""
        record = rec.encode_message(response)
        self._check_size(len(record))
        if not await rec.create(self.kv, rec.reply_key(request.id), record):
            await self._finish_reply(request.id)
            return False
        await self._after_reply(request.id, response.id, record)
        return True

    async def _after_reply(self, request_id: str, response_id: str, record: bytes) -> None:
        """What follows the reply's create: its copy under ``m.<id>`` (what listings and
        ``queue show`` read), the wait edge gone, the asker woken."""
        await rec.put(self.kv, rec.msg_key(response_id), record)
        await self._delete(rec.wait_key(request_id))
        await self._replied(request_id)

    async def _finish_reply(self, request_id: str) -> None:
        """A request found answered: if the answer's writer stopped after the create (its
        connection lost with the create's ack, an outage, a crash), finish its steps
        now, so a repeated reply leaves what one reply leaves."""
        found = await rec.get(self.kv, rec.reply_key(request_id))
        if found is None:
            return
        try:
            response = rec.decode_message(found[0], rec.reply_key(request_id))
        except errors.RecordUnreadable as exc:
            self._unreadable(exc)
            return
        if await rec.get(self.kv, rec.msg_key(response.id)) is None:
            await self._after_reply(request_id, response.id, found[0])

    def _response(
        self,
        request: Message,
        sender: str,
        body: Any,
        error: str | None = None,
        detail: str | None = None,
    ) -> Message:
        now = self.now()
        return make_message(
            new_id(),
            "response",
            sender,
            request.sender,
            request.id,
            request.id,
            body,
            "done",
            0,
            DEFAULT_MAX_ATTEMPTS,
            None,
            None,
            now,
            now,
            None,
            None,
            now,
            error,
            detail,
        )

    async def reply(self, request_id: str, sender: str, body: Any) -> Message:
        """Answer a request. Exactly one response per request, across every client."""
        body_value = json.loads(encode_body(body))
        request = await self._request_for_reply(request_id)
        response = self._response(request, sender, body_value)
        if not await self._put_reply(request, response):
            raise errors.AlreadyReplied(request_id)
        return response

    async def fail_request(self, request_id: str, code: str, detail: str = "") -> bool:
        """Answer a request with an error and move it to the dead letters; False if it
        was already answered. MessageNotFound if the request is gone: ``answered`` when
        it went after the answer was stored (two writes here, one transaction on
        SQLite)."""
        request = await self._request_for_reply(request_id)
        response = self._response(request, request.recipient, None, code, detail or None)
        if not await self._put_reply(request, response):
            return False
        now = self.now()

        def kill(m: Message) -> Message | None:
            if m.status not in ("pending", "leased"):
                return None
            return replace(
                m,
                status="dead",
                error=code,
                error_detail=detail or None,
                lease_owner=None,
                lease_expires=None,
                done_at=now,
            )

        try:
            _, after = await self._change(request_id, kill)
        except errors.MessageNotFound as exc:
            # The answer is stored; the request went before it was marked dead (lost with
            # the store, or removed). Not "unanswered": its asker may have read it.
            raise errors.MessageNotFound(
                request_id, store_lost=exc.store_lost, answered=True
            ) from exc
        if after is not None:
            await self._closed(after)
        return True
