"""Operator commands from the CLI to a running supervisor, through the database.

A command is a request from ``user`` to the reserved recipient ``supervisor``
with a body ``{"command": ..., "agent": ...}``; the answer is its reply. No
second channel (socket, port) to secure: whoever can open the database file
(0600) can command the team, as whoever can write ``agents.yaml`` can.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import structlog

from orchestrator import errors
from orchestrator import foreign_commands as foreign
from orchestrator.agent_leases import AgentLeases
from orchestrator.durations import finite_seconds
from orchestrator.held_wait import reply_while_held, supervisor_silence
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import SUPERVISOR, USER, AsyncMailboxBackend, MailboxBackend, Message
from orchestrator.mailbox.opening import QueuePlace, open_sync

if TYPE_CHECKING:
    from orchestrator.reload import ReloadResult

log = structlog.get_logger()


class Team(Protocol):
    """What operator commands call on the supervisor (nothing else of it is read here)."""

    def agent_names(self) -> list[str]: ...

    async def start_agent(self, name: str) -> str: ...

    async def stop_agent(self, name: str) -> str: ...

    async def restart_agent(self, name: str) -> str: ...

    async def reload(self) -> ReloadResult: ...

    async def resume_budgets(self, names: list[str]) -> list[dict[str, Any]]: ...

    def shut_down(self, grace_s: float | None) -> float:
        """Begin a graceful stop (with ``grace_s`` when given); the grace in effect."""
        ...

    def abandon(self, exc: errors.DatabaseReplaced) -> None:
        """The database left its path: stop at once, writing nothing more."""
        ...


COMMANDS = ("start", "stop", "restart", "down", "reload")
AGENT_COMMANDS = foreign.AGENT_COMMANDS


def send_command(
    db_path: Path,
    command: str,
    *,
    agent: str | None = None,
    timeout_s: float = 30.0,
    queue: QueuePlace | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Send one command and wait for the supervisor's acknowledgement. The supervisor
    is found by its lock next to ``db_path``; the command goes through ``queue`` (the
    roster's NATS queue) when given, else through the database."""
    pid = holder_pid(db_path)
    if pid is None:
        raise errors.SupervisorNotRunning(str(db_path))
    # For this machine's supervisor: on a NATS team others serve the same inbox.
    target = {"host": socket.gethostname(), "pid": pid}
    with open_sync(db_path if queue is None else queue) as mailbox:
        request = mailbox.request(
            USER,
            SUPERVISOR,
            {"command": command, "agent": agent, "for": target, **extra},
            ttl_s=timeout_s,
        )
        try:
            response = reply_while_held(
                mailbox, request.id, db_path=db_path, pid=pid, timeout_s=timeout_s
            )
        except (errors.RequestTimeout, errors.RequestExpired):
            # Expired: the command's TTL (its timeout) passed before the supervisor took it,
            # the same thing seen a moment later; it said "not delivered before its TTL", exit 1.
            raise errors.RequestTimeout(
                request.id,
                timeout_s,
                f"the supervisor did not acknowledge '{command}' within {timeout_s:g}s"
                + _silence_hint(mailbox, pid),
            ) from None
        if response is None:
            raise errors.SupervisorGone(
                socket.gethostname(),
                pid,
                f"it stopped before answering '{command}'",
                "whether it was done is unknown: see `ps`, and `up` to run the team again",
            )
    body = response.body
    if isinstance(body, dict) and body.get("error") == errors.SupervisorGone.code:
        pid = body.get("pid")
        raise errors.SupervisorGone(
            str(body.get("host")),
            pid if isinstance(pid, int) else 0,
            str(body.get("reason")),
            str(body.get("hint")),
        )
    return body if isinstance(body, dict) else {"ok": True, "result": body}


def _silence_hint(mailbox: MailboxBackend, pid: int) -> str:
    """Why a supervisor that holds its lock may not answer: it wrote no heartbeat lately
    (stopped with SIGSTOP or a debugger, its event loop stuck)."""
    try:
        row = mailbox.agent(SUPERVISOR)
    except errors.QueueError:
        return ""
    silent = supervisor_silence(None if row is None else row.heartbeat_at, time.time())
    if silent is None:
        return ""
    return f"; it has written no heartbeat for {silent:.0f}s: stopped? (`kill -CONT {pid}`)"


CONTROL_RETRY_S = 1.0  # after the database refused the control loop a read or a write


