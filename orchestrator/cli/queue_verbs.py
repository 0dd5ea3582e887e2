"""Verbs that need only the queue: register, send, ask, inbox, reply, queue ….

They work with or without a supervisor: each opens the database, does one
thing, and exits. The CLI speaks as the participant ``user`` unless ``--as
NAME``. TEXT may be ``-`` (read stdin, one trailing newline dropped); with
``--json-body`` TEXT is parsed as JSON. Every verb takes ``--json`` (one JSON
document on stdout, errors included) and ``--db PATH``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli import queue_output as out
from orchestrator.mailbox import USER, MailboxBackend, Message
from orchestrator.mailbox.opening import open_sync

Handler = Callable[[argparse.Namespace], int]

DEFAULT_ASK_TIMEOUT_S = 300.0
INBOX_LEASE_S = 60.0
PURGEABLE = ("done", "dead")
STATUSES = ("pending", "leased", "done", "dead")


def _verb(fn: Handler) -> Handler:
    """Queue errors become a message and the exit code a script can branch on."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except errors.OrchestratorError as exc:
            raise common.failure_from(exc) from exc

    return run


@contextmanager
def _mailbox(
    args: argparse.Namespace, *, create: bool = False, readonly: bool = False
) -> Iterator[MailboxBackend]:
    # Only `register` creates a database: a typo'd --db or the wrong folder
    # should say so, not leave an empty queue behind. Verbs that only look open it
    # read-only: no write lock to wait for, and a read-only copy can be inspected.
    with open_sync(common.resolve_place(args), create=create, readonly=readonly) as mb:
        yield mb


def _body(args: argparse.Namespace) -> Any:
    text: str = sys.stdin.read().removesuffix("\n") if args.text == "-" else args.text
    if not args.json_body:
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise common.CliFailure(
            f"--json-body: TEXT is not valid JSON ({exc})", common.EXIT_USAGE, "usage"
        ) from exc


def _check_participant(mb: MailboxBackend, name: str) -> None:
    """``user`` or a registered name; anything else is refused with the known names."""
    if name == USER:
        return
    known = [a.name for a in mb.agents()]
    if name not in known:
        raise errors.RecipientUnknown(name, sorted(known))


def _check_sender(mb: MailboxBackend, name: str) -> None:
    """``--as`` must name ``user`` or a registered agent: a typo would otherwise speak
    as a name nobody answers to. Inside an agent's session (a tool the agent runs sees
    ``OCTY_AGENT``) the CLI speaks only as that agent."""
    agent = os.environ.get(common.AGENT_ENV)
    if agent and name != agent:
        raise common.CliFailure(
            f"this command runs inside agent '{agent}''s session: it may speak only as "
            f"'{agent}', not as '{name}'",
            common.EXIT_ERROR,
            "not_allowed",
        )
    if name == USER or mb.agent(name) is not None:
        return
    known = ", ".join([USER, *sorted(a.name for a in mb.agents())])
    raise common.CliFailure(
        f"unknown sender '{name}' (--as); known: {known}. A script joins with "
        f"`octy-orchestrate register {name}`",
        common.EXIT_NOT_FOUND,
        "sender_unknown",
    )


def _done(args: argparse.Namespace, human: str, **doc: Any) -> int:
    if args.json:
        common.emit_json({"ok": True, **doc})
    else:
        print(human)
    return common.EXIT_OK


# --- participants -------------------------------------------------------------


@_verb
def _register(args: argparse.Namespace) -> int:
    with _mailbox(args, create=True) as mb:
        agent = mb.register(args.name, args.description)
    return _done(args, out.agent_line(agent), agent=agent.to_dict())


@_verb
def _send(args: argparse.Namespace) -> int:
    body = _body(args)
    with _mailbox(args) as mb:
        _check_sender(mb, args.sender)
        msg = mb.send(args.sender, args.to, body, ttl_s=args.ttl)
    return _done(args, f"sent {msg.id} ({msg.sender} → {msg.recipient})", message=msg.to_dict())


