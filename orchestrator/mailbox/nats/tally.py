"""How many messages are in each status, kept by a client between calls and brought up
to date by reading only what changed: what `top` asks once a second.

Listing the bucket reads every message (``_all_messages``: one get each), so a team
line counted that way cost ~0.4 s of CPU a second with 2,000 messages. The bucket's
stream keeps one record per key (history 1), each under a sequence number that grows
with every write, so the records written since the last call are those after the last
sequence read: asked for one by one (``next_by_subj``), none when nothing changed. A
key removed meanwhile (purge, sweep: ``_delete`` purges its subject, no marker) is not
among them: the server's count of message keys (one request, no key list) then falls
short of ours, and one listing of the keys (no values) says which went.

The first call reads every message once, streamed by an ordered consumer (2,000
records: 90 ms of CPU, where a request each took 450 ms); whatever that read leaves
(an error, a record written meanwhile) the one-by-one reads after it take up.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import nats.errors
import nats.js.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from orchestrator.mailbox.nats.faults import retrying

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

    from orchestrator.mailbox.model import Message
    from orchestrator.mailbox.nats.connect import NatsConfig


class NatsCore(Protocol):
    """What the tally reads of the NATS client (``core.NatsCore``, which holds a tally:
    named here, not imported, so the two modules do not import each other)."""

    config: NatsConfig
    _stream: str
    _subject_prefix: str

    @property
    def nc(self) -> Client: ...

    async def _keys(self, prefix: str) -> list[str]: ...

    async def _count_keys(self, prefix: str) -> tuple[int, int, str]: ...

    def _readable(self, key: str, data: bytes) -> Message | None: ...


STREAM_FROM: Final = 64  # message keys from which the first read is streamed


@dataclass
class StatusTally:
    """Per message key: (the sequence of its record, its status, whether a response),
    status None for a record that is not a message (counted nowhere)."""

    stream: str = ""  # when the bucket's stream was made (another one: start over)
    seen: int = 0  # the last sequence of the stream read
    known: dict[str, tuple[int, str | None, bool]] = field(default_factory=dict)
    reads: int = 0  # records read over the tally's life (what tests count)

    async def counts(self, core: NatsCore, statuses: Sequence[str]) -> dict[str, int]:
        await self._catch_up(core)
        tally = Counter(
            status for _, status, response in self.known.values() if status and not response
        )
        return {s: tally[s] for s in statuses}

    async def _catch_up(self, core: NatsCore) -> None:
        total, last, made = await core._count_keys("m.")
        if made != self.stream or last < self.seen:  # the bucket was made again
            self.seen, self.known, self.stream = 0, {}, made
        js = core.nc.jetstream(timeout=core.config.request_timeout_s)
        wanted = f"{core._subject_prefix}m.>"
        fresh = 0  # keys first seen now in a record written after the count
        if self.seen == 0 and total >= STREAM_FROM:
            fresh += await self._stream_all(core, js, wanted, last)
        while True:
            start = self.seen + 1

            async def next_record(start: int = start) -> nats.js.api.RawStreamMsg:
                return await js.get_msg(core._stream, seq=start, subject=wanted, next=True)

            try:
                raw = await retrying(next_record)
            except nats.js.errors.NotFoundError:
                # Nothing after ``seen``: every message record up to the count's last
                # sequence is read (one rewritten since has a later one, read above).
                self.seen = max(self.seen, last)
                break
            seq = int(raw.seq or start)
            fresh += self._note(core, raw.subject or "", seq, raw.data, last, headers=raw.headers)
        if len(self.known) - fresh != total:
            # Keys went (or a key written before the count changed again after it, which
            # looks the same): the key list says which of ours are gone.
            live = set(await core._keys("m."))
            self.known = {k: v for k, v in self.known.items() if k in live}

    def _note(
        self,
        core: NatsCore,
        subject: str,
        seq: int,
        data: bytes | None,
        last: int,
        *,
        headers: Mapping[str, str] | None,
    ) -> int:
        """Keep one record's status; 1 if its key is new and written after ``last``. A
        delete marker (``nats kv del``, an older version's delete) is no message, and no
        garbled one either: counted nowhere, unsaid (each `ps` warned of each one)."""
        key = subject[len(core._subject_prefix) :]
        marker = (headers or {}).get("KV-Operation") in ("DEL", "PURGE")
        message = None if marker else core._readable(key, data or b"")
        fresh = int(key not in self.known and seq > last)
        self.known[key] = (
            seq,
            None if message is None else message.status,
            message is not None and message.kind == "response",
        )
        self.reads += 1
        self.seen = max(self.seen, seq)
        return fresh

    async def _stream_all(
        self, core: NatsCore, js: JetStreamContext, wanted: str, last: int
    ) -> int:
        """Every message record, pushed by an ordered consumer (no ack, in memory,
        removed after) until the server says none is left: each record a request
        cost five times the CPU. Any trouble ends it early; the caller's reads go on
        from the last record taken."""
        fresh = 0
        sub = None
        try:
            sub = await js.subscribe(
                wanted,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                config=ConsumerConfig(opt_start_seq=1),
            )
            while True:
                msg = await sub.next_msg(timeout=core.config.request_timeout_s)
                meta = msg.metadata
                fresh += self._note(
                    core, msg.subject, meta.sequence.stream, msg.data, last, headers=msg.headers
                )
                if not meta.num_pending:
                    return fresh
        except nats.errors.Error:  # a timeout (keys removed meanwhile), a lost server
            return fresh
        finally:
            if sub is not None:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
