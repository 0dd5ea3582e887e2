"""Approvals through the queue: a call matching ``approve:`` waits for a yes.

An approval is a request from the agent to its approver (``user`` unless
``approver: NAME``) whose body is ``{"approval": {...}, "text": ...}``: the
agent, the tool, its input, the turn's cause, the subagent if one made the
call. The answer is the request's reply: ``{"approval": "granted"}`` or
``{"approval": "denied", "reason": ...}`` from ``octy-orchestrate approve/deny``,
or a text from an agent or a script, read as :data:`orchestrator.prompts.APPROVAL_GRAMMAR`
tells the approver: only a leading "approve"/"approved" grants; any other text is a
denial, the text its reason. No answer
within ``approval_timeout`` is a denial with that reason (the request is then
answered ``timeout`` and goes to the dead letters).

This module is the operator's side (``approvals``, ``approve``, ``deny``) and
the shapes both sides share; the agent's side is :mod:`orchestrator.approval_wait`.

Because it is a queue request, a pending approval outlives the supervisor: after
a restart the redelivered turn makes the same call, and the same request (same
agent, tool, input and cause) is waited on again, or its answer used if nobody acted
on it yet: a grant is used once (the agent's side records each use in the queue).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator import errors
from orchestrator.mailbox import USER, Message
from orchestrator.mailbox.opening import open_sync
from orchestrator.redact import escape_controls

if TYPE_CHECKING:
    from orchestrator.mailbox.opening import QueuePlace

GRANTED, DENIED = "granted", "denied"
# The first word only, and only these two: "OK, I checked: deny" and "Allow me to explain
# why not" were grants when ok/yes/allow counted, and "approve?" is a question.
_GRANT = re.compile(r"\s*approved?[.!,:;]*(?:\s|$)", re.IGNORECASE)


def approval_of(message: Message) -> dict[str, Any] | None:
    """The approval fields of a request, or None if it is not an approval."""
    body = message.body
    if message.kind != "request" or not isinstance(body, dict):
        return None
    fields = body.get("approval")
    return fields if isinstance(fields, dict) else None


def answer_of(reply: Message, request: Message | None = None) -> tuple[bool, str]:
    """(granted, reason) from an approver's reply, whatever shape it took. Given the
    request, only its approver or ``user`` (the operator) can grant it."""
    if request is not None and reply.sender not in (request.recipient, USER) and not reply.error:
        return False, (
            f"denied: answered by '{reply.sender}', who is not the approver ('{request.recipient}')"
        )
    if reply.error:
        return False, f"no approval: {reply.error}" + (
            f" ({reply.error_detail})" if reply.error_detail else ""
        )
    body = reply.body
    if isinstance(body, dict) and body.get("approval") in (GRANTED, DENIED):
        reason = str(body.get("reason") or "")
        if body["approval"] == GRANTED:
            return True, f"approved by {reply.sender}" + (f": {reason}" if reason else "")
        return False, f"denied by {reply.sender}" + (f": {reason}" if reason else "")
    text = (body if isinstance(body, str) else json.dumps(body)).strip()
    if isinstance(body, str) and _GRANT.match(text):
        return True, f"approved by {reply.sender}: {text}"
    return False, f"denied by {reply.sender}: {text or '(no reason given)'}"


INPUT_ROOM = 256 * 1024  # bytes of a call's input an approval carries (a body is 1 MiB)
CUT_CHARS = 16 * 1024  # a longer string of a shortened input keeps this much


def shown_input(tool_input: dict[str, Any]) -> tuple[Any, bool]:
    """The call's input as its approval request carries it, and whether it was shortened.

    Whole when it fits INPUT_ROOM; else each long string cut (saying how much), or, if
    that is not enough, the start of its JSON text. A big Write could otherwise never be
    asked about (the queue refuses a body over 1 MiB). The grant's key is over the whole
    input (:func:`key_of`), so the grant is for that very call."""
    if _fits(tool_input):
        return tool_input, False
    cut = {k: _cut(v) for k, v in tool_input.items()}
    if _fits(cut):
        return cut, True
    return {"shortened": _cut(_json(tool_input))}, True


def _fits(value: Any) -> bool:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return len(text.encode("utf-8", "replace")) <= INPUT_ROOM and not _deeper(value, 90)


def _deeper(value: Any, room: int) -> bool:
    """Nested deeper than ``room`` (the body's limit is MAX_BODY_DEPTH, with its frame)."""
    if not isinstance(value, dict | list):
        return False
    if room <= 0:
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_deeper(v, room - 1) for v in items)


def _cut(value: Any) -> Any:
    if not isinstance(value, str):
        return value if _fits(value) else _cut(_json(value))
    if len(value) <= CUT_CHARS:
        return value
    return value[:CUT_CHARS] + (
        f" [... {len(value) - CUT_CHARS} more characters, cut by octy-orchestrate]"
    )


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return repr(value)


# Fields of a call's input that change nothing it does: a label the model writes anew at
# each try. A grant is for the call's effect, so the same call labelled otherwise is the
# same call (the approval kept for an approved command held by writes, a redelivered turn).
LABELS: dict[str, frozenset[str]] = {"Bash": frozenset({"description"})}


