"""One turn read off the CLI's stream to its result: its final text, its last entry
(where a rewind goes back to), the tools it used, its spend watched as it goes, and
the model errors the CLI met on the way (the turn cut short when the model cannot be
reached), then what a failed turn's failure was.

The stream arrives sorted by turn (:mod:`orchestrator.turn_stream`); what the result
means for the messages is the runner's (:mod:`orchestrator.runner`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolUseBlock,
)

from orchestrator.context import ContextKeeper
from orchestrator.lifecycle import OnEvent, RunnerEvent
from orchestrator.model_errors import Failure, ModelError, classify, no_answer
from orchestrator.preflight import unreachable
from orchestrator.relay import Turn
from orchestrator.spend import Spend
from orchestrator.turn_stream import Died, Foreign, OnForeign, SessionDied, TurnTimeout


class TurnReader:
    """One turn's reading: ``unavailable`` says why it was cut short (the model is out),
    ``uuid`` is its last top-level entry."""

    def __init__(
        self,
        client: ClaudeSDKClient,
        receive: MemoryObjectReceiveStream[Any],
        turn: Turn,
        *,
        spend: Spend,
        context: ContextKeeper,
        foreign: OnForeign,
        interrupted: Callable[[], bool],
        cli_env: dict[str, str],
        on_event: OnEvent,
        log: Any,
    ) -> None:
        self.client = client
        self.receive = receive
        self.turn = turn
        self.spend = spend
        self.context = context
        self.foreign = foreign
        self.interrupted = interrupted  # the runner's: set once a stop interrupts the turn
        self.cli_env = cli_env  # what the CLI sees (its endpoint)
        self.on_event = on_event
        self.log = log
        self.unavailable: str | None = None
        self.uuid: str | None = None

    async def collect(self, turn_timeout_s: float | None) -> tuple[ResultMessage, str]:
        """The turn's result and final text. Raises TurnTimeout after ``turn_timeout_s``
        of silence (not while an ask waits on a peer), SessionDied if the CLI died."""
        timeout = turn_timeout_s or math.inf
        last_text = ""
        self.unavailable = None
        self.uuid = None
        self.spend.new_turn()
        while True:
            with anyio.move_on_after(timeout) as scope:
                item = await self.receive.receive()
            if scope.cancelled_caught:
                if self.turn.asks_in_flight:
                    continue  # waiting on a peer is not silence
                raise TurnTimeout
            if isinstance(item, Died):
                raise SessionDied(item)
            if isinstance(item, Foreign):
                await self.foreign(item.message)
                continue
            if isinstance(item, AssistantMessage):
                # subagents' requests count too
                await self.spend.watch(self.client, item, self.interrupted())
            if getattr(item, "parent_tool_use_id", None) is None:
                self.context.observe(item)
            if isinstance(item, AssistantMessage) and item.parent_tool_use_id is None:
                self.uuid = item.uuid or self.uuid
                texts = [b.text for b in item.content if isinstance(b, TextBlock)]
                if texts:
                    last_text = "".join(texts)
                for block in item.content:
                    if isinstance(block, ToolUseBlock):
                        self.log.info("tool_used", tool=block.name, input=block.input)
            elif isinstance(item, SystemMessage) and item.subtype == "api_retry":
                await self._model_error(ModelError.from_retry(item.data))
            elif isinstance(item, ResultMessage):
                return item, item.result if item.result is not None else last_text

    async def _model_error(self, error: ModelError) -> None:
        """The CLI is retrying a failed API call: say so at once, and cut the turn short
        when retrying cannot help (a rejected key, an unknown model, nobody listening)."""
        self.log.warning("model_error", **error.fields())
        await self.on_event(RunnerEvent.MODEL_ERROR, {"reason": error.short()})
        if self.unavailable is not None:
            return
        reason = error.unavailable_reason()
        if reason is None and error.status is None:
            reason = await anyio.to_thread.run_sync(unreachable, self.cli_env)
        if reason is None:
            return  # a 429/5xx/529 or a blip: the CLI's bounded retries (model_retries) go on
        self.unavailable = reason
        self.log.warning("model_unavailable", reason=reason)
        try:
            await self.client.interrupt()  # measured: the turn ends within ~0.2 s, mid-backoff too
        except ClaudeSDKError as exc:
            self.log.warning("interrupt_failed", error=str(exc))

    async def failure(self, result: ResultMessage, text: str) -> Failure:
        """What a failed turn's failure was (``result.is_error``, or cut short)."""
        if self.unavailable:
            return Failure("unavailable", self.unavailable)
        if no_answer(result):  # the CLI's retries ran out without any HTTP answer
            reason = await anyio.to_thread.run_sync(unreachable, self.cli_env)
            if reason:
                return Failure("unavailable", reason)
        return classify(result, text)
