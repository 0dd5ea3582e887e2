"""``approvals``, ``approve ID``, ``deny ID [--reason]``: answer agents' approval requests
(issue 11). They need only the team's queue (its SQLite database, or the NATS queue its
roster names), not a running supervisor."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import errors, outage
from orchestrator.cli import common, ps_view
from orchestrator.cli.common import CliFailure
from orchestrator.mailbox import USER

if TYPE_CHECKING:
    from orchestrator.mailbox import Message
    from orchestrator.mailbox.opening import QueuePlace

_SHOWN = 60  # characters of a call's input in the table
_WHY_SHOWN = 90  # ... and of why it asks (the rule, and what could not be read)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "approvals",
        help="tool calls waiting for approval: id, agent, tool, input, age, why it asks",
        description="Calls matching an agent's `approve:` rules wait for an answer "
        "(approve ID / deny ID); no answer within approval_timeout denies them. "
        "They read the team's queue: its database, or the NATS queue its roster names.",
    )
    _options(p)
    p.set_defaults(func=cmd_approvals)
    for verb, text in (
        ("approve", "let a waiting tool call run"),
        ("deny", "refuse a waiting tool call (the agent reads the reason)"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("id", metavar="ID", help="the approval's id (see `approvals`)")
        p.add_argument(
            "--reason", default="", metavar="TEXT", help="told to the agent (default: none)"
        )
        p.add_argument(
            "--as",
            dest="sender",
            default=None,
            metavar="NAME",
            help="answer as this participant (default: user)",
        )
        _options(p)
        p.set_defaults(func=cmd_answer, granted=verb == "approve")


def _options(p: argparse.ArgumentParser) -> None:
    common.add_common(p)
    p.add_argument(
        "-f",
        "--file",
        type=common.roster_file,
        default=None,
        help="the roster (default ./agents.yaml)",
    )


def _place(args: argparse.Namespace) -> QueuePlace:
    """The team's queue, found as the queue verbs find it: a roster with ``queue:`` (NATS)
    gives that queue (before, these verbs read only the SQLite file: "no team database"
    on a NATS team, or no such request in a stray local one)."""
    place = common.resolve_place(args, args.file)
    if isinstance(place, Path) and not place.exists():
        raise CliFailure(f"no team database at {place}", common.EXIT_NOT_FOUND, "not_found")
    return place


def cmd_approvals(args: argparse.Namespace) -> int:
    from orchestrator.approvals import pending

    try:
        rows = pending(_place(args))
    except errors.OrchestratorError as exc:  # the NATS server out of reach, say
        raise common.failure_from(exc) from None
    if args.json:
        common.emit_json({"ok": True, "approvals": [r.to_dict() for r in rows]})
        return common.EXIT_OK
    if not rows:
        print("no approvals pending")
        return common.EXIT_OK
    header = ("ID", "AGENT", "APPROVER", "TOOL", "INPUT", "AGE", "EXPIRES IN", "WHY")
    table = [header] + [
        (
            r.id,
            r.agent + (f"/{r.subagent}" if r.subagent else ""),
            r.approver,
            r.tool,
            _short(r.input),
            f"{r.age_s:.0f}s",
            f"{r.expires_in_s:.0f}s",
            _cut(r.why, _WHY_SHOWN) or "-",
        )
        for r in rows
    ]
    for line in ps_view.render(header, table[1:], colour=False):  # cells escaped
        print(line)
    return common.EXIT_OK


def cmd_answer(args: argparse.Namespace) -> int:
    from orchestrator.approvals import answer

    common.message_id(args.id, "approvals")
    sender = args.sender or USER
    own = os.environ.get(common.AGENT_ENV)
    if own and sender != own:  # run by an agent's tools: it speaks as itself only
        raise CliFailure(
            f"running as agent '{own}': cannot answer as '{sender}'",
            common.EXIT_USAGE,
            "not_allowed",
        )
    place, who = _place(args), own or sender
    tries = 0

    def once() -> Message:
        nonlocal tries
        tries += 1
        return answer(
            place, args.id, granted=args.granted, reason=args.reason, sender=who, retried=tries > 1
        )

    try:
        if isinstance(place, Path):  # SQLite: a refusal is said at once, as before
            reply = once()
        else:
            # NATS: through a short outage (a restart, an election), as `send` does: the
            # answer is written only if absent and a try after a failed one finds its own
            # (answer(retried=)), so trying again never answers twice nor reads as
            # "already answered".
            reply = outage.retry_blocking(once, told=_told, within_s=outage.TOOL_RETRY_S)
    except errors.ApprovalNotFound as exc:
        raise CliFailure(str(exc), common.EXIT_NOT_FOUND, exc.code) from None
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    word = "approved" if args.granted else "denied"
    if args.json:
        common.emit_json({"ok": True, "id": args.id, "answer": word, "reply_id": reply.id})
    else:
        print(f"{word} {args.id}")
    return common.EXIT_OK


def _told(exc: errors.QueueStalled) -> None:
    print(
        f"octy-orchestrate: the queue is out of reach ({exc}); trying again for up to "
        f"{outage.TOOL_RETRY_S:g}s",
        file=sys.stderr,
    )


def _short(value: object) -> str:
    return _cut(json.dumps(value, ensure_ascii=False), _SHOWN)


def _cut(text: str, shown: int) -> str:
    text = " ".join(text.split())
    # Only printable text reaches the terminal: the input came from the model.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= shown else text[: shown - 1] + "…"
