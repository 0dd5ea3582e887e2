"""When agents may launch: the model checked (``up``), the SDK imported in the background
(:mod:`orchestrator.sdk_import`), the launcher written (:mod:`orchestrator.launcher`) with
its watchman started (:mod:`orchestrator.watchman`).

The team is operable (``ps``, ``send``, ``down``) before that; no ``claude`` starts
before it. An SDK that cannot be imported stops the team before any agent started.
"""

from __future__ import annotations

import gc
import shutil
from concurrent.futures import Future
from typing import Protocol

import anyio
import anyio.to_thread
import structlog

from orchestrator import errors, preflight, watchman, write_hold
from orchestrator.agent_meta import LAUNCHING
from orchestrator.launcher import launcher_folder, make_launcher, remove_launcher
from orchestrator.mailbox import SUPERVISOR, AsyncMailboxBackend
from orchestrator.roster import Roster
from orchestrator.sdk_import import SdkImport
from orchestrator.supervision import refusals
from orchestrator.supervision.leftovers import remove_dead_launchers
from orchestrator.supervision.slot import Slot
from orchestrator.watchman import Watchman

log = structlog.get_logger()


class Team(refusals.Abandons, Protocol):
    """What launching needs of the supervisor."""

    mailbox: AsyncMailboxBackend | None
    freeze_start_up: bool  # `up`'s own process, not a test's: start-up objects may be frozen
    unavailable: errors.SdkUnavailable | None
    launchable: anyio.Event
    cli_path: str | None
    watchman: Watchman | None
    write_hold: write_hold.Hold

    @property
    def stopping(self) -> bool: ...

    @property
    def state_changed(self) -> anyio.Event: ...

    def stop(self) -> None: ...

    def notify_changed(self) -> None: ...


async def check_model(
    roster: Roster, only: list[str] | None, begun: Future[list[preflight.Problem]] | None
) -> None:
    """The model reachable for the agents `up` starts; ``begun``: the check `up` began
    before importing the supervisor (preflight.start_check), answered at this same point."""
    if begun is not None:
        problems = await anyio.to_thread.run_sync(begun.result)
    else:
        wanted = [n for layer in roster.start_layers(only) for n in layer]
        problems = await anyio.to_thread.run_sync(preflight.check, roster, wanted)
    if problems:
        raise errors.ModelUnreachable([str(p) for p in problems])


async def launch_when_imported(sup: Team, sdk: SdkImport) -> None:
    """Once the SDK is imported, write the launcher and let agents launch; if it cannot
    be imported, say so and stop the team (no agent has started).

    The import (sdk_import.py) is begun once the database is open: it is CPU under the
    GIL, as is everything before that point (our imports, the logs, the lock, the
    schema), so begun sooner it only shares the CPU with them, delaying the moment the
    team is operable without launching agents any sooner (measured, issue 14.5). From
    there on it overlaps the model check's network wait and the registration."""
    try:
        await sdk.finished()
    except errors.SdkUnavailable as exc:
        log.error("sdk_unavailable", module=exc.module, error=exc.reason)
        sup.unavailable = exc
        sup.stop()
        return
    # What start-up made (our modules, the SDK's and mcp's, the roster, ~100k objects)
    # lives as long as the process: frozen, the cyclic collector stops scanning it. A
    # full collection falls in the agents' connect (their sessions allocate), and it
    # held the event loop every agent's handshake waits on for 70-450 ms (measured with
    # gc.callbacks, 10 agents, load 5-9). Only cyclic garbage among these would be kept.
    if sup.freeze_start_up:
        gc.freeze()
    with anyio.CancelScope(shield=True):  # kept, so that the team's end removes it
        sup.cli_path, sup.watchman = await anyio.to_thread.run_sync(write_launcher)
    sup.launchable.set()
    sup.notify_changed()
    log.info(
        "agents_launchable",
        sdk_import_s=round(sdk.took_s or 0.0, 3),
        frozen_objects=gc.get_freeze_count(),
    )
    assert sup.mailbox is not None
    # `up -d` returns once it reads this: past every check, the import's included.
    await refusals.attempt(
        sup,
        sup.mailbox.update_agent(SUPERVISOR, meta={LAUNCHING: True}),
        "state_not_recorded",
        agent=SUPERVISOR,
    )
    # Last, off the agents' way: what supervisors that are gone left in $TMPDIR.
    await anyio.to_thread.run_sync(remove_dead_launchers)


def write_launcher() -> tuple[str | None, Watchman | None]:
    """The launcher (:func:`make_launcher`) and the watchman that removes its folder and
    what the agents' sandboxes leave if this process dies without :func:`release_launcher`.
    Started before any claude, not waited for."""
    path = make_launcher()
    if path is None:
        return None, None
    try:
        return path, watchman.start(str(launcher_folder(path)), shutil.which("socat"))
    except OSError as exc:  # out of processes or descriptors: the team runs without one
        log.warning("watchman_not_started", error=str(exc))
        return path, None


def release_launcher(sup: Team) -> None:
    """At the team's end, once what a write hold stopped is continued: the launcher folder
    removed, then the watchman let go (it finds
    nothing left to do, and exits). A write hold in progress ends: nothing the team's
    claudes started stays stopped (orchestrator/write_hold.py)."""
    cli_path, watchman = sup.cli_path, sup.watchman

    def end() -> None:
        if cli_path:
            remove_launcher(cli_path)
        if watchman is not None:
            watchman.release()

    # After what a stop under way stops is continued: the folder holds its record, which
    # the watchman continues from if this process is killed first (the folder gone, a
    # SIGKILL then left them stopped for good).
    sup.write_hold.release_all(then=end)


async def until_launchable(sup: Team, slot: Slot) -> bool:
    """Wait until agents may launch (:func:`launch_when_imported`): True; False if the
    team or this agent was stopped first."""
    while not sup.launchable.is_set():
        if sup.stopping or not slot.want_running:
            return False
        wake = slot.wake
        async with anyio.create_task_group() as tg:
            for event in (sup.state_changed, wake):
                tg.start_soon(_cancel_when_set, event, tg.cancel_scope)
        if wake.is_set():  # a restart asked meanwhile: nothing to cut short
            slot.wake = anyio.Event()
    return True


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
