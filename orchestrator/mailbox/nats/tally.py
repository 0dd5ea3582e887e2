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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nats.js.errors

from orchestrator.mailbox.nats.faults import retrying

if TYPE_CHECKING:
    from orchestrator.mailbox.nats.core import NatsCore


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
        cut = len(core._subject_prefix)
        fresh = 0  # keys first seen now in a record written after the count
        while True:
            start = self.seen + 1
            try:
                raw = await retrying(
                    lambda start=start: js.get_msg(  # type: ignore[misc]
                        core._stream, seq=start, subject=wanted, next=True
                    )
                )
            except nats.js.errors.NotFoundError:
                # Nothing after ``seen``: every message record up to the count's last
                # sequence is read (one rewritten since has a later one, read above).
                self.seen = max(self.seen, last)
                break
            key, seq = (raw.subject or "")[cut:], int(raw.seq or start)
            message = core._readable(key, raw.data or b"")
            if key not in self.known and seq > last:
                fresh += 1
            self.known[key] = (
                seq,
                None if message is None else message.status,
                message is not None and message.kind == "response",
            )
            self.reads += 1
            self.seen = seq
        if len(self.known) - fresh != total:
            # Keys went (or a key written before the count changed again after it, which
            # looks the same): the key list says which of ours are gone.
            live = set(await core._keys("m."))
            self.known = {k: v for k, v in self.known.items() if k in live}
