"""ContextKeeper's decisions between turns (orchestrator/context.py), on its own: when to
compact again after a compaction that stayed above compact_at, and after one that failed.
The CLI's side of /compact is played by a queue of the messages it would send."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anyio
from claude_agent_sdk import ResultMessage, SystemMessage

from orchestrator.context import RETRY_TURNS, ContextKeeper
from orchestrator.lifecycle import RunnerEvent

SPEC = SimpleNamespace(
    model="claude-sonnet-4-5", context_window=10_000, compact_at=0.8, turn_timeout_s=30
)


def result(error: bool = False) -> ResultMessage:
    return ResultMessage(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=error,
        num_turns=1,
        session_id="s",
        result="API Error: 400 bad" if error else "ok",
    )


def turns(tokens: list[int], outcomes: Iterator[int | None]) -> list[tuple[int, bool, int | None]]:
    """Run a turn ending at each of ``tokens``; a /compact leaves the next of ``outcomes``
    tokens (None: the summary request fails). (tokens, compacted?, tokens after) each."""

    async def main() -> list[tuple[int, bool, int | None]]:
        async def on_event(kind: RunnerEvent, data: dict[str, Any]) -> None:
            pass

        keeper = ContextKeeper("alice", lambda: SPEC, on_event)
        queued: list[Any] = []
        asked: list[str] = []

        async def query(text: str) -> None:
            asked.append(text)
            post = next(outcomes)
            if post is None:
                queued[:] = [result(error=True)]
                return
            meta = {"pre_tokens": keeper.tokens, "post_tokens": post}
            queued[:] = [SystemMessage("compact_boundary", {"compact_metadata": meta}), result()]

        async def next_item() -> Any:
            return queued.pop(0)

        out = []
        for n in tokens:
            keeper.tokens = n
            before = len(asked)
            await keeper.between_turns(query, next_item)
            out.append((n, len(asked) > before, keeper.tokens))
        return out

    return anyio.run(main)


def test_a_compaction_below_the_threshold_clears_the_wait_for_growth() -> None:
    """8,600 compacts to 8,500 (still over 0.8 of 10,000: wait for 9,500); 9,700 compacts
    to 2,000. Then 8,100 is past compact_at again and compacts: it waited for 9,500 for
    ever before (revD 6)."""
    got = turns([8_600, 9_000, 9_700, 8_100, 9_000], iter([8_500, 2_000, 2_500, 3_000]))
    assert [c for _, c, _ in got] == [True, False, True, True, True]


def test_a_failed_compaction_backs_off_and_doubles() -> None:
    """The summary request fails: the next try is RETRY_TURNS[0] turns later, not after
    every turn (revD 7); a second failure in a row waits twice as long; growth by a tenth
    of the window tries at once; a success ends the back-off."""
    first, second = RETRY_TURNS[0], RETRY_TURNS[1]
    got = turns([9_000] * (2 + first + second), iter([None, None, 2_000, 2_000]))
    tried = [i for i, (_, compacted, _) in enumerate(got) if compacted]
    # The third try succeeds: at 9,000 the turn after, compact_at holds again.
    assert tried == [0, first, first + second, first + second + 1]
    # The context grows past the failure's tokens plus a tenth of the window: at once.
    got = turns([9_000, 9_500, 10_000, 9_000], iter([None, None, 2_000]))
    assert [c for _, c, _ in got] == [True, False, True, False]
