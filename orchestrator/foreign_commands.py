"""Operator commands meant for another supervisor of the team.

Several supervisors may share a NATS team, each serving the one `supervisor` inbox; the
CLI names the one it means (``for: {host, pid}``, the holder of its machine's lock
file). A supervisor that claims another's command hands it back, uncounted, for that
one to claim, pausing longer each time the same command comes back (its supervisor did
not take it: frozen, cut off, or dead and not known gone yet), so a stuck command costs
about ten hand-backs over its 30 s, not one every 0.2 s. A command for a supervisor
known gone (``AgentLeases.supervisor_gone``: no such process on this host, or its
presence in the team ran out) is not handed back: it is run here when it is about an
agent this supervisor runs now (that agent's supervisor is who the user wanted), else
refused with ``supervisor_gone`` and what to do, at once rather than at its timeout.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Literal

import anyio
import structlog

from orchestrator import errors
from orchestrator.agent_leases import AgentLeases
from orchestrator.mailbox import Message

log = structlog.get_logger()

AGENT_COMMANDS = ("start", "stop", "restart")
BACKOFF_S = 0.2  # the first pause after a hand-back: the named supervisor claims meanwhile
BACKOFF_MAX_S = 3.2  # the pause doubles per hand-back of the same command, up to this
FORGET_S = 120.0  # a command's hand-back count is dropped this long after it was last seen

Verdict = Literal["serve", "back"] | dict[str, Any]
"""Run it here, hand it back, or answer it with this reply."""


def target(message: Message) -> tuple[Any, Any] | None:
    """The (host, pid) a command names when that is another supervisor; None when it
    names this one or none (anybody's: a script's, a team with one supervisor)."""
    body = message.body if isinstance(message.body, dict) else {}
    named = body.get("for")
    if not isinstance(named, dict):
        return None
    host, pid = named.get("host"), named.get("pid")
    return None if (host, pid) == (socket.gethostname(), os.getpid()) else (host, pid)


async def verdict(leases: AgentLeases, message: Message, host: Any, pid: Any) -> Verdict:
    """What to do with a command for the supervisor on ``host`` with ``pid``. A queue
    error on the way hands it back (a raised error would leave it leased for 300 s)."""
    if not isinstance(host, str) or not isinstance(pid, int) or isinstance(pid, bool):
        return {
            "ok": False,
            "error": "usage",
            "message": f"'for' must be {{host: TEXT, pid: NUMBER}}, not {host!r}, {pid!r}",
        }
    try:
        gone = await _gone(leases, message, host, pid)
    except errors.QueueError as exc:
        log.warning("command_target_unknown", message_id=message.id, error=str(exc))
        return "back"
    if gone is None:
        return "back"
    if gone == "serve":
        return "serve"
    log.info("command_for_gone_refused", message_id=message.id, host=host, pid=pid, reason=gone)
    refusal = errors.SupervisorGone(host, pid, gone, leases.gone_hint())
    return {
        "ok": False,
        "error": refusal.code,
        "message": str(refusal),
        "host": host,
        "pid": pid,
        "reason": gone,
        "hint": refusal.hint,
    }


async def _gone(leases: AgentLeases, message: Message, host: str, pid: int) -> str | None:
    """None: it may live (hand the command back); "serve": it is gone and the command is
    about an agent this supervisor runs now; else why it is known gone."""
    reason = await leases.supervisor_gone(host, pid, message.created_at)
    if reason is None:
        return None
    body = message.body if isinstance(message.body, dict) else {}
    command, agent = body.get("command"), body.get("agent")
    if command in AGENT_COMMANDS and isinstance(agent, str):
        if leases.holds(agent):
            log.info("command_for_gone_served", message_id=message.id, host=host, pid=pid)
            return "serve"
        holder = await leases.held_elsewhere(agent)
        if holder is not None and (holder.host, holder.pid) != (host, pid):
            return None  # its live holder serves it (the gone one's lease only runs out)
    return reason


class HandBacks:
    """How often each command was handed back lately, and the pause that follows."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}  # message id: (hand-backs, when last)

    def pause_after(self, ids: list[str]) -> float:
        """Count a hand-back of ``ids``; the pause before claiming again."""
        now = anyio.current_time()
        self._seen = {i: seen for i, seen in self._seen.items() if now - seen[1] < FORGET_S}
        for i in ids:
            self._seen[i] = (self._seen.get(i, (0, now))[0] + 1, now)
        times = max(self._seen[i][0] for i in ids)
        log.info("command_handed_back", message_ids=ids, times=times)
        return float(min(BACKOFF_S * 2 ** (times - 1), BACKOFF_MAX_S))