@_verb
def _ask(args: argparse.Namespace) -> int:
    body = _body(args)
    with _mailbox(args) as mb:
        _check_sender(mb, args.sender)
        req = mb.request(args.sender, args.to, body, ttl_s=args.ttl, wait_s=args.timeout)
        try:
            reply = mb.wait_for_reply(req.id, args.timeout)
        except errors.RequestTimeout as exc:
            raise common.CliFailure(
                f"no reply from {args.to} within {args.timeout:g}s; request {req.id} stays "
                f"queued (see `octy-orchestrate queue show {req.id}`)",
                common.EXIT_TIMEOUT,
                exc.code,
            ) from exc
    return _done(args, out.body_text(reply.body), request=req.to_dict(), reply=reply.to_dict())


@_verb
def _inbox(args: argparse.Namespace) -> int:
    owner = f"{args.name}@cli-{os.getpid()}"
    with _mailbox(args, readonly=not args.ack) as mb:
        _check_participant(mb, args.name)
        deadline = time.monotonic() + (args.wait or 0.0)
        while True:
            if args.ack:
                got = mb.claim(args.name, owner=owner, lease_s=INBOX_LEASE_S, limit=args.limit)
            else:
                got = _peek(mb, args.name, args.limit)
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                break
            mb.wait_for_messages(args.name, remaining)
        # Print first, ack after: if the output cannot be written the lease
        # runs out and the messages are delivered again (at least once).
        if args.json:
            common.emit_json(
                {
                    "ok": True,
                    "recipient": args.name,
                    "acked": args.ack,
                    "messages": [m.to_dict() for m in got],
                }
            )
        else:
            print(out.inbox_listing(got, acked=args.ack))
        if args.ack and got:
            mb.ack([m.id for m in got], owner=owner)
    return common.EXIT_OK


def _peek(mb: MailboxBackend, name: str, limit: int) -> list[Message]:
    """What a claim would hand out next, oldest first, without taking it."""
    now = time.time()
    # list() is newest first: read every pending one, then keep the oldest.
    pending = mb.list(status="pending", recipient=name, limit=max(mb.pending_count(name), 1))
    ready = [
        m
        for m in pending
        if m.kind != "response"
        and m.available_at <= now
        and (m.expires_at is None or m.expires_at > now)
    ]
    ready.sort(key=lambda m: (m.available_at, m.created_at))
    return ready[:limit]


@_verb
def _reply(args: argparse.Namespace) -> int:
    body = _body(args)
    with _mailbox(args) as mb:
        # Reply as the one who was asked unless told otherwise.
        sender = args.sender or mb.get(args.request_id).recipient
        if args.sender:
            _check_sender(mb, args.sender)
        msg = mb.reply(args.request_id, sender, body)
    return _done(
        args, f"replied {msg.id} to {msg.recipient} (re {args.request_id})", message=msg.to_dict()
    )


# --- queue inspection -----------------------------------------------------------


@_verb
def _queue_ls(args: argparse.Namespace) -> int:
    with _mailbox(args, readonly=True) as mb:
        msgs = mb.list(status=args.status, recipient=args.to, sender=args.sender, limit=args.limit)
    return _done(args, out.messages_table(msgs), messages=[m.to_dict() for m in msgs])


@_verb
def _queue_show(args: argparse.Namespace) -> int:
    with _mailbox(args, readonly=True) as mb:
        msg = mb.get(args.id)
        related = [m for m in mb.related(args.id) if m.id != msg.id]
    return _done(
        args,
        out.message_detail(msg, related),
        message=msg.to_dict(),
        related=[m.to_dict() for m in related],
    )


@_verb
def _queue_dead(args: argparse.Namespace) -> int:
    with _mailbox(args, readonly=True) as mb:
        msgs = mb.dead()
    return _done(args, out.messages_table(msgs, errors=True), messages=[m.to_dict() for m in msgs])


@_verb
def _queue_retry(args: argparse.Namespace) -> int:
    with _mailbox(args) as mb:
        msg = mb.retry(args.id)
    return _done(args, f"requeued {msg.id} for {msg.recipient} (pending)", message=msg.to_dict())


