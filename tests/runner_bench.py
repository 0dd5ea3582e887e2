"""The runner on a real queue with a double of the SDK client in place of the claude
process: what tests/team/test_runner_unit.py (SQLite) and the NATS runner tests
(tests/mailbox/contract/test_nats_runner.py, a real nats-server) drive."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultMessage,
    TextBlock,
)

from orchestrator.lifecycle import RunnerEvent, SessionEnd
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.roster import Roster
from orchestrator.runner import AgentRunner

Answer = Callable[[str], list[Any]]
_uuids = itertools.count(1)


def said(text: str, *, cost: float = 0.01) -> list[Any]:
    """A turn that went well: the model's text, then its result."""
    uuid = f"u{next(_uuids)}"
    return [
        AssistantMessage(content=[TextBlock(text)], model="fake", uuid=uuid),
        ResultMessage(
            subtype="success",
            duration_ms=1,
            duration_api_ms=1,
            is_error=False,
            num_turns=1,
            session_id="s1",
            total_cost_usd=cost,
            result=text,
            uuid=uuid,
        ),
    ]


def failed(status: int, text: str, terminal_reason: str | None = None) -> list[Any]:
    """A turn the API refused, the way the CLI reports it (model_errors.py)."""
    return [
        AssistantMessage(content=[TextBlock(text)], model="<synthetic>"),
        ResultMessage(
            subtype="success",
            duration_ms=1,
            duration_api_ms=1,
            is_error=True,
            num_turns=1,
            session_id="s1",
            api_error_status=status,
            terminal_reason=terminal_reason,
        ),
    ]


def interrupted() -> ResultMessage:
    return ResultMessage(
        subtype="error_during_execution",
        duration_ms=1,
        duration_api_ms=1,
        is_error=True,
        num_turns=1,
        session_id="s1",
        terminal_reason="aborted_streaming",
    )


class FakeClaude:
    """Stands in for ``ClaudeSDKClient``: each query is answered with what ``answer``
    returns for its text (messages, or an exception: the process dies there)."""

    def __init__(self, options: ClaudeAgentOptions, bench: Bench) -> None:
        self.options = options
        self.bench = bench
        self._send, self._receive = anyio.create_memory_object_stream[Any](100)
        self.disconnects = 0

    async def connect(self) -> None:
        if self.bench.connect_error is not None:
            raise self.bench.connect_error

    async def query(self, prompt: str | AsyncIterable[dict[str, Any]]) -> None:
        # As the SDK's: a string, or user messages (the runner sends one with a uuid).
        if not isinstance(prompt, str):
            prompt = "".join([str(m["message"]["content"]) async for m in prompt])
        self.bench.queries.append(prompt)
        self.bench.poke()
        for item in self.bench.answer(prompt):
            await self._send.send(item)

    async def receive_messages(self) -> AsyncIterator[Any]:
        async for item in self._receive:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def say(self, item: Any) -> None:
        await self._send.send(item)

    async def interrupt(self) -> None:
        self.bench.interrupts += 1
        self.bench.poke()

    async def disconnect(self) -> None:
        self.disconnects += 1
        self._send.close()
        self._receive.close()


class Bench:
    def __init__(self, roster: Roster, mailbox: AsyncMailboxBackend) -> None:
        self.roster = roster
        self.mailbox = mailbox
        self.answer: Answer = lambda prompt: said("ok")
        self.connect_error: Exception | None = None
        self.queries: list[str] = []
        self.interrupts = 0
        self.clients: list[FakeClaude] = []
        self.events: list[tuple[RunnerEvent, dict[str, Any]]] = []
        self._changed = anyio.Event()

    def runner(self, hold: Callable[[str], Awaitable[None]] | None = None) -> AgentRunner:
        """Agent "a"'s runner; ``hold`` is awaited before each of its claims."""
        return AgentRunner(
            "a",
            self.mailbox,
            lambda: self.roster,
            owner="test:a:1",
            cli_path=None,
            on_event=self._on_event,
            client=self._client,
            hold=hold,
        )

    def _client(self, options: ClaudeAgentOptions) -> Any:
        client = FakeClaude(options, self)
        self.clients.append(client)
        return client

    async def _on_event(self, event: RunnerEvent, data: dict[str, Any]) -> None:
        self.events.append((event, data))
        self.poke()

    def named(self, event: RunnerEvent) -> list[dict[str, Any]]:
        return [data for e, data in self.events if e == event]

    async def run_until(
        self, done: Callable[[], Any], *, runner_: AgentRunner | None = None
    ) -> SessionEnd:
        """Run a runner until ``done()`` holds, then stop it; its SessionEnd. ``done`` is
        checked after each thing the runner does (an event, a query, its end)."""
        r = runner_ or self.runner()
        ends: list[SessionEnd] = []

        async def run() -> None:
            ends.append(await r.run())
            self.poke()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await self.until(lambda: bool(ends) or done())
                r.request_stop(0)
        return ends[0]

    def poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, done: Callable[[], Any]) -> None:
        """Wait until ``done()`` (a bool, or an awaitable of one) holds."""
        while True:
            changed = self._changed  # taken first: a change during the check is not missed
            answer = done()
            if await answer if inspect.isawaitable(answer) else answer:
                return
            await changed.wait()

    async def status(self, message: Message) -> str:
        return (await self.mailbox.get(message.id)).status
