"""What a dead supervisor left behind, cleaned up as ``up`` starts: the queue leases its
sessions held, the ``claude`` processes it launched, and their sandboxes' proxies.

Nothing is killed on a pid alone: :mod:`orchestrator.procid` proves a process is the
one recorded first.
"""

from __future__ import annotations

import os
import shutil
import signal

import structlog

from orchestrator import procid
from orchestrator.launcher import bundled_cli
from orchestrator.mailbox import SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend

log = structlog.get_logger()


async def recover_leases(mailbox: AsyncMailboxBackend, instance: str) -> None:
    """Leases held by a dead supervisor's sessions can never be acked: requeue them now.

    Only those (the caller holds the team's lock, so no other supervisor lives); a live
    external consumer's lease is its own, and runs out by itself if it died. (A shared
    NATS team: per agent, as its lease is taken, agent_leases.py.)"""
    leased = await mailbox.list(status="leased", limit=100_000)
    for owner in {m.lease_owner for m in leased}:
        if (
            owner
            and owner.startswith(SUPERVISOR_OWNER_PREFIX)
            and not owner.startswith(f"{instance}:")
        ):
            n = await mailbox.release(owner)
            log.info("recovered_leases", owner=owner, messages=n)


def kill_stale_cli(agent: str, pid: int, recorded_start: object) -> None:
    """A claude process left by a supervisor that died without the parent-death signal:
    killed only if it is provably that process (procid), never on the pid alone."""
    why_not = procid.is_leftover_cli(pid, recorded_start, bundled_cli())
    if why_not is not None:
        # Gone (killed with its supervisor): its sandbox's proxies may live on (procid).
        helpers = procid.kill_orphaned_helpers(pid, shutil.which("socat"))
        if helpers:
            log.warning("killed_stale_sandbox_helpers", agent=agent, pid=pid, helpers=helpers)
        log.info("stale_pid_left_alone", agent=agent, pid=pid, reason=why_not)
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return
    log.warning("killed_stale_cli", agent=agent, pid=pid)
