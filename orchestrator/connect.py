"""Connecting to one claude CLI and closing it: a watchdog kills a CLI hung before its
handshake, and a closed session's process group is killed with whatever tools it left.

The runner (:mod:`orchestrator.runner`) decides which session to connect (resume,
rewind, afresh); this module only brings the process up or down.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
from claude_agent_sdk import ClaudeSDKClient, ClaudeSDKError

from orchestrator.launcher import kill_unlaunched, read_cli_pid
from orchestrator.logconfig import KILLED_ON_STOP

# How a connect ended (connect_within).
Connected = Literal["connected", "timed_out", "stopped"]


async def connect_within(
    client: ClaudeSDKClient, timeout_s: float, pid_file: Path | None, stop: anyio.Event
) -> Connected:
    """``client.connect()``: "connected", or "timed_out" if it had not completed
    within ``timeout_s``, or "stopped" if ``stop`` was set first (`stop`, `down`, a
    restart, a second Ctrl-C: a CLI hung before its handshake used to be waited for
    until the timeout, found by review F).

    A claude process hung before its handshake has nothing to save, so it is
    SIGKILLed first: cancelling connect() instead would run the SDK's graceful
    close, which waits 10 s on a process that does not read its stdin. If the
    kill does not end connect() (no process yet), it is cancelled after 5 s."""
    outcome: Connected = "connected"

    async def watchdog(scope: anyio.CancelScope) -> None:
        nonlocal outcome
        with anyio.move_on_after(timeout_s) as waited:
            await stop.wait()
        outcome = "timed_out" if waited.cancelled_caught else "stopped"
        killed_on_stop[0] = outcome == "stopped"  # (a hung start-up stays a logged error)
        pid = read_cli_pid(pid_file)
        if pid is None and pid_file is not None:  # stuck before the launcher wrote it
            killed = await anyio.to_thread.run_sync(kill_unlaunched, pid_file)
            pid = None if killed else read_cli_pid(pid_file)  # (written meanwhile)
        if pid is not None:
            kill_group(pid) if is_group_leader(pid) else kill(pid)
        await anyio.sleep(5)
        scope.cancel()

    failure: Exception | None = None
    # Shared with the SDK's reader task, which connect() starts in this context.
    killed_on_stop = [False]
    token = KILLED_ON_STOP.set(killed_on_stop)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog, tg.cancel_scope)
            try:
                await client.connect()
            except Exception as exc:  # re-raised below, outside the task group (no group)
                failure = exc
            tg.cancel_scope.cancel()
    finally:
        KILLED_ON_STOP.reset(token)
    if outcome != "connected":
        return outcome  # after the kill, any failure is the timeout's (or the stop's)
    if failure is not None:
        raise failure
    return outcome


async def close(client: ClaudeSDKClient, pid: int | None, own_group: bool, log: Any) -> None:
    """Disconnect (bounded, shielded), then kill what is left of the CLI's own process
    group (``own_group``: it leads one, see session_options)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(15):
        try:
            await client.disconnect()
        except (ClaudeSDKError, OSError) as exc:
            log.debug("disconnect_error", error=str(exc))
    if pid and own_group:
        kill_group(pid)


def is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def kill_group(pgid: int) -> None:
    """Kill what is left of the CLI's process group (tools it started), if anything."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
