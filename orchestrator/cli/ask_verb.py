"""`ask`: a request, then its reply, printed (exit 4 when none came within --timeout).

The request is written with Ctrl-C held until it is known (ask_commit.py), so an
interrupted ask always says whether, and which, request stays queued. Asking an agent
of a running team (this machine's supervisor on SQLite, any supervisor of a NATS team),
an agent it reports stopped, failed or paused is refused before anything is sent; on
SQLite the wait watches that supervisor too.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli import queue_output as out
from orchestrator.cli.ask_commit import HELD, NotSent, request_unless_interrupted
from orchestrator.cli.queue_common import (
    _body,
    _check_sender,
    _done,
    _mailbox,
    _not_the_supervisor,
    _through_outage,
    _to_a_participant,
    _verb,
)
from orchestrator.held_wait import reply_while_held, supervisor_silence
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import (
    SUPERVISOR,
    AgentInfo,
    MailboxBackend,
    Message,
    new_id,
)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM, SIGHUP: as Ctrl-C (ask_commit.HELD says why)


@_verb
def _ask(args: argparse.Namespace) -> int:
    # A signal ignored when `ask` started (nohup, a shell's `cmd &` for SIGINT) stays so.
    taken = [s for s in HELD - {signal.SIGINT} if signal.getsignal(s) == signal.SIG_DFL]
    if threading.current_thread() is not threading.main_thread():
        taken = []  # only the main thread sets handlers (`ask` called in-process by a test)
    before = {s: signal.signal(s, _interrupted) for s in taken}
    try:
        return _ask_held(args)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _ask_held(args: argparse.Namespace) -> int:
    _not_the_supervisor(args.to, "as a recipient")
    body = _body(args)
    req: Message | None = None
    try:
        with _mailbox(args) as mb:
            _check_sender(mb, args.sender)
            supervisor, info, supervised = _supervisor_of(args, mb, args.to)
            if supervised:
                _refuse_unless_answering(info, args.to)
            # A Ctrl-C between the request's commit and the wait's `try` ended the CLI
            # without saying which request stays queued (seen 1 run in ~6 of the test
            # below): it is held until the request is known, and lands inside the `try`.
            # While the request waits for another program's write lock, a Ctrl-C ends it
            # unwritten (ask_commit.py).
            held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
            request_id = new_id()  # as send's: the same request whatever the tries
            try:
                with _to_a_participant():
                    req = _through_outage(
                        mb,
                        lambda: request_unless_interrupted(
                            mb,
                            lambda: mb.request(
                                args.sender,
                                args.to,
                                body,
                                ttl_s=args.ttl,
                                wait_s=args.timeout,
                                message_id=request_id,
                            ),
                        ),
                    )
            except BaseException:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                raise
            reply = _reply_to(args, mb, req, supervisor, held)
    except (KeyboardInterrupt, NotSent):
        if req is not None:
            raise  # _reply_to said where the request is
        # Before the request was written (opening the queue, waiting for its lock).
        print("octy-orchestrate: interrupted; nothing was sent", file=sys.stderr)
        raise KeyboardInterrupt from None
    return _done(args, out.body_text(reply.body), request=req.to_dict(), reply=reply.to_dict())


def _reply_to(
    args: argparse.Namespace,
    mb: MailboxBackend,
    req: Message,
    supervisor: tuple[Path, int] | None,
    held: set[int | signal.Signals],
) -> Message:
    """The reply to ``req``, queued with SIGINT held (``held``: the mask before), which is
    let through here, inside the `try` that says where the request is."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if supervisor is None:
            return mb.wait_for_reply(req.id, args.timeout)
        # Its supervisor killed meanwhile: said at once, not at the timeout.
        db, pid = supervisor
        found = reply_while_held(mb, req.id, db_path=db, pid=pid, timeout_s=args.timeout)
        if found is None:
            import socket  # only when it is gone: 3 ms of every ask's start-up otherwise

            raise errors.SupervisorGone(
                socket.gethostname(),
                pid,
                f"it stopped while {args.to!r} had request {req.id}",
                "the request stays queued and is answered once the team runs again "
                f"(`octy-orchestrate up`; see `queue show {req.id}`)",
            )
        return found
    except errors.RequestTimeout as exc:
        raise common.CliFailure(
            f"no reply from {args.to} within {args.timeout:g}s; request {req.id} stays "
            f"queued (see `octy-orchestrate queue show {req.id}`)",
            common.EXIT_TIMEOUT,
            exc.code,
        ) from exc
    except KeyboardInterrupt:
        # Ctrl-C ends the wait, not the request. A signal held until the request was
        # written lands as soon as it is let through, maybe before the wait (whose end
        # clears the request's wait-for edge) began: a wait of no time ends it, or the
        # edge stayed for the whole --timeout (seen 1 run in ~10 under load).
        with contextlib.suppress(errors.OrchestratorError):
            mb.wait_for_reply(req.id, 0)
        # Say where its answer will be (on a terminal that is gone, SIGHUP's, the saying
        # fails: the ending does not).
        with contextlib.suppress(OSError):
            print(
                f"octy-orchestrate: interrupted; request {req.id} stays queued "
                f"(see `octy-orchestrate queue show {req.id}`)",
                file=sys.stderr,
            )
        raise


