"""The life of one message across agents: a timeline built from the queue and the logs.

The queue knows the family (``Mailbox.related``: the message, everything its
handling caused through ``cause_id``, and their replies) with the times each was
sent, claimed and finished. The logs add what only the agents saw: the turn a
delivery started (from ``received`` to that agent's next ``turn``), the tools
used in it, an asker receiving its answer, requeues, and which messages shared a turn
(their hops belong to each of them: see :mod:`orchestrator.traceturns`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator import traceturns
from orchestrator.logconfig import agent_colour
from orchestrator.logview import Hole, read_events
from orchestrator.mailbox import Message
from orchestrator.mailbox.opening import QueuePlace, open_sync
from orchestrator.prompts import SERVER, text_of  # a body reads as the model reads it
from orchestrator.redact import for_people
from orchestrator.tracelines import TURN_ENDS, Relevant

# Events that only repeat what the queue already records for the same message.
_IN_QUEUE = frozenset({"sent", "asked", "replied", "broadcast"})
# The relay's own tools: their effect shows as messages.
_RELAY_TOOLS = f"mcp__{SERVER}__"
_ID_KEYS = ("message_id", "request_id")
# Shared turns inside shared turns, followed this many levels deep (each reads the logs).
_SHARED_ROUNDS = 8
# Tie-break for steps stamped the same instant, in the order they can happen.
_RANK = {"request": 0, "notice": 0, "broadcast": 0, "claimed": 1, "turn_started": 2}


@dataclass(frozen=True)
class Step:
    """One thing that happened: ``actor`` did ``kind`` (to ``target``) at ``at``."""

    at: float  # seconds since the epoch
    kind: str  # request notice broadcast reply error claimed turn_started tool turn answered
    # done dead, or a log event's own name
    actor: str
    message_id: str | None = None
    target: str | None = None
    text: str = ""
    depth: int = 0  # how many causes up to the traced message

    @property
    def arrow(self) -> bool:
        return self.target is not None and self.kind in (
            "request",
            "notice",
            "broadcast",
            "reply",
            "error",
        )


@dataclass(frozen=True)
class Trace:
    root: Message
    messages: tuple[Message, ...]
    steps: tuple[Step, ...]

    @property
    def start(self) -> float:
        return self.steps[0].at if self.steps else self.root.created_at

    def ms(self, step: Step) -> int:
        """Milliseconds from the first step."""
        return round((step.at - self.start) * 1000)

    @property
    def reply(self) -> Message | None:
        """The traced request's answer (or error response), if it has one."""
        return next(
            (m for m in self.messages if m.kind == "response" and m.correlation_id == self.root.id),
            None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.root.id,
            "messages": [m.to_dict() for m in self.messages],
            "steps": [{**asdict(s), "ms": self.ms(s)} for s in self.steps],
        }


def load_trace(
    db: QueuePlace, message_id: str, logs: Path | None, *, on_hole: Hole | None = None
) -> Trace:
    """Trace ``message_id`` (a response traces its request). MessageNotFound if unknown.
    ``on_hole``: told of log backups missing for good (see :func:`read_events`)."""
    with open_sync(db, readonly=True) as mailbox:  # a read verb: no write lock, no migration
        message = mailbox.get(message_id)
        if message.kind == "response" and message.correlation_id:
            message_id = message.correlation_id
        family = {m.id: m for m in mailbox.related(message_id)}
        events: list[Mapping[str, Any]] = []
        stands_for: dict[str, str] = {}
        for n in range(_SHARED_ROUNDS):  # one more read of the logs per level of them
            if logs is None or not logs.is_dir():
                break
            hole = on_hole if n == 0 else None  # told once
            events = read_events(logs, on_hole=hole, keep=Relevant(family))
            hops, found = traceturns.hops_of(mailbox, traceturns.shared_turns(events), family)
            fresh = [m for m in hops if m.id not in family]
            stands_for.update(found)
            if not fresh:
                break
            family.update((m.id, m) for m in fresh)
    ordered = list(family.values())  # oldest first, then the hops of shared turns
    if stands_for:
        ordered.sort(key=lambda m: m.created_at)
    return build_trace(message_id, ordered, events, stands_for=stands_for)


def build_trace(
    root_id: str,
    family: Iterable[Message],
    events: Iterable[Mapping[str, Any]],
    *,
    stands_for: Mapping[str, str] | None = None,
) -> Trace:
    """The timeline of ``root_id`` from its family of messages and the log events.
    ``stands_for``: a shared turn's first message (outside the family) -> the family's
    message handled in that turn, so the turn's hops sit one level below it."""
    messages = tuple(family)
    events = list(events)
    by_id = {m.id: m for m in messages}
    root = by_id[root_id]
    depth = {m.id: _depth(m, by_id, root_id, stands_for or {}) for m in messages}
    steps = [s for m in messages for s in _queue_steps(m, depth[m.id])]
    steps += _log_steps(events, by_id, depth)
    steps = _name_subagents(steps, events)
    steps.sort(key=lambda s: (s.at, _RANK.get(s.kind, 5)))
    return Trace(root, messages, tuple(steps))


