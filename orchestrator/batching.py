"""What one turn carries: which claimed messages are delivered together, and a final
text cut to what the queue can carry as a reply."""

from __future__ import annotations

import json
import re

from orchestrator.approvals import approval_of
from orchestrator.mailbox import MAX_BODY_BYTES, Message
from orchestrator.prompts import text_of

BATCH_LIMIT = 20  # messages delivered together at one turn boundary
BATCH_BYTES = MAX_BODY_BYTES  # and at most this much body text in one turn (one big body alone)


def batch_of(claimed: list[Message]) -> list[Message]:
    """What to deliver in one turn. A message delivered before (its turn failed, or its
    session died) goes alone, so a poison message fails by itself and the others it was
    batched with go through (issue 16.7). An approval request goes alone too: the
    approver's final text answers it, and must not be a text written for another message
    (a "Yes, the build is green" for a peer's question granted a deploy). Otherwise up to
    BATCH_BYTES of body text."""
    again = [m for m in claimed if m.attempts > 1]
    if again:
        return again[:1]
    if claimed and approval_of(claimed[0]) is not None:
        return claimed[:1]
    batch: list[Message] = []
    size = 0
    for m in claimed:
        if approval_of(m) is not None:
            break  # it gets a turn of its own, the next one
        size += len(text_of(m.body).encode("utf-8", "replace"))
        if batch and size > BATCH_BYTES:
            break
        batch.append(m)
    return batch


_SURROGATE = re.compile("[\ud800-\udfff]")


def fit_reply(text: str) -> str:
    """A final text the queue can carry as a reply (a body is at most MAX_BODY_BYTES encoded);
    a longer one is cut, and says so, rather than crash the session on every attempt. A
    lone surrogate (a model's half emoji, "\\ud83d") becomes U+FFFD, as any UTF-8 reader
    shows it: the queue refuses it as a body, and the same refusal came on every attempt."""
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    room = MAX_BODY_BYTES
    size = encoded_size(text)
    if size <= room:
        return text
    note = f"\n[truncated by octy-orchestrate: the reply was {size} bytes, over the queue's limit]"
    cut = text
    while encoded_size(cut) > room - len(note):
        cut = cut[: int(len(cut) * (room - len(note)) / encoded_size(cut) * 0.95)]
    return cut + note


def encoded_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))