def key_of(agent: str, tool: str, tool_input: dict[str, Any], cause_id: str | None) -> str:
    """What makes two calls the same call for a grant (the approval's ``key``): the agent,
    the tool, the whole input but its labels (:data:`LABELS`), and the turn's cause."""
    import hashlib  # noqa: PLC0415 - lazy: everyday CLI verbs import prompts, prompts this

    labels = LABELS.get(tool, frozenset())
    acting = {k: v for k, v in tool_input.items() if k not in labels}
    raw = json.dumps([agent, tool, acting, cause_id], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Pending:
    id: str
    agent: str
    approver: str
    tool: str
    input: Any
    subagent: str | None
    age_s: float
    expires_in_s: float
    why: str = ""  # why the call asks ("matches Bash(git push:*): runs code given to …")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pending(place: QueuePlace) -> list[Pending]:
    """Approvals nobody has answered yet, oldest first (past their timeout: left out,
    their agent denies them). ``place``: the team's SQLite file, or its NATS queue."""
    now = time.time()
    found = []
    # A read verb: on SQLite no write lock, no migration, no file made.
    with open_sync(place, readonly=True, create=False) as mb:
        for status in ("pending", "leased"):
            for m in mb.list(status=status, limit=100_000):
                fields = approval_of(m)
                if fields is None or mb.find_reply(m.id) is not None:
                    continue
                left = m.created_at + float(fields.get("timeout_s") or 0) - now
                if left <= 0:
                    continue
                found.append(
                    Pending(
                        m.id,
                        m.sender,
                        m.recipient,
                        str(fields.get("tool")),
                        fields.get("input"),
                        fields.get("subagent"),
                        round(now - m.created_at, 1),
                        round(left, 1),
                        str(fields.get("why") or ""),
                    )
                )
    return sorted(found, key=lambda p: -p.age_s)


def answer(
    place: QueuePlace,
    request_id: str,
    *,
    granted: bool,
    reason: str = "",
    sender: str = USER,
    retried: bool = False,
) -> Message:
    """Grant or deny one pending approval (as ``sender``), in the team's SQLite file or
    on its NATS queue (``place``). ``retried``: an earlier try of this same answer
    failed mid-way (the queue out of reach), so the same answer (granted or not, reason)
    by the same sender found there is that try's own write, returned as this one's; else
    any answer there is ApprovalNotFound saying what it was."""
    with open_sync(place, create=False) as mb:
        try:
            request = mb.get(request_id)
        except errors.MessageNotFound:
            raise errors.ApprovalNotFound(
                request_id,
                f"no message {request_id!r}; `octy-orchestrate approvals` lists the pending ones",
            ) from None
        fields = approval_of(request)
        if fields is None:
            raise errors.ApprovalNotFound(request_id, f"{request_id!r} is not an approval request")
        if sender not in (USER, request.recipient):
            raise errors.ApprovalNotFound(
                request_id,
                f"'{sender}' cannot answer approval '{request_id}': it asks "
                f"'{request.recipient}' (or the user)",
            )
        timeout_s = timeout_of(fields.get("timeout_s"))
        late = bool(timeout_s) and time.time() >= request.created_at + timeout_s
        if late and mb.find_reply(request_id) is None:
            # Its time ran out unanswered (the agent's wait was cut short: the CLI gave up on
            # its hook, or the supervisor was stopped): a late yes would be used by nobody,
            # or by a redelivered call long after. It ends here, as the agent's wait would.
            mb.fail_request(
                request_id,
                errors.RequestTimeout.code,
                f"no answer from the approver within {timeout_s:g}s: denied",
            )
        body: dict[str, Any] = {"approval": GRANTED if granted else DENIED}
        if reason:
            body["reason"] = reason
        try:
            return mb.reply(request_id, sender, body)
        except errors.AlreadyReplied:
            earlier = mb.find_reply(request_id)
            if (
                retried
                and earlier is not None
                and earlier.error is None
                and earlier.sender == sender
                and earlier.body == body
            ):
                # Tried again after the queue failed mid-try (cmd_answer): the very answer
                # asked for, by the same participant, is this verb's own write whose
                # confirmation was lost. Done, as asked: not "already answered".
                return earlier
            said = escape_controls(answer_of(earlier)[1] if earlier else "answered")
            if earlier is not None and earlier.error == errors.RequestTimeout.code:
                ran_out = request.created_at + timeout_s
                # The agent's wait may end before the approval_timeout: its check had to
                # answer first (approval_wait.HOOK_DEADLINE). Said as it was, not as a
                # time still to come.
                when = (
                    f"its wait ended at {_utc(earlier.created_at)}, before its "
                    f"{timeout_s:g}s approval_timeout ran out"
                    if earlier.created_at < ran_out
                    else f"its {timeout_s:g}s approval_timeout ran out at {_utc(ran_out)}"
                )
                raise errors.ApprovalNotFound(
                    request_id,
                    f"approval {request_id!r} came too late: {when}, and the agent was told "
                    f"it was not approved ({said}); nothing ran. The agent asks again if it "
                    "still needs to",
                ) from None
            raise errors.ApprovalNotFound(
                request_id, f"approval {request_id!r} was already answered ({said})"
            ) from None


def timeout_of(value: Any) -> float:
    """A request's ``timeout_s`` (any row: a foreign or hand-edited one may hold anything)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _utc(when: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    except (OverflowError, OSError, ValueError):
        return "a time that cannot be shown"