def _depth(
    m: Message, by_id: Mapping[str, Message], root_id: str, stands_for: Mapping[str, str]
) -> int:
    """Causes between ``m`` and the traced message; a reply sits at its request's depth."""
    n = 0
    for _ in range(len(by_id)):  # a bound, should the ids ever form a loop
        if m.id == root_id:
            break
        up = m.correlation_id if m.kind == "response" else m.cause_id
        up = stands_for.get(up, up) if up is not None and up not in by_id else up
        if up is None or up not in by_id:
            break
        n += m.kind != "response"
        m = by_id[up]
    return n


def _queue_steps(m: Message, depth: int) -> list[Step]:
    if m.kind == "response":
        if m.error:
            return [Step(m.created_at, "error", m.sender, m.id, m.recipient, _error(m), depth)]
        return [Step(m.created_at, "reply", m.sender, m.id, m.recipient, text_of(m.body), depth)]
    steps = [Step(m.created_at, m.kind, m.sender, m.id, m.recipient, text_of(m.body), depth)]
    if m.claimed_at is not None:
        steps.append(
            Step(
                m.claimed_at,
                "claimed",
                m.recipient,
                m.id,
                text=f"attempt {m.attempts}",
                depth=depth,
            )
        )
    if m.done_at is not None:
        detail = _error(m) if m.status == "dead" else ""
        steps.append(
            Step(
                m.done_at,
                "dead" if m.status == "dead" else "done",
                m.recipient,
                m.id,
                text=detail,
                depth=depth,
            )
        )
    return steps


def _error(m: Message) -> str:
    return f"{m.error}: {m.error_detail}" if m.error_detail else str(m.error or "")


def _log_steps(
    events: Iterable[Mapping[str, Any]], by_id: Mapping[str, Message], depth: Mapping[str, int]
) -> list[Step]:
    steps: list[Step] = []
    open_turns: dict[str, str] = {}  # agent -> the traced message whose delivery opened it
    for e in events:
        at, name, agent = _epoch(e.get("timestamp")), str(e.get("event", "")), e.get("agent")
        if at is None or not isinstance(agent, str):
            continue
        ids = [i for i in _ids(e) if i in by_id]
        mid = ids[0] if ids else open_turns.get(agent)
        d = depth.get(mid, 0) if mid else 0
        if name == "received" and ids:
            if agent not in open_turns:
                open_turns[agent] = ids[0]
                steps.append(
                    Step(
                        at,
                        "turn_started",
                        agent,
                        ids[0],
                        text=f"attempt {e.get('attempt', '?')}",
                        depth=d,
                    )
                )
        elif name in TURN_ENDS and agent in open_turns:
            opener = open_turns.pop(agent)
            kind = "turn" if name == "turn" else name
            steps.append(Step(at, kind, agent, opener, text=_turn_text(e, opener), depth=d))
        elif name == "tool_used" and agent in open_turns:
            tool = str(e.get("tool", ""))
            if not tool.startswith(_RELAY_TOOLS):
                via = f"(subagent {e['subagent']}) " if e.get("subagent") else ""
                steps.append(
                    Step(
                        at,
                        "tool",
                        agent,
                        mid,
                        text=f"{via}{tool} {_compact(e.get('input'))}",
                        depth=d,
                    )
                )
        elif name == "answered" and ids:
            steps.append(
                Step(
                    at,
                    "answered",
                    agent,
                    ids[0],
                    target=str(e.get("by", "")) or None,
                    text=str(e.get("body", "")),
                    depth=d,
                )
            )
        elif ids and name not in _IN_QUEUE:
            steps.append(Step(at, name, agent, ids[0], text=_rest(e), depth=d))
    return steps


def _name_subagents(steps: list[Step], events: Iterable[Mapping[str, Any]]) -> list[Step]:
    """A message a subagent sent (issue 11): the queue knows only the roster agent; the
    relay's log line names the subagent, and the step says so."""
    via = {
        str(e.get("request_id") or e.get("message_id")): str(e["subagent"])
        for e in events
        if e.get("event") in ("asked", "sent") and e.get("subagent")
    }
    if not via:
        return steps
    return [
        replace(s, text=f"(subagent {via[s.message_id]}) {s.text}")
        if s.kind in ("request", "notice") and s.message_id in via
        else s
        for s in steps
    ]


def _ids(e: Mapping[str, Any]) -> list[str]:
    found = [e[k] for k in _ID_KEYS if isinstance(e.get(k), str)]
    listed = e.get("messages")
    if isinstance(listed, list):
        found += [i for i in listed if isinstance(i, str)]
    return found


def _turn_text(e: Mapping[str, Any], own: str) -> str:
    text = _usage_text(e)
    listed = e.get("messages")
    others = (
        [i for i in listed if isinstance(i, str) and i != own] if isinstance(listed, list) else []
    )
    if not others:
        return text
    more = f" and {len(others) - 3} more" if len(others) > 3 else ""
    # Tokens and cost are the whole turn's: the same figures show in each one's trace.
    shared = f"shared: handled in one turn with {', '.join(others[:3])}{more}"
    return f"{text} ({shared})" if text else shared


