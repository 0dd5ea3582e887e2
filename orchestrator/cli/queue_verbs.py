"""Verbs that need only the queue: register, send, ask, inbox, reply, queue ….

They work with or without a supervisor: each opens the database, does one
thing, and exits. The CLI speaks as the participant ``user`` unless ``--as
NAME``. TEXT may be ``-`` (read stdin, one trailing newline dropped); with
``--json-body`` TEXT is parsed as JSON. Every verb takes ``--json`` (one JSON
document on stdout, errors included) and ``--db PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli import queue_output as out
from orchestrator.cli.ask_verb import _ask, _team_runs
from orchestrator.cli.queue_common import (
    INBOX_LEASE_S,
    PURGEABLE,
    Handler,
    _body,
    _check_participant,
    _check_sender,
    _done,
    _mailbox,
    _not_the_supervisor,
    _through_outage,
    _to_a_participant,
    _verb,
)
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import (
    SUPERVISOR,
    USER,
    MailboxBackend,
    new_id,
)
from orchestrator.mailbox.model import STATUSES
from orchestrator.names import MAX_DESCRIPTION_CHARS, name_problem
from orchestrator.prompts import DEFAULT_ASK_TIMEOUT_S  # the ask tool's default too
from orchestrator.redact import for_people


@_verb
def _register(args: argparse.Namespace) -> int:
    pid = os.getppid() if args.pid is None else args.pid
    problem = name_problem(args.name)
    if problem is not None:  # before the database is created: a refusal leaves nothing behind
        raise errors.InvalidName(args.name, problem)
    with _mailbox(args, create=True) as mb:
        old = mb.agent(args.name)
        if old is not None and old.meta.get("supervised"):
            # An agent of the roster: registering over it would hide it from its supervisor.
            raise errors.InvalidName(
                args.name, "it is an agent of the team's roster; a script needs a name of its own"
            )
        agent = mb.register(args.name, args.description, pid=pid or None)
    return _done(args, out.agent_line(agent), agent=agent.to_dict())


@_verb
def _unregister(args: argparse.Namespace) -> int:
    with _mailbox(args) as mb:
        _check_participant(mb, args.name)
        info = mb.agent(args.name)
        retired = (  # its row's `supervised` mark is an earlier team's (see _retired)
            info is not None
            and bool(info.meta.get("supervised"))
            and isinstance(common.resolve_place(args), Path)
            and _retired(mb, args.name, info.state)
        )
        mb.unregister(args.name, force=retired)
        left = mb.pending_count(args.name)
    note = f"; {left} message(s) addressed to it stay queued" if left else ""
    return _done(args, for_people(f"unregistered {args.name}{note}"), name=args.name, pending=left)


@_verb
def _send(args: argparse.Namespace) -> int:
    _not_the_supervisor(args.to, "as a recipient")
    body = _body(args)
    message_id = new_id()  # one id for every try: a retry after a lost answer is stored once
    with _mailbox(args) as mb:
        _check_sender(mb, args.sender)
        with _to_a_participant():
            msg = _through_outage(
                mb,
                lambda: mb.send(args.sender, args.to, body, ttl_s=args.ttl, message_id=message_id),
            )
    human = for_people(f"sent {msg.id} ({msg.sender} → {msg.recipient})")
    return _done(args, human, message=msg.to_dict())


@_verb
def _inbox(args: argparse.Namespace) -> int:
    owner = f"{args.name}@cli-{os.getpid()}"
    if args.ack:  # a peek at its queue harms nothing
        _not_the_supervisor(args.name, "inbox --ack would take its commands")
    with _mailbox(args, readonly=not args.ack) as mb:
        _check_participant(mb, args.name)
        if args.ack:
            _not_a_running_agent(args, mb, args.name)
        deadline = time.monotonic() + (args.wait or 0.0)
        while True:
            if args.ack:
                got = mb.claim(args.name, owner=owner, lease_s=INBOX_LEASE_S, limit=args.limit)
            else:
                got = mb.peek(args.name, limit=args.limit)
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
        if args.ack:
            if got:
                mb.ack([m.id for m in got], owner=owner)
            # Taking delivery is a sign of life: `ps` shows a consumer silent too long `stale`.
            with contextlib.suppress(errors.RecipientUnknown):
                mb.update_agent(args.name)
    return common.EXIT_OK


def _not_a_running_agent(args: argparse.Namespace, mb: MailboxBackend, name: str) -> None:
    """`inbox --ack` takes delivery: of a roster agent of the running team, it took the
    messages the agent was to handle (found as a new user: `stop lead`, then the notice
    `send` queued for it, then `inbox lead --ack`; lead never saw it). Refused as
    `unregister` refuses it; a peek (no --ack) stays allowed."""
    info = mb.agent(name)
    if info is None or not info.meta.get("supervised"):
        return
    place = common.resolve_place(args)
    if isinstance(place, Path):  # the lock file: a supervisor killed -9 left its row running
        pid = holder_pid(place)
        if pid is not None and _retired(mb, name, info.state):
            return
    elif _team_runs(mb):  # as `ask` reads it: a row killed -9 left `running` is silent
        sup = mb.agent(SUPERVISOR)
        pid = (sup.pid if sup is not None else None) or 0
    else:
        pid = None
    if pid is not None:
        raise common.CliFailure(
            f"'{name}' is an agent of the running team (supervisor pid {pid}): `inbox --ack` "
            "would take the messages it is to handle; look without --ack, or stop the team "
            "first",
            common.EXIT_ERROR,
            errors.ParticipantSupervised.code,
        )


def _retired(mb: MailboxBackend, name: str, state: str) -> bool:
    """``name`` (stopped or failed) is not in the roster the running SQLite team was started
    from: removed from agents.yaml while the team was down, its row keeps the `supervised`
    mark of the team that ran it, and nobody handles its mail. Unsure (the roster
    unreadable, not named): False, the refusal stands."""
    if state not in ("stopped", "failed"):  # a live one: the roster's edit not applied yet
        return False
    sup = mb.agent(SUPERVISOR)
    path = sup.meta.get("roster") if sup is not None else None
    if not isinstance(path, str) or not path:
        return False
    try:
        roster = common._load_roster(Path(path))
    except (errors.OrchestratorError, OSError):
        return False
    return name not in roster.agents


@_verb
def _reply(args: argparse.Namespace) -> int:
    common.message_id(args.request_id, "inbox")
    body = _body(args)
    with _mailbox(args) as mb:
        # Reply as the one who was asked unless told otherwise.
        sender = args.sender or mb.get(args.request_id).recipient
        if args.sender:
            _check_sender(mb, args.sender)
        _not_the_supervisor(sender, "a reply to its control request")
        msg = mb.reply(args.request_id, sender, body)
    human = for_people(f"replied {msg.id} to {msg.recipient} (re {args.request_id})")
    return _done(args, human, message=msg.to_dict())


# --- queue inspection -----------------------------------------------------------


@_verb
def _queue_ls(args: argparse.Namespace) -> int:
    with _mailbox(args, readonly=True) as mb:
        msgs = mb.list(status=args.status, recipient=args.to, sender=args.sender, limit=args.limit)
    return _done(args, out.messages_table(msgs), messages=[m.to_dict() for m in msgs])


@_verb
def _queue_show(args: argparse.Namespace) -> int:
    common.message_id(args.id)
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
    common.message_id(args.id, "queue dead")
    with _mailbox(args) as mb:
        msg = mb.retry(args.id)
    human = for_people(f"requeued {msg.id} for {msg.recipient} (pending)")
    return _done(args, human, message=msg.to_dict())


@_verb
def _queue_purge(args: argparse.Namespace) -> int:
    statuses = tuple(args.status or PURGEABLE)
    if not args.yes:
        asked = common.standard_input(terminal=True) is not None
        if not _confirm(f"delete every {' and '.join(statuses)} message?"):
            # A person who answered no is not told to pass --yes (as if never asked).
            why = (
                "answered no; nothing was deleted"
                if asked
                else f"pass --yes to delete {' and '.join(statuses)} messages"
            )
            raise common.CliFailure(f"not purging: {why}", common.EXIT_USAGE, "usage")
    with _mailbox(args) as mb:
        n = mb.purge(statuses=statuses)
    return _done(args, f"purged {n} message{'s' * (n != 1)} ({', '.join(statuses)})", purged=n)


def _confirm(question: str) -> bool:
    stdin = common.standard_input(terminal=True)
    if stdin is None:  # closed (`<&-`) or a pipe
        return False
    # On stderr, as rm -i asks: input() asked on stdout, into `purge --json | jq`'s pipe,
    # unseen by the person it waited for, and before the JSON document.
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = stdin.readline()
    except KeyboardInterrupt:
        print(file=sys.stderr)  # so the shell's prompt starts a line of its own
        raise
    if not answer:  # Ctrl-D: no answer is a no (it ended in a traceback)
        print(file=sys.stderr)  # ends the question's line, as Enter would have
        return False
    return answer.strip().lower() in {"y", "yes"}


def _queue_help(parser: argparse.ArgumentParser) -> Handler:
    def run(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return common.EXIT_USAGE

    return run


# --- parsers ----------------------------------------------------------------------


def _text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", metavar="TEXT", help="the body; '-' reads stdin")
    p.add_argument(
        "--json-body",
        action="store_true",
        help="parse TEXT as JSON (default: TEXT is sent as a JSON string)",
    )


def _description(text: str) -> str:
    """An argparse type: a description every agent reads, so a short one."""
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise argparse.ArgumentTypeError(
            f"{len(text):,} characters, over the limit of {MAX_DESCRIPTION_CHARS:,}; say "
            "in a few sentences what NAME handles (details belong in a file it can point to)"
        )
    return text


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
    p = subparsers.add_parser(
        "register",
        help="join the registry as an agent (for scripts); again: a heartbeat",
        description="Add NAME to the team's registry so others can message it (creates the "
        "database if missing). Registering again refreshes its heartbeat. Names follow the "
        "roster's rule; 'user', 'supervisor' and the roster's agents are refused.",
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="the name others send to ([a-z0-9][a-z0-9_-]*, at most 63 characters)",
    )
    p.add_argument(
        "--description",
        type=_description,
        default="",
        metavar="TEXT",
        help=f"what NAME handles, at most {MAX_DESCRIPTION_CHARS:,} characters "
        "(default: empty); every agent's `agents` tool lists it",
    )
    p.add_argument(
        "--pid",
        type=common.count,
        default=None,
        metavar="PID",
        help="the process that acts as NAME, shown by `ps` (default: the calling shell or "
        "script, i.e. this command's parent; 0 for none)",
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_register)

    p = subparsers.add_parser(
        "unregister",
        help="remove a participant that joined with `register`",
        description="Remove NAME from the registry: sends to it are refused from then on; "
        "messages already addressed to it stay queued. Refused for an agent of the running "
        "team's roster (edit agents.yaml instead) and for 'user' and 'supervisor'.",
    )
    p.add_argument("name", metavar="NAME", help="the participant to remove")
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_unregister)

    p = subparsers.add_parser(
        "send",
        help="send a notice (fire and forget)",
        description="Send TEXT to TO as a notice: nothing waits for an answer (`ask` does). "
        "Prints the message's id, for `trace ID` and `queue show ID`. An unknown recipient is "
        "exit 3; the reserved 'supervisor' (operated by the verbs) and a body the queue "
        "refuses are exit 2.",
    )
    p.add_argument("to", metavar="TO", help="the recipient: an agent, a registered name, user")
    _text_args(p)
    _as(p)
    p.add_argument(
        "--ttl",
        type=common.seconds,
        metavar="S",
        help="dead if not delivered within S seconds (default: no limit)",
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_send)

    p = subparsers.add_parser("ask", help="send a request and print the reply (exit 4 on timeout)")
    p.add_argument("to", metavar="TO", help="the agent (or registered name) to ask")
    _text_args(p)
    _as(p)
    p.add_argument(
        "--timeout",
        type=common.seconds,
        default=DEFAULT_ASK_TIMEOUT_S,
        metavar="S",
        help=f"wait S seconds for the reply (default {DEFAULT_ASK_TIMEOUT_S:g}; exit 4 after)",
    )
    p.add_argument(
        "--ttl",
        type=common.seconds,
        metavar="S",
        help="dead if not delivered within S seconds (default: no limit)",
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_ask)

    p = subparsers.add_parser(
        "inbox",
        help="show NAME's next messages (peek); --ack takes delivery",
        description="Show the messages waiting for NAME, oldest first. Without --ack this is "
        "a peek: they stay queued for NAME. With --ack they are taken (claimed, printed, then "
        "acknowledged: NAME does not get them again) and a registered participant's heartbeat "
        "is refreshed. --wait S waits up to S seconds for the first one; none is not an error "
        "(exit 0, `(no messages)`).",
    )
    p.add_argument("name", metavar="NAME", help="whose inbox: an agent or a registered name")
    p.add_argument("--ack", action="store_true", help="claim, print, then ack (they are consumed)")
    p.add_argument(
        "--limit", type=common.count, default=10, metavar="N", help="at most N (default 10)"
    )
    p.add_argument(
        "--wait",
        type=common.seconds,
        metavar="S",
        help="wait up to S seconds for a message (default: do not wait)",
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_inbox)

    p = subparsers.add_parser(
        "reply",
        help="answer a request (for scripts acting as an agent)",
        description="Answer the request REQUEST_ID (as `inbox` or `queue ls` shows it) with "
        "TEXT, as the one it was asked of unless --as says otherwise; its asker's `ask` "
        "returns with it. An id that is not a request is refused.",
    )
    p.add_argument("request_id", metavar="REQUEST_ID", help="the request to answer")
    _text_args(p)
    _as(p, default=None)
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_reply)

    q = subparsers.add_parser(
        "queue",
        help="inspect and repair the queue",
        description="Inspect and repair the team's queue: list messages, show one with its "
        "replies, list the dead letters, retry one, purge what is finished.",
    )
    qs = q.add_subparsers(dest="queue_verb", metavar="ls|show|dead|retry|purge")
    q.set_defaults(func=_queue_help(q))

    p = qs.add_parser("ls", help="list messages, newest first")
    p.add_argument("--status", choices=STATUSES, help="only this status (default: all)")
    p.add_argument("--to", metavar="NAME", help="only messages to NAME (default: anyone)")
    p.add_argument(
        "--from", dest="sender", metavar="NAME", help="only messages from NAME (default: anyone)"
    )
    p.add_argument(
        "--limit", type=common.count, default=50, metavar="N", help="at most N (default 50)"
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_queue_ls)

    p = qs.add_parser("show", help="one message in full, with its replies and causes")
    p.add_argument("id", metavar="ID", help="a message id, as `queue ls` shows")
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_queue_show)

    p = qs.add_parser("dead", help="dead letters, with the reason")
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_queue_dead)

    p = qs.add_parser("retry", help="put a dead message back to pending")
    p.add_argument("id", metavar="ID", help="a dead message's id, as `queue dead` shows")
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_queue_retry)

    p = qs.add_parser("purge", help="delete done and dead messages")
    p.add_argument(
        "--status",
        action="append",
        choices=PURGEABLE,
        help="only this status; repeatable (default: done and dead)",
    )
    p.add_argument(
        "--yes", action="store_true", help="do not ask (default: ask on a terminal, else refuse)"
    )
    common.add_roster(p)
    common.add_common(p)
    p.set_defaults(func=_queue_purge)
