"""Reading the team's JSON-lines logs: whole histories across rotation, merged, followed live.

Every event is in ``supervisor.jsonl``, an agent's events also in ``<agent>.jsonl``
(written by :mod:`orchestrator.logconfig`). Each file and its rotations are read by
a :class:`~orchestrator.logfollow.FileFollower`; here they are chosen, filtered by
time and source, and merged in time order.
"""

from __future__ import annotations

import heapq
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.logconfig import SUPERVISOR_LOG
from orchestrator.logfollow import FileFollower, Hole, Keep, LogLine, rotated_paths

__all__ = [
    "FileFollower",
    "Hole",
    "Keep",
    "LogLine",
    "Source",
    "follow",
    "known_names",
    "merge",
    "parse_since",
    "read_events",
    "read_history",
    "rotated_paths",
    "select",
    "sources",
]

SUFFIX = ".jsonl"
POLL_S = 0.1
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Source:
    """What to read for one name: ``supervisor`` is the supervisor's own events (those
    bound to no agent) from supervisor.jsonl; an agent's name is its own file."""

    name: str
    base: Path
    own_events_only: bool = False

    def accepts(self, line: LogLine) -> bool:
        if not self.own_events_only:
            return True
        return line.agent in (None, SUPERVISOR_LOG)

    def exists(self) -> bool:
        return self.base.exists() or bool(rotated_paths(self.base))


def sources(folder: Path, names: Sequence[str] = ()) -> list[Source]:
    """No names: supervisor.jsonl, which holds every event. Otherwise one source per name."""
    everything = folder / f"{SUPERVISOR_LOG}{SUFFIX}"
    if not names:
        return [Source(SUPERVISOR_LOG, everything)]
    return [
        Source(n, everything, own_events_only=True)
        if n == SUPERVISOR_LOG
        else Source(n, folder / f"{n}{SUFFIX}")
        for n in dict.fromkeys(names)
    ]


def known_names(folder: Path) -> list[str]:
    """The names that have logs in ``folder`` (rotated-only ones included)."""
    names = {
        p.name.split(SUFFIX)[0]
        for p in folder.glob(f"*{SUFFIX}*")
        if p.name.endswith(SUFFIX) or p.name.rsplit(".", 1)[-1].isdigit()
    }
    return sorted(names)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``10s``, ``5m``, ``1h``, ``2d``, ``500ms`` ago, or an ISO time (without a zone: local)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        try:
            return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        except OverflowError:  # further back than any date (99999999999d): everything
            return datetime.min.replace(tzinfo=UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a duration (10s, 5m, 1h, 2d) nor an ISO time "
            "(2025-01-31T12:00:00, 2025-01-31 12:00+01:00)"
        ) from None
    try:
        # In UTC, as the lines' times: a naive time is local, and its conversion, like a
        # comparison across zones later, leaves datetime's range at its edges
        # (9999-12-31T23:59:59 in New York ended in OverflowError, 0001-01-01 in "year 0").
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(
            f"--since {text!r} is out of range in UTC; give a time from 0001-01-02 to 9999-12-30"
        ) from None


def merge(streams: Sequence[Iterable[LogLine]]) -> Iterator[LogLine]:
    """Lines of several time-ordered streams in one time order (ties keep stream order)."""
    if len(streams) == 1:
        return iter(streams[0])
    return heapq.merge(*streams, key=lambda line: line.timestamp)


def select(
    lines: Iterable[LogLine],
    source: Source | None = None,
    since: datetime | None = None,
) -> Iterator[LogLine]:
    """Lines a source accepts at or after ``since``; a line without a time follows the
    decision made for the line before it."""
    if since is None and (source is None or not source.own_events_only):
        yield from lines  # nothing to decide: leave the lines unparsed
        return
    keep = True
    for line in lines:
        if line.event is not None:
            keep = (source is None or source.accepts(line)) and (
                since is None or (line.at is not None and line.at >= since)
            )
        if keep:
            yield line


def read_history(
    chosen: Sequence[Source],
    *,
    since: datetime | None = None,
    tail: int | None = None,
    on_hole: Hole | None = None,
) -> list[LogLine]:
    """Every line of the chosen sources (rotated files included), merged and filtered.
    ``on_hole``: told of backup numbers missing for good (the files there are read)."""
    streams = []
    for source in chosen:
        follower = FileFollower(source.base, source.name, on_hole=on_hole)
        try:
            streams.append(_first(follower, source, since, tail))
        finally:
            follower.close()
    merged = merge(streams)
    return list(deque(merged, maxlen=tail)) if tail is not None else list(merged)


def _first(
    follower: FileFollower, source: Source, since: datetime | None, tail: int | None
) -> list[LogLine]:
    """What ``source`` holds now; with ``tail``, at least its last ``tail`` lines (all that
    the merge of several sources can keep). Without a time or source filter the tail is
    read backwards from the end (`logs -n 5` of 55 MB of logs reads a few blocks)."""
    if tail is not None and since is None and not source.own_events_only:
        return follower.history_tail(tail)
    return list(select(follower.history(), source, since))


def read_events(
    folder: Path, *, on_hole: Hole | None = None, keep: Keep | None = None
) -> list[Mapping[str, Any]]:
    """The decoded events of ``supervisor.jsonl`` and its rotations, oldest first.
    ``keep``: only the lines it picks (see :data:`Keep`), none other decoded."""
    follower = FileFollower(sources(folder)[0].base, on_hole=on_hole)
    try:
        lines = follower.history(keep)
    finally:
        follower.close()
    return [line.event for line in lines if line.event is not None]


def follow(
    chosen: Sequence[Source],
    *,
    since: datetime | None = None,
    tail: int | None = None,
    poll_s: float = POLL_S,
    on_gap: Callable[[Path], None] | None = None,
    on_hole: Hole | None = None,
    done: Callable[[], bool] | None = None,
) -> Iterator[list[LogLine]]:
    """The last ``tail`` lines (all if None) as a first batch, then each batch of new lines
    as it is written, across rotations, until ``done()`` says so when nothing new came (then
    what was written meanwhile is read once more), or for ever without ``done``."""
    followers = [(s, FileFollower(s.base, s.name, on_gap=on_gap, on_hole=on_hole)) for s in chosen]
    try:
        streams = [_first(f, s, since, tail) for s, f in followers]
        first = list(merge(streams))
        if tail is not None:
            first = list(deque(first, maxlen=tail))
        yield first
        while True:
            batch = [line for s, f in followers for line in select(f.poll(), s, since)]
            if batch:
                yield sorted(batch, key=lambda line: line.timestamp)  # stable: file order kept
            elif done is not None and done():
                # The writer has finished: its last lines may have landed since the poll.
                last = [line for s, f in followers for line in select(f.poll(), s, since)]
                if last:
                    yield sorted(last, key=lambda line: line.timestamp)
                return
            else:
                time.sleep(poll_s)
    finally:
        for _, f in followers:
            f.close()