def _usage_text(e: Mapping[str, Any]) -> str:
    if e.get("event") != "turn":
        return _rest(e)
    parts = []
    if e.get("duration_ms") is not None:
        parts.append(f"{e['duration_ms']} ms")
    parts.append(f"{e.get('input_tokens', 0)}+{e.get('output_tokens', 0)} tokens")
    if e.get("cost_usd"):
        parts.append(f"${float(e['cost_usd']):.4f}")
    return ", ".join(parts)


def _rest(e: Mapping[str, Any]) -> str:
    skip = {"timestamp", "level", "event", "agent", "messages", *_ID_KEYS}
    return " ".join(f"{k}={_compact(v)}" for k, v in e.items() if k not in skip and v is not None)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _epoch(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else None
    except ValueError:
        return None


# --- rendering -----------------------------------------------------------------------


def shorten(text: str, width: int) -> str:
    """One line for people: secrets redacted, controls escaped, at most ``width`` long."""
    text = for_people(" ".join(text.split()))
    return text if not width or len(text) <= width else text[: width - 1] + "…"


def render_timeline(trace: Trace, *, colour: bool = False, width: int = 100) -> list[str]:
    """Lines for people: ``+12 ms  coordinator → researcher  request 01h…  "text"``."""

    def who(name: str) -> str:
        name = for_people(name)
        return f"\x1b[{agent_colour(name)}m{name}\x1b[0m" if colour else name

    root, reply = trace.root, trace.reply
    head = for_people(f"{root.kind} {root.id}: {root.sender} → {root.recipient}, {root.status}")
    if reply is not None:
        ms = round((reply.created_at - trace.start) * 1000)
        head += f", {'failed' if reply.error else 'answered'} after {ms} ms"
    lines = [head]
    for s in trace.steps:
        arrow = "←" if s.kind == "answered" else "→"  # the asker receives its answer
        where = f"{who(s.actor)} {arrow} {who(s.target)}" if s.target else who(s.actor)
        what = for_people(s.kind if not s.message_id else f"{s.kind} {s.message_id}")
        text = shorten(s.text, width)
        if s.arrow or s.kind == "answered":
            text = f'"{text}"'  # already one line, controls escaped
        lines.append(f"{trace.ms(s):>8} ms  {'  ' * s.depth}{where}  {what}  {text}".rstrip())
    turns = sum(1 for s in trace.steps if s.kind == "turn")
    lines.append(f"{len(trace.messages)} message(s), {turns} turn(s)")
    return lines


_SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MERMAID_WORDS = frozenset(
    {
        "end",
        "participant",
        "actor",
        "as",
        "note",
        "loop",
        "alt",
        "else",
        "opt",
        "par",
        "and",
        "rect",
        "critical",
        "break",
        "activate",
        "deactivate",
        "box",
        "autonumber",
        "over",
        "left",
        "right",
        "of",
        "title",
        "create",
        "destroy",
        "links",
        "link",
    }
)
# Mermaid ends a statement at ';' and reads '#…;' as an entity: write them as entities.
_MERMAID_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;"})
_ARROWS = {"request": "->>", "notice": "-)", "broadcast": "-)", "reply": "-->>", "error": "--x"}


def render_mermaid(trace: Trace, *, width: int = 60) -> str:
    """A mermaid ``sequenceDiagram``: requests ``->>``, replies ``-->>``, turns as notes."""
    ids: dict[str, str] = {}
    for s in trace.steps:
        for name in (s.actor, s.target):
            if name is not None and name not in ids:
                safe = _SAFE_NAME.match(name) and name.lower() not in _MERMAID_WORDS
                ids[name] = name if safe else f"p{len(ids)}"
    out = ["sequenceDiagram"]
    for name, pid in ids.items():
        alias = for_people(" ".join(name.split())).translate(_MERMAID_ESCAPES)
        out.append(f"    participant {pid}" if pid == name else f"    participant {pid} as {alias}")

    def label(*parts: str) -> str:
        return shorten(" · ".join(p for p in parts if p), width).translate(_MERMAID_ESCAPES)

    for s in trace.steps:
        at = f"+{trace.ms(s)} ms"
        if s.arrow and s.target is not None:
            arrow = _ARROWS[s.kind]
            out.append(f"    {ids[s.actor]}{arrow}{ids[s.target]}: {label(at, s.kind, s.text)}")
        elif s.kind == "turn_started":
            out.append(f"    Note over {ids[s.actor]}: {label(at, 'turn started')}")
        elif s.kind == "turn":
            out.append(f"    Note over {ids[s.actor]}: {label(at, 'turn done', s.text)}")
        elif s.kind in ("dead", "turn_failed", "requeued", "interrupting", "session_ended"):
            out.append(f"    Note over {ids[s.actor]}: {label(at, s.kind, s.text)}")
    return "\n".join(out) + "\n"