@_verb
def _queue_purge(args: argparse.Namespace) -> int:
    statuses = tuple(args.status or PURGEABLE)
    if not args.yes and not _confirm(f"delete every {' and '.join(statuses)} message?"):
        raise common.CliFailure(
            f"not purging: pass --yes to delete {' and '.join(statuses)} messages",
            common.EXIT_USAGE,
            "usage",
        )
    with _mailbox(args) as mb:
        n = mb.purge(statuses=statuses)
    return _done(args, f"purged {n} message{'s' * (n != 1)} ({', '.join(statuses)})", purged=n)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def _queue_help(parser: argparse.ArgumentParser) -> Handler:
    def run(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return common.EXIT_USAGE

    return run


# --- parsers ----------------------------------------------------------------------


def _text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", metavar="TEXT", help="the body; '-' reads stdin")
    p.add_argument("--json-body", action="store_true", help="parse TEXT as JSON")


def _as(p: argparse.ArgumentParser, default: str | None = USER) -> None:
    # A script an agent runs speaks as that agent by default (see _check_sender).
    default = os.environ.get(common.AGENT_ENV) or default
    p.add_argument(
        "--as",
        dest="sender",
        metavar="NAME",
        default=default,
        help=f"speak as NAME (default: {default or 'the agent that was asked'})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("register", help="join the registry as an agent (for scripts)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--description", default="", metavar="TEXT")
    common.add_common(p)
    p.set_defaults(func=_register)

    p = subparsers.add_parser("send", help="send a notice (fire and forget)")
    p.add_argument("to", metavar="TO")
    _text_args(p)
    _as(p)
    p.add_argument("--ttl", type=float, metavar="S", help="dead if not delivered within S seconds")
    common.add_common(p)
    p.set_defaults(func=_send)

    p = subparsers.add_parser("ask", help="send a request and print the reply (exit 4 on timeout)")
    p.add_argument("to", metavar="TO")
    _text_args(p)
    _as(p)
    p.add_argument("--timeout", type=float, default=DEFAULT_ASK_TIMEOUT_S, metavar="S")
    p.add_argument("--ttl", type=float, metavar="S", help="dead if not delivered within S seconds")
    common.add_common(p)
    p.set_defaults(func=_ask)

    p = subparsers.add_parser(
        "inbox", help="show NAME's next messages (peek); --ack takes delivery"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ack", action="store_true", help="claim, print, then ack (they are consumed)")
    p.add_argument("--limit", type=int, default=10, metavar="N")
    p.add_argument("--wait", type=float, metavar="S", help="wait up to S seconds for a message")
    common.add_common(p)
    p.set_defaults(func=_inbox)

    p = subparsers.add_parser("reply", help="answer a request (for scripts acting as an agent)")
    p.add_argument("request_id", metavar="REQUEST_ID")
    _text_args(p)
    _as(p, default=None)
    common.add_common(p)
    p.set_defaults(func=_reply)

    q = subparsers.add_parser("queue", help="inspect and repair the queue")
    qs = q.add_subparsers(dest="queue_verb", metavar="ls|show|dead|retry|purge")
    q.set_defaults(func=_queue_help(q))

    p = qs.add_parser("ls", help="list messages, newest first")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--to", metavar="NAME")
    p.add_argument("--from", dest="sender", metavar="NAME")
    p.add_argument("--limit", type=int, default=50, metavar="N")
    common.add_common(p)
    p.set_defaults(func=_queue_ls)

    p = qs.add_parser("show", help="one message in full, with its replies and causes")
    p.add_argument("id", metavar="ID")
    common.add_common(p)
    p.set_defaults(func=_queue_show)

    p = qs.add_parser("dead", help="dead letters, with the reason")
    common.add_common(p)
    p.set_defaults(func=_queue_dead)

    p = qs.add_parser("retry", help="put a dead message back to pending")
    p.add_argument("id", metavar="ID")
    common.add_common(p)
    p.set_defaults(func=_queue_retry)

    p = qs.add_parser("purge", help="delete done and dead messages")
    p.add_argument("--status", action="append", choices=PURGEABLE, help="only this status")
    p.add_argument("--yes", action="store_true", help="do not ask")
    common.add_common(p)
    p.set_defaults(func=_queue_purge)
