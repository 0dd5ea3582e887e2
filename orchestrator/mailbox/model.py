"""The queue's value types, constants and id format. Pure data, no I/O."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from orchestrator import errors, jsontext

USER: Final = "user"
"""The person at the CLI: always a valid sender and recipient, never registered."""

SUPERVISOR: Final = "supervisor"
"""Reserved name the supervisor registers under; CLI control commands are requests to it."""

SUPERVISOR_OWNER_PREFIX: Final = "octy-supervisor:"
"""Every lease the supervisor takes has an owner starting with this (then its instance,
``<pid>-<random>:``). ``up`` holds the team's lock, so no other supervisor is alive: it
returns to pending only leases with this prefix and another instance, never those of
other consumers (which run out by themselves). Other clients must not use the prefix."""
MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest encoded (UTF-8 JSON) body accepted: 1 MiB. Bigger payloads belong in files."""
MAX_BODY_DEPTH: Final = 100
"""Deepest nesting of lists and objects in a body. Python's JSON reader and writer recurse:
a body a few hundred levels deep was stored, and then every reader that printed it (queue ls,
inbox --json, queue show) ended in RecursionError; a few thousand failed the send itself."""

DEFAULT_MAX_ATTEMPTS: Final = 5
"""Deliveries before a message goes dead with error ``max_attempts``."""

DEFAULT_LEASE_S: Final = 30.0
"""How long a claim holds a message before another consumer may take it."""


class Keep(enum.Enum):
    """Type of :data:`KEEP`: "leave this field as it is" where None is a real value."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP

Kind = Literal["request", "response", "notice", "broadcast"]
Status = Literal["pending", "leased", "done", "dead"]
KINDS: Final = ("request", "response", "notice", "broadcast")
STATUSES: Final = ("pending", "leased", "done", "dead")

# Stable error codes written to ``messages.error``.
ERR_EXPIRED: Final = "expired"
ERR_MAX_ATTEMPTS: Final = "max_attempts"


@dataclass(frozen=True)
class Message:
    """One row of the ``messages`` table, body decoded."""

    id: str
    kind: str
    sender: str
    recipient: str
    correlation_id: str | None
    cause_id: str | None
    body: Any
    status: str
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires: float | None
    available_at: float
    created_at: float
    expires_at: float | None
    claimed_at: float | None
    done_at: float | None
    error: str | None
    error_detail: str | None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it copies the body by recursion (RecursionError on a deep
        # one written by plain SQL), and the body is plain JSON data already.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class AgentInfo:
    """One row of the ``agents`` table (the registry)."""

    name: str
    description: str
    pid: int | None
    state: str
    heartbeat_at: float | None
    registered_at: float
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        # Shallow, as Message.to_dict: a deep meta written by plain SQL ended `register`
        # (which prints the row) in RecursionError.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class SweepResult:
    """What one :meth:`Mailbox.sweep` changed."""

    requeued: int
    expired: int
    dead: int
    pruned: int


def number_column(column: str, otherwise: str, *, time: bool = False) -> str:
    """``column`` as stored when it is a number (a time: between 1970 and the year
    5138), NULL as NULL, anything else ``otherwise``. A plain-SQL writer (queue/README.md)
    can put text in a REAL column ('yesterday': SQLite keeps what it cannot convert) or
    1e308 in a time, and readers did arithmetic and dates on them: `queue ls`, `queue
    show` and `trace` ended in TypeError/OverflowError tracebacks. Checked in SQL, per
    row, in C."""
    number = f"(typeof({column}) = 'real' OR typeof({column}) = 'integer')"
    if time:
        number += f" AND {column} BETWEEN 0 AND 1e11"
    return f"CASE WHEN {column} IS NULL THEN NULL WHEN {number} THEN {column} ELSE {otherwise} END"


_TIMES: Final = ("lease_expires", "available_at", "created_at", "expires_at", "claimed_at")
STILL_CHECK_S: Final = 1.0
"""How often a wait for a reply asks its caller's ``still`` whether to go on waiting."""