async def serve_control(
    sup: Team, mailbox: AsyncMailboxBackend, owner: str, leases: AgentLeases
) -> None:
    """Claim commands and run each in its own task; a database error in this loop (another
    process holding the write lock) is logged once and retried, never the end of the team.
    A command for another supervisor (``leases`` tell which live) is handed back, run
    here or refused: orchestrator/foreign_commands.py."""
    failing = False
    hand_backs = foreign.HandBacks()
    async with anyio.create_task_group() as tg:
        while True:
            try:
                claimed = await mailbox.claim(SUPERVISOR, owner=owner, lease_s=300.0, limit=10)
                back: list[str] = []
                for message in claimed:
                    named = foreign.target(message)
                    what = (
                        "serve" if named is None else await foreign.verdict(leases, message, *named)
                    )
                    if what == "serve":
                        tg.start_soon(_handle, sup, mailbox, owner, message)
                    elif what == "back":
                        back.append(message.id)
                    else:
                        tg.start_soon(_answer, mailbox, owner, message, what)
                if back:  # back, uncounted, for the supervisor they name
                    await mailbox.release(owner, back)
                    await anyio.sleep(hand_backs.pause_after(back))
                    continue
                await mailbox.wait_for_messages(SUPERVISOR, 30.0)
            except errors.DatabaseReplaced as exc:  # the supervisor stops the team
                sup.abandon(exc)
                return
            except errors.QueueError as exc:
                if not failing:
                    log.warning("control_retrying", error=str(exc), retry_in_s=CONTROL_RETRY_S)
                failing = True
                await anyio.sleep(CONTROL_RETRY_S)
            else:
                if failing:
                    log.info("control_recovered")
                failing = False


async def _handle(sup: Team, mailbox: AsyncMailboxBackend, owner: str, message: Message) -> None:
    body = message.body if isinstance(message.body, dict) else {}
    command, agent = body.get("command"), body.get("agent")
    log.info("command", command=command, target=agent, sender=message.sender, message_id=message.id)
    try:
        result = await _run(sup, str(command), agent, body)
    except errors.OrchestratorError as exc:
        result = {"ok": False, "error": exc.code, "message": str(exc)}
    except Exception as exc:  # a command's bug is answered, never the end of the team
        log.exception("command_crashed", command=command, target=agent, error=repr(exc))
        result = {"ok": False, "error": "internal_error", "message": f"{command}: {exc!r}"}
    await _answer(mailbox, owner, message, result)


async def _answer(
    mailbox: AsyncMailboxBackend, owner: str, message: Message, result: dict[str, Any]
) -> None:
    """Reply and ack, retrying while the database refuses (the command was applied: a
    lease left to expire would deliver it again and apply it twice)."""
    for attempt in range(60):
        try:
            if message.kind == "request":
                with contextlib.suppress(errors.AlreadyReplied):
                    await mailbox.reply(message.id, SUPERVISOR, result)
            with contextlib.suppress(errors.LeaseLost):
                await mailbox.ack([message.id], owner=owner)
            return
        except errors.DatabaseReplaced:
            return  # nothing more is written; the supervisor is stopping
        except errors.MessageNotFound:
            # Gone from the queue since it was claimed (lost with a NATS server's store,
            # or removed): nobody can read an answer to it. Tried again, it was retried
            # for a minute and ended in command_reply_failed.
            log.warning(
                "request_gone",
                message_id=message.id,
                reason="no longer in the queue: the command's answer is dropped",
            )
            return
        except errors.QueueError as exc:
            if attempt == 0:
                log.warning("command_reply_retrying", message_id=message.id, error=str(exc))
            await anyio.sleep(CONTROL_RETRY_S)
    log.error("command_reply_failed", message_id=message.id)


async def _run(sup: Team, command: str, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
    if command == "resume":  # budgets: orchestrator/budget_watch.py
        return await _resume(sup, body)
    if command not in COMMANDS:
        return {
            "ok": False,
            "error": "unknown_command",
            "message": f"unknown command '{command}'; known: {', '.join(COMMANDS)}",
        }
    if command in AGENT_COMMANDS:
        if not isinstance(agent, str):
            raise errors.AgentNotFound(str(agent), sup.agent_names())
        if command == "stop":
            outcome = await sup.stop_agent(agent)
        elif command == "start":
            outcome = await sup.start_agent(agent)
        else:
            outcome = await sup.restart_agent(agent)
        return {"ok": True, "command": command, "agent": agent, "result": outcome}
    if command == "reload":
        from orchestrator.reload import requested_by  # noqa: PLC0415 - the CLI side needs none of it

        with requested_by("reload"):
            return (await sup.reload()).to_reply()
    grace = body.get("grace_s")
    given: float | None = None
    if isinstance(grace, int | float) and not isinstance(grace, bool):
        try:  # a NaN deadline would never come
            given = finite_seconds(grace, "grace_s")
        except errors.InvalidSeconds as exc:
            return {"ok": False, "error": exc.code, "message": str(exc)}
    return {"ok": True, "command": "down", "grace_s": sup.shut_down(given)}


async def _resume(sup: Team, body: dict[str, Any]) -> dict[str, Any]:
    names = body.get("agents") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return {"ok": False, "error": "usage", "message": "'agents' must be a list of names"}
    known = sup.agent_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        return {
            "ok": False,
            "error": "not_found",
            "message": f"no agent named {', '.join(repr(n) for n in unknown)} in the running "
            f"team; agents: {', '.join(known)}",  # as restart and stop say it
        }
    return {"ok": True, "command": "resume", "agents": await sup.resume_budgets(names)}
