"""The queue's state as key-value records: key layout, encoding, compare-and-set.

One bucket per team. A message's whole state lives under one key, so every state
change (claim, ack, nack, extend, expiry) is a single compare-and-set on that key's
revision: two consumers racing for one message cannot both win, on one server or a
replicated cluster. Other keys are either create-only guards or hints:

- ``m.<id>``            the message (a :class:`Message` as JSON)
- ``q.<to>.<id>``       hint: the message is open (pending or leased) for ``<to>``;
                        written before ``m.<id>``, removed after it closes, so a
                        stale hint is skipped and a missing one never happens;
                        one whose message is addressed to another is no claim on it
- ``r.<request id>``    the one reply: created with ``create`` (fails if it exists)
- ``a.<name>``          a registered agent (:class:`AgentInfo` as JSON)
- ``w.<request id>``    a wait-for edge ``{waiter, target, expires_at}``
- ``l.<agent>``         which supervisor runs the agent, until when (lease.py)

Keys are removed by purging their subject from the bucket's stream (no delete
marker left), so the stream's subject list is the list of live keys (core.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import nats.errors
import nats.js.errors
from nats.js.api import RawStreamMsg
from nats.js.kv import KeyValue

from orchestrator import errors, jsontext
from orchestrator.mailbox.model import KINDS, STATUSES, AgentInfo, Message, make_message
from orchestrator.mailbox.nats.connect import is_stream_missing
from orchestrator.mailbox.nats.faults import TRANSIENT, retrying

T = TypeVar("T")
_SAFE: Final = re.compile(r"^[A-Za-z0-9-]{1,200}$")
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Message))
_AGENT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(AgentInfo))


def token(name: str) -> str:
    """A name as one key token. Keys allow only ``[-/_=.A-Za-z0-9]``: names made of
    letters, digits and '-' stand as they are, any other is '_' + hex of its UTF-8
    (no plain name starts with '_', so the two never collide)."""
    if _SAFE.match(name):
        return name
    return "_" + name.encode("utf-8").hex()


def msg_key(message_id: str) -> str:
    return f"m.{message_id}"


def hint_key(recipient: str, message_id: str) -> str:
    return f"q.{token(recipient)}.{message_id}"


def reply_key(request_id: str) -> str:
    return f"r.{request_id}"


def agent_key(name: str) -> str:
    return f"a.{token(name)}"


def wait_key(request_id: str) -> str:
    return f"w.{request_id}"


def safe_id(message_id: str) -> bool:
    """Ids from users (CLI, tools) go into keys: refuse anything that is not one."""
    return bool(re.fullmatch(r"[0-9a-z]{1,40}", message_id))


def encode_message(message: Message) -> bytes:
    return json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def read_record(data: bytes, key: str, kinds: Mapping[str, tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object at ``key`` with each field of ``kinds`` of one of its types (a bool
    is no number, a number is finite), or RecordUnreadable: the bucket is writable by
    anyone with the team's account, so every record read is checked like any input."""
    try:
        record = jsontext.loads(data)
    except ValueError:  # UnicodeDecodeError is one
        raise errors.RecordUnreadable(key, "not JSON") from None
    if not isinstance(record, dict):
        raise errors.RecordUnreadable(key, "not a JSON object")
    for name, allowed in kinds.items():
        if name not in record:
            raise errors.RecordUnreadable(key, f"no {name!r}")
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise errors.RecordUnreadable(key, f"{name!r} is {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise errors.RecordUnreadable(key, f"{name!r} is not a finite number")
    return record


TEXT: Final = (str,)
_TEXT_OR_NONE: Final = (str, type(None))
WHOLE: Final = (int,)
TIME: Final = (int, float)
_TIME_OR_NONE: Final = (int, float, type(None))
_MESSAGE_KINDS: Final = {
    "id": TEXT, "kind": TEXT, "sender": TEXT, "recipient": TEXT,
    "correlation_id": _TEXT_OR_NONE, "cause_id": _TEXT_OR_NONE, "status": TEXT,
    "attempts": WHOLE, "max_attempts": WHOLE, "lease_owner": _TEXT_OR_NONE,
    "lease_expires": _TIME_OR_NONE, "available_at": TIME, "created_at": TIME,
    "expires_at": _TIME_OR_NONE, "claimed_at": _TIME_OR_NONE, "done_at": _TIME_OR_NONE,
    "error": _TEXT_OR_NONE, "error_detail": _TEXT_OR_NONE,
}  # fmt: skip
_AGENT_KINDS: Final = {
    "name": TEXT, "description": TEXT, "pid": (int, type(None)), "state": TEXT,
    "heartbeat_at": _TIME_OR_NONE, "registered_at": TIME, "meta": (dict,),
}  # fmt: skip


def decode_message(data: bytes, key: str) -> Message:
    """The message stored at ``key`` (``m.<id>``, or the reply ``r.<request id>``);
    RecordUnreadable if it is not one of ours. A record is also tied to its key: a
    copy of bob's message put under another id is no message, so the id it carries
    cannot be acked or answered through a key nobody checked."""
    record = read_record(data, key, _MESSAGE_KINDS)
    if "body" not in record:  # any JSON value: no type to check
        raise errors.RecordUnreadable(key, "no 'body'")
    if record["kind"] not in KINDS or record["status"] not in STATUSES:
        raise errors.RecordUnreadable(key, "an unknown kind or status")
    if not safe_id(record["id"]) or record["max_attempts"] < 1:
        raise errors.RecordUnreadable(key, "an impossible id or max_attempts")
    if key.startswith("m.") and key != msg_key(record["id"]):
        raise errors.RecordUnreadable(key, f"it holds message {record['id']}, not its key's")
    if key.startswith("r.") and key != reply_key(str(record["correlation_id"])):
        raise errors.RecordUnreadable(key, "it answers another request than its key's")
    return make_message(*(record[f] for f in _FIELDS))


def encode_agent(agent: AgentInfo) -> bytes:
    return json.dumps(agent.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


_EDGE_KINDS: Final = {"waiter": TEXT, "target": TEXT, "expires_at": TIME}


def decode_edge(data: bytes, key: str = "w.?") -> dict[str, Any]:
    """A wait-for edge ``{waiter, target, expires_at}``; RecordUnreadable if not one."""
    return read_record(data, key, _EDGE_KINDS)


def decode_agent(data: bytes, key: str) -> AgentInfo:
    """The registry row stored at ``key``; RecordUnreadable if it is not one of ours,
    or names another agent than its key does (a second "bob" row under ``a.zzz``
    would get bob every broadcast twice)."""
    record = read_record(data, key, _AGENT_KINDS)
    if agent_key(record["name"]) != key:
        raise errors.RecordUnreadable(key, f"it names {record['name']!r}, not its key's agent")
    return AgentInfo(*(record[f] for f in _AGENT_FIELDS))


async def _last_msg(kv: KeyValue, key: str) -> RawStreamMsg | None:
    """The key's last entry in the bucket's stream (a delete marker included), or None if
    it has none. The one read every record read goes through, in place of nats-py's
    ``KeyValue.get``: that one answers KeyNotFoundError both for a key with no entry
    (JetStream's 10037 "no message found") and for a bucket whose stream is gone (10059
    "stream not found", a server restarted without its store), so a lost bucket read as
    an empty one: its messages "not found", its registry rows and leases absent (free
    to take), its agents unknown. The stream's absence is raised here as the server
    said it (a NotFoundError, :func:`connect.is_stream_missing`): the public methods
    turn it into :class:`errors.StoreLost` (faults.typed), and the operations on one
    named message into MessageNotFound saying so (core.NatsCore._gone_with_store)."""
    try:
        msg = await kv._js.get_msg(kv._stream, subject=f"{kv._pre}{key}", direct=kv._direct)
    except nats.js.errors.NotFoundError as exc:
        if is_stream_missing(exc):
            raise
        return None
    except nats.errors.NoRespondersError:
        # A direct get (a bucket made with allow_direct, as `nats kv add` makes one) is
        # a request to the stream's own subject: nobody answers it once the stream is
        # gone, as during an election. Asked as after an unanswered write.
        if kv._direct:
            await _stream_exists(kv)
        raise
    if msg.subject != f"{kv._pre}{key}":  # as nats-py checks it
        return None
    return msg


def _is_marker(msg: RawStreamMsg) -> bool:
    return (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE")


async def get(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    """(value, revision), or None if the key is absent or deleted; the bucket itself
    gone is the server's NotFoundError (:func:`_last_msg`)."""
    msg = await retrying(lambda: _last_msg(kv, key))
    if msg is None or _is_marker(msg) or msg.data is None or msg.seq is None:
        return None
    return msg.data, msg.seq


async def last_entry(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """(value, revision) of the key's last entry: value None for a delete marker (its
    revision) or nothing at all (revision 0, a key never written or purged). A write
    conditional on that revision fails if anything was written there since, a marker
    included (:func:`mark_deleted`). A delete marker's revision is its own: read as 0
    (nats-py's get raises KeyNotFoundError for one), a create conditional on it failed
    for ever and the guarded create, reading it again, spun (5,591 writes in 5 s after
    a take). The bucket gone: as :func:`get`."""
    msg = await retrying(lambda: _last_msg(kv, key))
    if msg is None:
        return None, 0
    if _is_marker(msg) or msg.data is None:
        return None, int(msg.seq or 0)
    return msg.data, int(msg.seq or 0)


async def mark_deleted(kv: KeyValue, key: str, last: int) -> None:
    """Write a delete marker on an absent key, conditional on its last revision being
    ``last`` (KeyWrongLastSequenceError if not): the key reads absent still, and its
    revision moved, so a create conditional on the old one (:func:`create_guarded`)
    fails. Listed by the stream's subjects until the key is written or purged: whoever
    lists keys reads each (core._scan skips it)."""
    headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(last)}
    try:
        await kv._js.publish(f"{kv._pre}{key}", b"", headers=headers)
    except nats.js.errors.APIError as exc:
        if exc.err_code in (10071, 10164):  # as nats-py's own update tells it
            raise nats.js.errors.KeyWrongLastSequenceError(description=exc.description) from None
        raise


CONFLICT_TRIES: Final = 10
"""Writes a guarded create tries, each refused as written since its read, before it
gives up (:func:`create_guarded`); the pauses between come to ~2 s in all."""
CONFLICT_PAUSE_S: Final = 0.02


async def create_guarded(
    kv: KeyValue, key: str, value: bytes, guard: Callable[[], Awaitable[None]]
) -> bool:
    """Write ``key`` only if it is absent, ``guard`` asked after the read that found it
    so (it raises to refuse) and the write conditional on that read's revision: whoever
    changes what the guard checks and then writes this key (even a marker only,
    :func:`mark_deleted`) makes the write fail, and the guard is asked again. False if a
    value is there. A write whose answer was lost is found by its bytes, as in
    :func:`create`.

    A write refused as written since the read ("wrong last sequence") reads again, at
    once the first time (a take's marker, a row another wrote: the next read settles
    it), then after a pause doubling from :data:`CONFLICT_PAUSE_S`, and at most
    :data:`CONFLICT_TRIES` times in all: a conflict that never ends (a revision read
    that the server's check never agrees with: once a delete marker read as revision
    0, 5,591 writes in 5 s) is the error QueueUnavailable saying so, not a spin. Not
    faults.retrying: that one paces outages by time and lets the error through at the
    end; this counts refusals of a server that answers."""
    sent = False
    conflicts = 0

    async def once() -> bool:
        nonlocal sent, conflicts
        while True:
            found, revision = await last_entry(kv, key)
            if found is not None:
                return sent and found == value
            await guard()
            try:
                await kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                # Written since the read (a row, or a take's marker): read again.
                conflicts += 1
                if conflicts >= CONFLICT_TRIES:
                    raise errors.QueueUnavailable(
                        f"bucket {kv._name}",
                        f"the create of {key} was refused {conflicts} times in a row as "
                        "written since it was read (wrong last sequence)",
                        f"something keeps writing {key}, or the server disagrees with "
                        "its revision: see `nats kv history` of it",
                    ) from None
                if conflicts > 1:
                    await asyncio.sleep(min(CONFLICT_PAUSE_S * 2 ** (conflicts - 2), 0.5))
                continue
            except TRANSIENT:
                sent = True  # maybe stored with the answer lost: the next read tells
                raise
            return True

    return await retrying(once)


async def create(
    kv: KeyValue,
    key: str,
    value: bytes,
    *,
    ours: Callable[[bytes], bool] | None = None,
    again: bool = False,
) -> bool:
    """Write ``key`` only if it does not exist (or was deleted): False if it does.
    After a transient failure the write may have happened with its answer lost (the
    server stored it, the ack never came back): a value found equal to ours (records
    carry unique ids and times) is ours, and so is one ``ours(found)`` recognises: a
    record that others may change at once (a message claimed before the sender was
    back) no longer equals what was written.

    JetStream's own de-duplication (the ``Nats-Msg-Id`` header) cannot do this for a
    create: a single nats-server checks the expected last sequence before the msg id
    and answers a repeat with 'wrong last sequence' (seen with v2.15.1; a cluster
    answers 'duplicate'), so the record itself has to say whose it is.

    ``again``: this call repeats an earlier one that failed without saying whether it
    wrote (a caller's retry with the same message id), so ``ours`` is asked at once."""
    retried = again

    async def once() -> bool:
        nonlocal retried
        try:
            await _answered_write(kv, kv.create(key, value))
        except nats.js.errors.KeyWrongLastSequenceError:
            if retried:
                found = await get(kv, key)
                if found is None:
                    return False
                return found[0] == value or (ours is not None and ours(found[0]))
            return False
        except TRANSIENT:
            retried = True
            raise
        return True

    return await retrying(once)


async def put(kv: KeyValue, key: str, value: bytes) -> None:
    """Write ``key`` whatever it holds (idempotent: retried through a reconnect)."""

    async def once() -> None:
        await _answered_write(kv, kv.put(key, value))

    await retrying(once)


STREAM_CHECK_S: Final = 1.0
"""How long :func:`_answered_write` waits for the server's word on the bucket's stream."""


async def _answered_write(kv: KeyValue, write: Awaitable[T]) -> T:
    """``await write``; if no stream answered it, ask the server whether the bucket's
    stream exists, and raise its NotFoundError if not. A publish to a missing stream
    finds no responders, as one to a stream electing its leader does: retried as such,
    a write to a lost bucket went unanswered for :data:`faults.RETRY_S` and then read
    "the NATS server was lost ... nothing written before this error is lost" (the reads
    say StoreLost at once: :func:`_last_msg`). Only the server's "stream not found"
    ends the retries; an election, a timeout or an outage leave the write to them."""
    try:
        return await write
    except nats.js.errors.NoStreamResponseError:
        await _stream_exists(kv)
        raise


async def _stream_exists(kv: KeyValue) -> None:
    """The server's NotFoundError if it says the bucket's stream does not exist; nothing
    otherwise (it exists, or no word within :data:`STREAM_CHECK_S`)."""
    js = kv._js._nc.jetstream(timeout=STREAM_CHECK_S)
    try:
        await js.stream_info(kv._stream)
    except nats.js.errors.NotFoundError as exc:
        if is_stream_missing(exc):
            raise exc from None
    except nats.errors.Error:
        pass


async def update(
    kv: KeyValue,
    key: str,
    change: Callable[[bytes], bytes | None],
    *,
    guard: Callable[[], Awaitable[None]] | None = None,
) -> tuple[bytes | None, bytes | None]:
    """Compare-and-set loop: read, ``change(old)`` -> new value (None: leave it), write
    if nobody wrote in between, else read again. Returns (old, new); (None, None) if
    the key is absent. ``change`` may raise to refuse. A write that fails transiently
    is tried again after a pause, for up to :data:`faults.RETRY_S`: a stream without a
    leader refuses at once (no responders) while reads still answer, so without the
    pause the loop would spin, and without the bound spin forever without a quorum.

    A write whose answer was lost may have been stored: the value read next is then
    this call's own write, which ``change`` would judge as someone else's (a claim
    finds the message leased, an ack finds it done). That value is taken as the
    success it is. Each step writes a time to the microsecond (claimed_at, done_at, a
    lease's end), so another writer's value is never the same bytes.

    ``guard``: asked after each read, before ``change``; it raises to refuse. What it
    checks elsewhere (another key) holds for the write as long as whoever changes that
    key then writes this one too (lease.AgentLeases.take): the write, conditional on
    the revision read before the guard, then fails and the guard is asked again."""
    unanswered: tuple[bytes, bytes] | None = None  # (old, new) of a write not answered

    async def once() -> tuple[bytes | None, bytes | None]:
        nonlocal unanswered
        while True:
            current = await get(kv, key)
            if current is None:
                return None, None
            old, revision = current
            if unanswered is not None and old == unanswered[1]:
                return unanswered
            if guard is not None:
                await guard()
            new = change(old)
            if new is None:
                return old, None
            try:
                await kv.update(key, new, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # someone else changed it first: decide again on the new value
            except TRANSIENT:
                # Maybe written with the answer lost: read again, and find our own write
                # there (done) or decide again on what is there.
                unanswered = (old, new)
                raise
            return old, new

    return await retrying(once)
