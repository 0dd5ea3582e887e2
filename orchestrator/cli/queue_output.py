"""Human output for the queue verbs: compact tables and message details.

Machine output is ``--json`` (see :mod:`orchestrator.cli.queue_verbs`); this
module only decides what a person reads in a terminal. Every name and body goes
through :func:`orchestrator.redact.for_people`: a peer's text cannot drive the
terminal, and a secret in it is masked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.mailbox import AgentInfo, Message
from orchestrator.redact import for_people

BODY_WIDTH = 48


def body_text(body: Any) -> str:
    """A body as a person reads it: strings as they are, anything else as JSON."""
    if isinstance(body, str):
        text = body
    else:
        try:
            text = json.dumps(body, ensure_ascii=False, indent=2)
        except RecursionError:  # indented JSON is written by recursion: one line instead
            text = json.dumps(body, ensure_ascii=False)
    return for_people(text, multiline=True)


def one_line(body: Any, width: int = BODY_WIDTH) -> str:
    """A body squeezed onto one table cell."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    text = " ".join(text.split())
    return for_people(text if len(text) <= width else text[: width - 1] + "…")


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago, in the largest unit that reads well: 850ms, 12s, 5m, 3h, 2d."""
    if ts is None:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:.0f}s"


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    rows = [[for_people(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def messages_table(messages: Sequence[Message], *, errors: bool = False) -> str:
    if not messages:
        return "(no messages)"
    headers = ["ID", "KIND", "FROM", "TO", "STATUS", "TRIES", "AGE"]
    if errors:
        headers.append("ERROR")
    headers.append("BODY")
    now = time.time()
    rows = []
    for m in messages:
        row = [
            m.id,
            m.kind,
            m.sender,
            m.recipient,
            m.status,
            f"{m.attempts}/{m.max_attempts}",
            age(m.created_at, now),
        ]
        if errors:
            row.append(m.error or "-")
        row.append(one_line(m.body))
        rows.append(row)
    return table(headers, rows)


def message_detail(m: Message, related: Sequence[Message]) -> str:
    fields: list[tuple[str, str]] = [
        ("id", m.id),
        ("kind", m.kind),
        ("from", m.sender),
        ("to", m.recipient),
        ("status", m.status),
        ("attempts", f"{m.attempts} of {m.max_attempts}"),
        ("created", when(m.created_at)),
    ]
    optional: list[tuple[str, Any]] = [
        ("correlation", m.correlation_id),
        ("cause", m.cause_id),
        ("lease", f"{m.lease_owner} until {when(m.lease_expires)}" if m.lease_owner else None),
        ("claimed", when(m.claimed_at) if m.claimed_at else None),
        ("done", when(m.done_at) if m.done_at else None),
        ("expires", when(m.expires_at) if m.expires_at else None),
        ("error", f"{m.error}: {m.error_detail}" if m.error and m.error_detail else m.error),
    ]
    fields.extend((k, str(v)) for k, v in optional if v)
    lines = [f"{k + ':':<13}{for_people(v)}" for k, v in fields]
    lines.append("body:")
    lines.extend("  " + line for line in body_text(m.body).splitlines() or [""])
    if related:
        lines += ["", "related:", messages_table(related)]
    return "\n".join(lines)


def inbox_listing(messages: Sequence[Message], *, acked: bool) -> str:
    """One block per message: a header line, then the body indented."""
    if not messages:
        return "(no messages)"
    now = time.time()
    blocks = []
    for m in messages:
        head = for_people(f"{m.id}  {m.kind} from {m.sender}, {age(m.created_at, now)} ago")
        if m.attempts > 1:
            head += f", delivery {m.attempts} of {m.max_attempts}"
        body = "\n".join("  " + line for line in body_text(m.body).splitlines() or [""])
        blocks.append(f"{head}\n{body}")
    footer = "acked" if acked else "left in the queue (peek); --ack takes delivery"
    return "\n".join(blocks) + f"\n({len(messages)} message{'s' * (len(messages) != 1)}, {footer})"


def agent_line(a: AgentInfo) -> str:
    desc = f" - {a.description}" if a.description else ""
    return for_people(f"registered {a.name} (state {a.state}){desc}")