MESSAGE_COLUMNS: Final = ", ".join(
    [
        "id, kind, sender, recipient, correlation_id, cause_id, body, status",
        number_column("attempts", "0"),
        number_column("max_attempts", "1"),
        "lease_owner",
        *(
            number_column(c, "0.0" if c in ("available_at", "created_at") else "NULL", time=True)
            for c in _TIMES
        ),
        number_column("done_at", "NULL", time=True),
        "error, error_detail",
    ]
)
# A pid is a positive whole number: a plain-SQL 1234.5 passed as a number, and `ps` and
# `top` called os.kill() on it (a TypeError traceback; top showed an empty table).
_PID: Final = "CASE WHEN typeof(pid) = 'integer' AND pid BETWEEN 1 AND 2147483647 THEN pid END"
AGENT_COLUMNS: Final = (
    f"name, description, {_PID}, state, "
    f"{number_column('heartbeat_at', 'NULL', time=True)}, "
    f"{number_column('registered_at', '0.0', time=True)}, meta"
)


_MESSAGE_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Message))


def make_message(*values: Any) -> Message:
    """``Message(*values)``, built ten times faster: a frozen dataclass's ``__init__``
    sets each of its 19 fields through ``object.__setattr__`` (2 us a message, which
    showed in throughput with many processes per core). Same fields, same object."""
    message = object.__new__(Message)
    message.__dict__.update(zip(_MESSAGE_FIELDS, values, strict=True))
    return message


def message_from_row(row: tuple[Any, ...]) -> Message:
    """Build a :class:`Message` from a row selected with :data:`MESSAGE_COLUMNS` (columns
    after those are ignored: a claim's sort keys). Built in place, without the copies and
    calls of ``make_message(*fields)``: a claim makes one per message (issue 14.3)."""
    message = object.__new__(Message)
    fields = message.__dict__
    fields.update(zip(_MESSAGE_FIELDS, row, strict=False))  # a longer row: fine
    if len(fields) != len(_MESSAGE_FIELDS):
        raise ValueError(f"a message row has {len(_MESSAGE_FIELDS)} columns, not {len(row)}")
    try:  # noqa: SIM105 - once per message read; contextlib.suppress costs more
        fields["body"] = json.loads(row[6])
    except (ValueError, RecursionError):  # bad, or nested past what Python reads (jsontext)
        pass  # a plain-SQL writer's: as text
    return message


def agent_from_row(row: tuple[Any, ...]) -> AgentInfo:
    name, description, pid, state, heartbeat_at, registered_at, meta = row
    return AgentInfo(name, description, pid, state, heartbeat_at, registered_at, meta_of(meta))


def meta_of(text: str) -> dict[str, Any]:
    """An agent's ``meta`` column as a dict; ``{}`` for one a plain-SQL writer left that
    is not an object (json_valid takes `[1]` and 999 nested arrays)."""
    try:
        meta = jsontext.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


# One encoder for every body: json.dumps() with non-default options builds a new
# encoder per call, a fifth of the Python time of a send.
_BODY_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _too_deep(body: Any) -> bool:
    """Whether lists (tuples: arrays too) and objects nest more than MAX_BODY_DEPTH
    levels, walked without recursion."""
    pending = [(body, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_BODY_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))
    return False


_TOO_DEEP: Final = (
    f"body nests lists or objects more than {MAX_BODY_DEPTH} levels deep; "
    "flatten it, or put it in a file and send its path"
)


def encode_body(body: Any) -> str:
    """JSON-encode a body, refusing what other languages could not read back."""
    try:
        text = _BODY_ENCODER.encode(body)
    except RecursionError:
        raise errors.InvalidBody(_TOO_DEEP) from None
    except (TypeError, ValueError) as exc:
        raise errors.InvalidBody(
            f"body is not JSON-serialisable ({exc}); send str, int, float, bool, None, "
            "or lists/dicts of them"
        ) from exc
    # Nesting deeper than the limit takes more brackets than the limit: most bodies are
    # cleared by two scans in C, and only the rest are walked (a walk of every body cost
    # 2.4x the encoding of a 50-object one).
    if text.count("[") + text.count("{") > MAX_BODY_DEPTH and _too_deep(body):
        raise errors.InvalidBody(_TOO_DEEP)
    if text.isascii():  # most bodies: one byte a character, nothing to encode
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for SQLite to store
            raise errors.InvalidBody(
                f"body holds {exc.object[exc.start : exc.end]!a} at character {exc.start}, "
                "a lone surrogate that is not valid Unicode text; send valid UTF-8"
            ) from exc
    if size > MAX_BODY_BYTES:
        raise errors.InvalidBody(
            f"body is {size} bytes encoded, over the {MAX_BODY_BYTES}-byte limit; "
            "put large payloads in a file and send its path"
        )
    return text


