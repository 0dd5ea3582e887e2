"""What a dead supervisor left behind, cleaned up as ``up`` starts: the queue leases its
sessions held, the ``claude`` processes it launched, and their sandboxes' proxies; and the
launcher folders of this user's supervisors that are gone, with what their sandboxes left
(those the supervisor's watchman could not clean, :mod:`orchestrator.watchman`).

Nothing is killed on a pid alone: :mod:`orchestrator.procid` proves a process is the
one recorded first.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import structlog

from orchestrator import procid
from orchestrator.launcher import LAUNCHER_PREFIX, Maker, bundled_cli
from orchestrator.mailbox import SUPERVISOR_OWNER_PREFIX, AsyncMailboxBackend
from orchestrator.mailbox.backend import requeue_counted
from orchestrator.watchman import continue_held, may_be_cli, recorded_cli_pids

log = structlog.get_logger()


async def recover_leases(mailbox: AsyncMailboxBackend, instance: str) -> None:
    """Leases held by a dead supervisor's sessions can never be acked: requeue them now,
    the attempt counted (as when a session dies, or the lease runs out before this `up`).

    Only those (the caller holds the team's lock, so no other supervisor lives); a live
    external consumer's lease is its own, and runs out by itself if it died. (A shared
    NATS team: per agent, as its lease is taken, agent_leases.py.)"""
    leased = await mailbox.list(status="leased", limit=100_000)
    for owner in sorted({m.lease_owner or "" for m in leased}):
        if owner.startswith(SUPERVISOR_OWNER_PREFIX) and not owner.startswith(f"{instance}:"):
            n = await requeue_counted(mailbox, owner, leased)
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


def remove_dead_launchers(tmp: str | None = None) -> list[str]:
    """Remove the launcher folders (``$TMPDIR/octy-*``) of this user's supervisors that are
    provably gone, killing what their sandboxes left first; return the folders removed.

    For what the watchman could not do: it was killed too (``kill -9 -PGID``), or the
    machine lost power. Proof is the folder's maker record (launcher.Maker); a folder
    without one (made by an older version, or being made now) is left alone: nothing
    tells whether its supervisor still runs, and a live one would lose its launcher and
    could start no claude any more. So is a folder one of whose claudes still runs, a
    link, anything not a folder, or a folder of another user (all in a folder others can
    write: nothing is followed)."""
    tmp = tmp or tempfile.gettempdir()
    try:
        names = [e.name for e in os.scandir(tmp) if e.name.startswith(LAUNCHER_PREFIX)]
    except OSError:
        return []
    socat = shutil.which("socat")
    removed = []
    for name in names:
        path = os.path.join(tmp, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # a link, a file, or gone meanwhile
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                continue
            maker = Maker.read(fd)
            if maker is None or not maker.gone():
                continue
            pids = recorded_cli_pids(fd)
            continue_held(fd)  # what its write hold stopped (orchestrator/write_hold.py)
        finally:
            os.close(fd)
        if any(procid.running(pid) and may_be_cli(pid) for pid in pids):
            continue  # its claude outlived it: `up` of its team proves and kills it first
        helpers = [h for pid in pids for h in procid.kill_orphaned_helpers(pid, socat)]
        # fd-based on Linux, and it refuses a link put in the folder's place meanwhile.
        shutil.rmtree(path, ignore_errors=True)
        log.warning("removed_dead_launcher", folder=path, supervisor=maker.pid, helpers=helpers)
        removed.append(path)
    return removed
