"""What the queue verbs share (queue_verbs.py, ask_verb.py): opening the queue, reading
a TEXT argument or stdin within the body limit, checking who speaks, and printing the
result (human text, or one JSON document with ``--json``)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator import errors, jsontext, outage
from orchestrator.cli import common
from orchestrator.mailbox import (
    MAX_BODY_BYTES,
    SUPERVISOR,
    USER,
    Mailbox,
    MailboxBackend,
    Message,
)
from orchestrator.mailbox.opening import open_sync
from orchestrator.names import name_problem

Handler = Callable[[argparse.Namespace], int]

INBOX_LEASE_S = 60.0
PURGEABLE = ("done", "dead")


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
    place = common.resolve_place(args)
    if not create and isinstance(place, Path) and not os.path.lexists(place):
        # Said as `ps` and `top` say it: in a folder with no agents.yaml either, `up` (the
        # fix the queue's own message names) fails too.
        roster = getattr(args, "file", None)
        raise common.CliFailure(
            common.no_team_database(place, roster, getattr(args, "db", None) is not None),
            common.EXIT_NOT_FOUND,
            errors.DatabaseMissing.code,
        )
    with open_sync(place, create=create, readonly=readonly) as mb:
        yield mb


def _body(args: argparse.Namespace) -> Any:
    text: str = _stdin_text() if args.text == "-" else args.text
    if not args.json_body:
        return text
    try:
        return jsontext.loads(text)
    except ValueError as exc:
        raise common.CliFailure(
            f"--json-body: TEXT is not valid JSON ({exc})", common.EXIT_USAGE, "usage"
        ) from exc


def _stdin_text() -> str:
    """Standard input as UTF-8 text, one trailing newline dropped; bytes that are not UTF-8
    are a usage error (a body is JSON text, which is UTF-8)."""
    # The bytes, decoded here: sys.stdin's own decoding depends on the locale (in the C
    # locale it smuggles bad bytes through as surrogates that fail later, in a write).
    stdin = common.standard_input()
    if stdin is None:  # started with `<&-`
        raise common.CliFailure(
            "TEXT is '-' but standard input is closed; pipe the body in, or give it as TEXT",
            common.EXIT_USAGE,
            "usage",
        )
    raw = getattr(stdin, "buffer", None)
    # At most the limit and a little more: `send TO - < /dev/zero` read until memory ran
    # out (4 GB in 5 s). A body of the limit's size may come with one trailing newline.
    most = MAX_BODY_BYTES + 2
    try:
        data = raw.read(most) if raw is not None else stdin.read(most)
        if len(data) >= most:
            raise errors.InvalidBody(
                f"standard input is over the {MAX_BODY_BYTES}-byte limit of a body; "
                "put large payloads in a file and send its path"
            )
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise common.CliFailure(
            f"standard input is not UTF-8 text (at byte {exc.start}); a body is UTF-8",
            common.EXIT_USAGE,
            "usage",
        ) from None
    return text.removesuffix("\n")


def _check_participant(mb: MailboxBackend, name: str) -> None:
    """``user`` or a registered name; anything else is refused with the names there are.
    Said as what it is (`inbox nosuch` read "unknown recipient 'nosuch'; known agents: lead,
    researcher, supervisor": no message was being sent, and the supervisor is no one's to
    read or unregister)."""
    if name == USER:
        return
    known = [a.name for a in mb.agents()]
    if name not in known:
        names = ", ".join(sorted(n for n in known if n != SUPERVISOR)) or "none registered"
        raise common.CliFailure(
            f"no participant named {name!r} in the team (participants: {names}; and user)",
            common.EXIT_NOT_FOUND,
            errors.RecipientUnknown.code,
        )


@contextmanager
def _to_a_participant() -> Iterator[None]:
    """A send's or an ask's RecipientUnknown naming only those a message can go to: the
    supervisor's row is in the registry, and listed there (`send nosuch hi` read "known
    agents: user, a, supervisor") though a message to it is refused
    (:func:`_not_the_supervisor`)."""
    try:
        yield
    except errors.RecipientUnknown as exc:
        known = [n for n in exc.known if n != SUPERVISOR]
        raise errors.RecipientUnknown(exc.recipient, known) from None


def _not_the_supervisor(name: str, role: str) -> None:
    """The supervisor's name is its own: messages to it are the control protocol (a stray
    body was taken as a command with none), and speaking as it (``--as``, a reply to a
    control request, ``inbox --ack`` taking its commands) would pose as the supervisor or
    lose an operator's `down`. The verbs operate it."""
    if name == SUPERVISOR:
        raise common.CliFailure(
            f"'{SUPERVISOR}' is reserved ({role}): operate the supervisor with the verbs "
            "(ps, start, stop, restart, reload, resume, down)",
            common.EXIT_USAGE,
            "reserved_name",
        )


def _check_sender(mb: MailboxBackend, name: str) -> None:
    """``--as`` must name ``user`` or a registered agent: a typo would otherwise speak
    as a name nobody answers to. Inside an agent's session (a tool the agent runs sees
    ``OCTY_AGENT``) the CLI speaks only as that agent."""
    _not_the_supervisor(name, "--as")
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
    # Quoted as Python does: a newline in it kept the one-line error on two lines.
    join = "" if name_problem(name) else f". A script joins with `octy-orchestrate register {name}`"
    raise common.CliFailure(
        f"unknown sender {name!r} (--as); known: {known}{join}",
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


def _through_outage(mb: MailboxBackend, write: Callable[[], Message]) -> Message:
    """On NATS, a write the queue refused for now (a node lost, a leader election longer
    than the queue's own retries) tried again under the same message id for up to
    outage.TOOL_RETRY_S, as the agents' tools do, with one line on stderr. On SQLite a
    refused write is a lock another program keeps past the wait already made (that
    wait is interruptible: ask_commit.py) or a full disk: said at once, as before."""
    if isinstance(mb, Mailbox):
        return write()

    def told(exc: errors.QueueStalled) -> None:
        print(
            f"octy-orchestrate: the queue is out of reach ({exc}); trying again for up to "
            f"{outage.TOOL_RETRY_S:g}s",
            file=sys.stderr,
        )

    return outage.retry_blocking(write, told=told, within_s=outage.TOOL_RETRY_S)