def encode_meta(meta: dict[str, Any]) -> str:
    try:
        return json.dumps(meta, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise errors.InvalidBody(f"agent meta is not JSON-serialisable ({exc})") from exc


# --- ids ----------------------------------------------------------------------
# 16 characters of Crockford base32 (lower case, no i/l/o/u): 48 bits of
# milliseconds then 32 bits that start random and count up within one
# millisecond in this process. Ids sort by creation time, are short enough to
# type in `queue show ID`, and stay unique across processes (a collision is
# retried by the store, see sending.py).

_CROCKFORD: Final = "0123456789abcdefghjkmnpqrstvwxyz"
# Every 10-bit value as two characters: an id is eight lookups (base64.b32encode
# is pure Python here and cost a tenth of a send).
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_ID_SHAPE: Final = re.compile(r"[0-9a-z]{1,40}")
_TIME_CHARS: Final = 10  # new_id's leading characters that hold its millisecond
_id_lock = threading.Lock()
_last_ms = -1
_counter = 0


def derived_id(key: str, *, near: str) -> str:
    """A message id in :func:`new_id`'s alphabet and length that is a function of ``key``
    (the same ask made again after its turn was delivered again gets the same id). Ids
    sort by time, and listings rely on it (a NATS bucket's order is its keys'): the id
    takes the time part (its first 10 characters: 50 of the 48 + 32 bits) of ``near``, an
    id of the same moment, so it sorts there and not after every id new_id will draw."""
    import hashlib  # noqa: PLC0415 - only the relay's asks: the CLI's start-up (issue 14.1)

    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())
    hashed = "".join(_CROCKFORD[(digest >> (5 * i)) & 31] for i in range(16))
    if len(near) == len(hashed) and is_id(near):
        return near[:_TIME_CHARS] + hashed[_TIME_CHARS:]
    return hashed


def is_id(text: str) -> bool:
    """Whether ``text`` could be a message id (what :func:`check_id` accepts)."""
    return _ID_SHAPE.fullmatch(text) is not None


# An id looked up (`queue show ID`, the agents' `reply` tool): new_id's, or one a plain-SQL
# writer chose (queue/README.md: the column is TEXT; a UUID, `job-42`), in the characters
# every backend's keys take. Looked up only: the library still makes new_id's shape.
_ADDRESS_SHAPE: Final = re.compile(r"[0-9A-Za-z_-]{1,128}")


def is_address(text: str) -> bool:
    """Whether ``text`` could be the id of a stored message (any writer's)."""
    return _ADDRESS_SHAPE.fullmatch(text) is not None


def check_id(message_id: str) -> str:
    """A caller-chosen message id (see ``send(message_id=...)``): made by :func:`new_id`,
    so it is a key on every backend."""
    if not is_id(message_id):
        raise ValueError(f"message_id must be an id from new_id(), not {message_id!r}")
    return message_id


def new_id() -> str:
    global _last_ms, _counter  # noqa: PLW0603 - per-process monotonic state, guarded by _id_lock
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(4), "big") >> 1  # headroom to count up
        else:
            ms = _last_ms
            _counter = (_counter + 1) & 0xFFFFFFFF
        n = ((ms & 0xFFFFFFFFFFFF) << 32) | _counter
    p = _PAIRS
    return (
        p[n >> 70]
        + p[(n >> 60) & 1023]
        + p[(n >> 50) & 1023]
        + p[(n >> 40) & 1023]
        + p[(n >> 30) & 1023]
        + p[(n >> 20) & 1023]
        + p[(n >> 10) & 1023]
        + p[n & 1023]
    )
