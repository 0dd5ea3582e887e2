"""What the CLI says, read off its stream and sorted by turn: ours (a query we wrote,
with a uuid of its own) or foreign (a turn no query of ours started), and the notice
of the process's death.

The pump reads the stream into a memory channel; the runner (:mod:`orchestrator.runner`)
takes a turn's messages from it, or drains it between turns.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
)


@dataclass(frozen=True)
class Died:
    detail: str
    exit_code: int | None

    @property
    def saved(self) -> bool:
        """Whether the CLI exited by itself (an exit code, not killed by a signal): it ran
        its shutdown and saved its running figures, the cut requests in them. Measured on
        2.1.332: ended by SIGTERM, its handler exits 143 and writes them (the transcript's
        ``cost-state``), and resumed it continues from them; killed (SIGKILL, -9), it
        saves nothing. Unknown (None): read as saving nothing, as before."""
        return isinstance(self.exit_code, int) and self.exit_code >= 0


@dataclass(frozen=True)
class Foreign:
    """Something the CLI said in a turn no query of ours started (see ``TurnSorter.sort``)."""

    message: Any


class TurnTimeout(Exception):
    pass


class SessionDied(Exception):
    def __init__(self, died: Died) -> None:
        super().__init__(died.detail)
        self.died = died


OnForeign = Callable[[Any], Awaitable[None]]


class TurnSorter:
    """The uuids of our queries the CLI has not answered yet, and whether a turn the CLI
    started by itself is running: its messages are foreign (see :meth:`sort`)."""

    def __init__(self) -> None:
        self.awaiting: list[str] = []
        self.foreign_open = False
        self.commands: set[str] = set()  # awaited slash commands: their results list no uuid
        self.cli_lists_uuids = False  # seen a result list one of our uuids

    def new_session(self) -> None:
        self.awaiting, self.foreign_open = [], False

    async def query(self, client: ClaudeSDKClient, text: str) -> None:
        """Start a turn, with a uuid of its own: the result that took it in lists it."""
        uid = str(uuid.uuid4())
        self.awaiting.append(uid)
        if text.startswith("/"):
            self.commands.add(uid)

        async def one() -> AsyncIterator[dict[str, Any]]:
            yield {
                "type": "user",
                "message": {"role": "user", "content": text},
                "parent_tool_use_id": None,
                "uuid": uid,
            }

        try:
            await client.query(one())
        except BaseException:
            self.awaiting.remove(uid)
            raise

    def sort(self, message: Any) -> Any:
        """Mark what belongs to a turn no query of ours started (a background task's
        report, a scheduled prompt of a newer CLI) as foreign. The CLI runs one turn at a
        time, so a turn that begins while none of ours is awaited runs to its result before
        any query written meanwhile: that result is not our message's answer. Called by the
        pump, in the order the CLI speaks.

        A result that lists the uuids of the prompts it took in (CLI 2.1.332 does) is ours
        when one of them is ours, whatever came before it: a prompt written while a foreign
        turn runs may be taken into that turn, or the foreign turn's start may still be in
        the pipe when we write (seen under load). The rest is marked by the rule above."""
        if isinstance(message, ResultMessage):
            taken = [*(message.user_message_uuids or []), message.user_message_uuid]
            if any(taken):
                self.foreign_open = False
                mine = [u for u in self.awaiting if u in taken]
                for u in mine:
                    self.awaiting.remove(u)
                self.cli_lists_uuids = self.cli_lists_uuids or bool(mine)
                return message if mine else Foreign(message)
            if self.cli_lists_uuids and self.awaiting and self.awaiting[0] not in self.commands:
                # A CLI that lists our uuids lists them on every turn that took one in (a
                # local command such as /compact lists none): this turn took none of ours.
                self.foreign_open = False
                return Foreign(message)
        if self.foreign_open or (not self.awaiting and starts_turn(message)):
            self.foreign_open = not isinstance(message, ResultMessage)
            return Foreign(message)
        if isinstance(message, ResultMessage) and self.awaiting:
            self.commands.discard(self.awaiting.pop(0))
        return message


def starts_turn(message: Any) -> bool:
    """The first thing the CLI says in a turn (measured on 2.1.332: ``init`` each turn),
    or anything only a turn says."""
    if isinstance(message, SystemMessage):
        return message.subtype == "init"
    return isinstance(message, AssistantMessage | ResultMessage)


async def pump(
    client: ClaudeSDKClient,
    send: MemoryObjectSendStream[Any],
    sort: Callable[[Any], Any],
    ended: Callable[[], None],
) -> None:
    """Read everything the CLI says; tell the serve loop when the process is gone
    (``ended``: wakes it if idle)."""
    died = Died("claude process ended", None)
    try:
        async for message in client.receive_messages():
            await send.send(sort(message))
        # Ended without an error: the SDK saw it exit 0 (e.g. by its SIGINT handler,
        # measured on 2.1.332), which saved its figures; the code says so (Died.saved).
        died = Died("claude process ended", _exit_code(client))
    except ClaudeSDKError as exc:
        died = Died(str(exc), getattr(exc, "exit_code", None))
    await send.send(died)
    ended()


def _exit_code(client: ClaudeSDKClient) -> int | None:
    """The CLI's exit code, if it has exited (the SDK's process, private: None if not
    found)."""
    process = getattr(getattr(client, "_transport", None), "_process", None)
    code = getattr(process, "returncode", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


async def next_item(receive: MemoryObjectReceiveStream[Any], foreign: OnForeign) -> Any:
    """The next thing said in our turn (a foreign turn's is handed to ``foreign``)."""
    while True:
        item = await receive.receive()
        if isinstance(item, Died):
            raise SessionDied(item)
        if not isinstance(item, Foreign):
            return item
        await foreign(item.message)


async def drain(receive: MemoryObjectReceiveStream[Any], foreign: OnForeign) -> Died | None:
    """What the CLI said between turns (a foreign turn's spend is counted); the death
    notice if it came."""
    while True:
        try:
            item = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return None
        if isinstance(item, Died):
            return item
        if isinstance(item, Foreign):
            await foreign(item.message)
