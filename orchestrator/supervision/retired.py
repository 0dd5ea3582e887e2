"""The registry rows of agents removed from agents.yaml while the team was down, found
as ``up`` starts (:func:`forget_retired`)."""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any

import structlog

from orchestrator import errors
from orchestrator.agent_meta import AgentMeta
from orchestrator.mailbox import SUPERVISOR, USER, AgentInfo, AsyncMailboxBackend
from orchestrator.roster import Roster
from orchestrator.supervision import refusals
from orchestrator.supervision.leftovers import kill_stale_cli
from orchestrator.supervision.restarts import Answering, fail_requests

log = structlog.get_logger()


async def forget_retired(
    sup: Answering, mailbox: AsyncMailboxBackend, roster: Roster, last: AgentInfo | None
) -> None:
    """Rows of agents removed from agents.yaml while the team was down, which kept the
    `supervised` mark of the team that ran them: `ps` listed them as stopped agents of
    the team, `start b` was sent to a supervisor that knows no `b` and failed, and a
    request queued for one waited for its TTL. Done as a reload's removal does it
    (reload._forget_agent), which the edit never met: its requests are answered
    `recipient_removed` and its row leaves the registry. A row with notices still queued
    (a reload keeps them for the agent's return) is kept instead, as an outside
    participant's (`supervised` cleared, stopped): `ps` shows them, `inbox NAME --ack`
    takes them and `unregister NAME` ends it; deleted, they could not be reached.

    Only where this supervisor alone runs the team (SQLite, the lock file; the caller
    asks): on a shared NATS team another supervisor's roster may still hold the agent.
    Called after recover_leases: what a dead supervisor leased for it is pending again.

    Only rows of this roster's own team: ``last`` (the supervisor row as the last
    supervisor left it, read before ours replaced it) must name this roster file. Another
    roster sharing the database (two files in one folder share queue/team.db) removed
    none of its agents: `up -f review.yaml` answered every request waiting for
    agents.yaml's agents `recipient_removed` and deleted their rows. Unsure (no row, no
    roster recorded, another file): nothing is forgotten."""
    recorded = last.meta.get("roster") if last is not None else None
    if not isinstance(recorded, str) or not _same_file(recorded, str(roster.path)):
        if recorded:
            log.info("retired_rows_left", roster=str(roster.path), last_roster=recorded)
        return
    for info in await mailbox.agents():
        name = info.name
        if name in (USER, SUPERVISOR) or name in roster.agents or not info.meta.get("supervised"):
            continue  # a participant's own row (`register`) is its own
        if info.pid:  # its claude, if a dead supervisor left it running (proven first)
            kill_stale_cli(name, info.pid, AgentMeta.read(info.meta).pid_start)
        await fail_requests(
            sup,
            name,
            errors.RecipientRemoved.code,
            f"'{name}' was removed from {roster.path.name} before it answered",
        )
        notices = (await mailbox.pending_counts()).get(name, 0)
        change: Coroutine[Any, Any, object]
        if notices:
            # Its session's start goes with the team's mark: as an outside participant's
            # row `ps` showed it stopped, up since that old session started.
            change = mailbox.update_agent(
                name, state="stopped", pid=None, meta={"supervised": False, "started_at": None}
            )
        else:
            change = mailbox.unregister(name, force=True)
        outcome = await refusals.attempt(sup, change, "retired_row_kept", level="error", agent=name)
        if outcome is refusals.Outcome.WRITTEN:
            log.warning(
                "removed_agent_forgotten",
                agent=name,
                reason=f"not in {roster.path.name}",
                notices_kept=notices,
            )


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