def _refuse_unless_answering(info: AgentInfo | None, name: str) -> None:
    """Refuse, before anything is sent, an ask that its running supervisor says cannot be
    answered: stopped by the operator, failed, or paused by a budget. The CLI waited out
    its --timeout (120 s by default) where an agent's ask was refused at once. With no
    supervisor running the request is queued as before: answered once the team is up.
    One ``waiting`` (started, its session to launch once its dependencies are up) is
    asked: its stop answers the ask recipient_stopped (operations.stop_agent).
    ``info``: the registry row :func:`_supervisor_of` read (one read per ask)."""
    state = info.state if info is not None else None
    if state == "stopped":
        raise errors.RecipientStopped(
            "",
            f"{name!r} is stopped (not running) and would answer only once someone starts "
            f"it: `octy-orchestrate start {name}`, or `send` it a notice (it waits in its inbox)",
        )
    if state == "failed":
        raise errors.RecipientFailed(
            "",
            f"{name!r} has failed and is not being restarted (`octy-orchestrate logs {name}` "
            f"says why; `octy-orchestrate restart {name}` tries again)",
        )
    if state == "paused" and info is not None:
        budget = info.meta.get("budget")
        detail = budget.get("paused") if isinstance(budget, dict) else None
        raise errors.BudgetExceeded("", str(detail or f"{name!r} is paused by a budget"))


def _supervisor_of(
    args: argparse.Namespace, mb: MailboxBackend, name: str
) -> tuple[tuple[Path, int] | None, AgentInfo | None, bool]:
    """(database, pid) of the supervisor running ``name`` on this machine's SQLite team,
    or None: a participant that joined with `register` answers by itself, and on NATS the
    agent's supervisor may be another machine's (the local lock says nothing of it).
    Second: ``name``'s registry row when it was read. Third: a running supervisor keeps
    that row (its state is the team's word on ``name``, refused by
    :func:`_refuse_unless_answering` when it cannot answer): on SQLite the lock's holder;
    on NATS a supervisor row that says `running` with a recent heartbeat. On NATS an ask
    of a stopped or failed agent waited out its --timeout where SQLite's was refused at
    once; with no supervisor running (the team down) it is queued, as on SQLite."""
    place = common.resolve_place(args)
    if not isinstance(place, Path):
        info = mb.agent(name)
        if info is None or not info.meta.get("supervised"):
            return None, info, False
        return None, info, _team_runs(mb)
    pid = holder_pid(place)
    info = mb.agent(name) if pid else None
    if pid and info is not None and info.meta.get("supervised"):
        return (place, pid), info, True
    return None, info, False


def _team_runs(mb: MailboxBackend) -> bool:
    """A supervisor of this NATS team runs: its row says so, and its heartbeat is recent
    (a supervisor killed without its clean stop leaves `running`, and its heartbeat
    stops). Several supervisors share the row: the clean stop of one says `stopped`
    until another writes it again, and an ask then waits as before (never refused
    wrongly)."""
    try:
        row = mb.agent(SUPERVISOR)
    except errors.RecordUnreadable:  # garbled in the bucket: says nothing of a running team
        return False  # the ask waits as before (it failed, record_unreadable: review6)
    if row is None or row.state != "running":
        return False
    return supervisor_silence(row.heartbeat_at, time.time()) is None
