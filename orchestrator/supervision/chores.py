"""What the supervisor does on a timer: the housekeeping (the database file still there,
expired leases and TTLs swept, hearts beaten, refused state writes written again) and
the roster watcher (a reload when agents.yaml or a prompt file changes).

Every commit wakes every waiter, so the chores that write (sweep, heartbeats) run
rarely; the roster check is a stat() and runs often. Leases are also reclaimed by
claims. A chore the database refuses (another process holding the write lock past the
busy timeout) is reported once and tried again at the next round (issue 16, A.2).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import structlog

from orchestrator import errors
from orchestrator.agent_meta import AgentMeta
from orchestrator.reload import Fingerprint, ReloadResult, fingerprint, watched_paths
from orchestrator.supervision import refusals, registry
from orchestrator.supervision.refusals import Outcome

log = structlog.get_logger()

SWEEP_EVERY_S = 5.0
RELOAD_POLL_S = 1.0


class Team(registry.Team, Protocol):
    """What the chores need of the supervisor, beyond what the registry writes need."""

    watch_fingerprint: Fingerprint

    async def reload(self) -> ReloadResult: ...


async def housekeeping(sup: Team) -> None:
    """Sweep expired leases and TTLs, beat the hearts, re-record unwritten states; a
    database gone from its path stops the team (``abandon``)."""
    assert sup.mailbox is not None
    failing: set[str] = set()  # the chores refused at their last round
    owed: dict[str, float] = {}  # rows to write again after a lost bucket (check_store)
    next_sweep = time.monotonic() + SWEEP_EVERY_S
    while True:
        await anyio.sleep(RELOAD_POLL_S)
        try:
            sup.mailbox.check_file()
        except errors.DatabaseReplaced as exc:
            sup.abandon(exc)
            return
        if time.monotonic() < next_sweep:
            continue
        next_sweep = time.monotonic() + SWEEP_EVERY_S
        await _chore(sup, failing, "queue_store", lambda: check_store(sup, owed))
        if owed:
            await _chore(sup, failing, "owed_rows", lambda: write_owed(sup, owed))
        await _chore(sup, failing, "sweep", lambda: _sweep(sup))
        await _chore(sup, failing, "heartbeat", lambda: registry.heartbeats(sup))
        for slot in list(sup.slots.values()):
            if slot.unrecorded is not None:
                await registry.record(sup, slot)


async def check_store(sup: Team, owed: dict[str, float]) -> None:
    """A NATS server that lost the team's bucket (restarted without its store) is given
    it back, empty, as `up` makes it, and the team goes on: said once (warning
    `queue_store_lost`, and `ps` until the next `up`), then this supervisor's own row,
    its presence and the rows of the agents it runs written again at once (pid and
    all); its agents' leases are taken again at their next renewal, and the `claude`
    processes keep running. What was only on the lost server is gone for good:
    messages, replies, waits.

    The rows of the roster's other agents (stopped, or another machine's) are owed
    (``owed``: name -> when), written by :func:`write_owed` one agent lease later:
    by then every live supervisor has taken its leases again, so those rows are
    written only where nobody holds the agent and the row is still absent, as `up`
    writes them. Written at once, a "stopped" of ours landed on the row of an agent
    another machine runs (its lease not yet taken again) and its pid was lost.
    Nothing to do on SQLite."""
    assert sup.mailbox is not None
    how = await sup.mailbox.check_store()
    if how is None:
        return
    sup.queue_lost = {"at": time.time(), "how": how}
    log.warning(
        "queue_store_lost",
        how=how,
        lost="every message, reply and wait that was only on the lost server: "
        "send again what must still be done; an ask waiting for a lost request "
        "ends with not_found",
        kept="agents keep running; rows, presence and leases are written again",
    )
    await registry.register_self(sup, sup.mailbox)
    await sup.leases.announce()
    due = time.monotonic() + float(getattr(sup.leases, "lease_s", 0.0))
    for slot in list(sup.slots.values()):
        if sup.leases.holds(slot.name) and not slot.elsewhere:
            pid = slot.runner.pid if slot.runner is not None else None
            await registry.record(sup, slot, lost=True, pid=pid)
        else:
            owed[slot.name] = due


async def write_owed(sup: Team, owed: dict[str, float]) -> None:
    """The rows :func:`check_store` owes, once due: each written if it is still absent
    and no other supervisor holds the agent (its lease asked in the row's own
    conditional write), as `up` writes them."""
    assert sup.mailbox is not None
    now = time.monotonic()
    for name, due in sorted(owed.items()):
        if due > now:
            continue
        slot = sup.slots.get(name)
        spec = sup.roster.agents.get(name)
        if slot is not None and spec is not None and await sup.mailbox.agent(name) is None:
            holder = await sup.leases.register_row(
                sup.mailbox,
                name,
                spec.description,
                pid=None,
                state=slot.state.value,
                meta={
                    **AgentMeta.record(
                        slot.stats, restarts=slot.life.restart_count, started_at=slot.started_at
                    ),
                    "supervised": True,
                },
            )
            registry.kept_elsewhere(slot, holder)
        del owed[name]


async def _sweep(sup: Team) -> None:
    assert sup.mailbox is not None
    swept = await sup.mailbox.sweep()
    if swept.requeued or swept.expired or swept.dead:
        log.info("sweep", requeued=swept.requeued, expired=swept.expired, dead=swept.dead)


async def _chore(
    sup: Team, failing: set[str], name: str, chore: Callable[[], Awaitable[None]]
) -> None:
    """One chore; a refusal is reported once, and its recovery once."""
    event = None if name in failing else "chore_failed"
    outcome = await refusals.attempt(sup, chore(), event, chore=name, retry_in_s=SWEEP_EVERY_S)
    if outcome is Outcome.REFUSED:
        failing.add(name)
    elif outcome is Outcome.WRITTEN and name in failing:
        failing.discard(name)
        log.info("chore_recovered", chore=name)


async def watch_roster(sup: Team) -> None:
    """Reload when agents.yaml or a prompt file it names changes (a stat() per poll)."""
    while True:
        await anyio.sleep(RELOAD_POLL_S)
        now = fingerprint(watched_paths(sup.roster.path, sup.roster))
        if now != sup.watch_fingerprint and not await reload_safely(sup):
            sup.watch_fingerprint = now  # not again for the same files


async def reload_safely(sup: Team) -> bool:
    """``sup.reload()`` (it logs what it did, or why the file was refused); a crash in it
    is logged (`reload_crashed`), never the end of the team. False after a crash."""
    try:
        await sup.reload()
    except Exception as exc:
        log.exception("reload_crashed", error=repr(exc))
        return False
    return True
