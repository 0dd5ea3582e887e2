"""Which log lines a trace reads, chosen as raw bytes before any is decoded.

A trace needs the events that name a message of the traced family, and an agent's
events from one of those until its turn ends (the turn's tools and its end name no
message). Most lines of a full-size log are neither: decoding only these made
`trace` on 55 MB of logs several times faster and smaller (docs/benchmarks.md).
The choice is a superset of what :func:`orchestrator.trace.build_trace` uses, which
still decides from the decoded events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from orchestrator import jsontext

# Events that end an agent's turn, finished or not.
TURN_ENDS = frozenset({"turn", "turn_failed", "requeued", "interrupting", "session_ended"})


class Relevant:
    """A :data:`orchestrator.logfollow.Keep` for :func:`orchestrator.logview.read_events`.
    It sees the lines in file order and keeps state: the agents whose turn a family
    message opened. Outside such a turn it jumps from one family id to the next with one
    regular-expression search over a whole read, never looking at the lines between."""

    def __init__(self, ids: Iterable[str]) -> None:
        wanted = sorted({i.encode() for i in ids if i})
        self._ids = re.compile(b"|".join(re.escape(i) for i in wanted)) if wanted else None
        self._open: set[bytes] = set()  # `"agent": "a"` as the log writes it

    def __call__(self, lines: list[bytes]) -> list[bytes]:
        if self._ids is None:
            return []
        data = b"\n".join(lines)
        kept: list[bytes] = []
        i, pos = 0, 0  # a line and where it starts in data
        while i < len(lines):
            if not self._open:
                hit = self._ids.search(data, pos)
                if hit is None:
                    break
                i += data.count(b"\n", pos, hit.start())
                pos = data.rfind(b"\n", 0, hit.start()) + 1
            if self._wanted(lines[i]):
                kept.append(lines[i])
            pos += len(lines[i]) + 1
            i += 1
        return kept

    def _wanted(self, raw: bytes) -> bool:
        assert self._ids is not None
        if self._ids.search(raw):
            event = _decode(raw)
            agent = _marker(event.get("agent"))
            if agent is not None:
                if event.get("event") in TURN_ENDS:
                    self._open.discard(agent)
                else:
                    self._open.add(agent)
            return True
        if any(agent in raw for agent in self._open):
            event = _decode(raw)
            if event.get("event") in TURN_ENDS:
                self._open.discard(_marker(event.get("agent")) or b"")
            return True
        return False


def _decode(raw: bytes) -> dict[str, object]:
    try:
        value = jsontext.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _marker(agent: object) -> bytes | None:
    """The bytes every line of ``agent`` holds, as logconfig writes lines (json.dumps)."""
    if not isinstance(agent, str) or not agent:
        return None
    return b'"agent": ' + json.dumps(agent, ensure_ascii=False).encode()
