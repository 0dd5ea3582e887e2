"""An ask made again when its turn is delivered again (the asker's session restarted
mid-ask) finds the request it made before (review I.3), and hostile names and ids in
the tools' input come back with their code (review I.5). Real relay, real SQLite queue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_relay_unit import answer_when_asked, messages, roster, text

from orchestrator import errors
from orchestrator.mailbox import AsyncMailbox
from orchestrator.prompts import TOOL_SPECS
from orchestrator.relay import Relay, Turn


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[AsyncMailbox]:
    q = await AsyncMailbox(tmp_path / "team.db").open()
    for name in ("alpha", "beta", "gamma"):
        await q.register(name, f"{name} does things", state="ready")
    yield q
    await q.aclose()


def session(queue: AsyncMailbox, tmp_path: Path, cause: Any) -> Relay:
    """alpha's relay in a new session, handling the turn caused by ``cause``."""
    r = roster(tmp_path)
    relay = Relay("alpha", queue, lambda: r)
    relay.turn = Turn([cause])
    return relay


async def test_an_ask_replayed_after_a_restart_waits_on_the_first_request(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    cause = await queue.send("user", "alpha", "go")
    ask = {"to": "beta", "message": "run the migration"}
    async with anyio.create_task_group() as tg:  # the first session dies while it waits
        tg.start_soon(session(queue, tmp_path, cause).ask, ask)
        with anyio.fail_after(10):
            while not await messages(queue, "request"):  # noqa: ASYNC110 - another task writes it
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    (first,) = await messages(queue, "request")
    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_when_asked, queue, "beta", "migrated")
        result = await session(queue, tmp_path, cause).ask(ask)
    assert text(result) == "migrated"
    assert [m.id for m in await messages(queue, "request")] == [first.id]  # asked once


async def test_an_ask_answered_before_the_restart_reads_that_answer_at_once(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    cause = await queue.send("user", "alpha", "go")
    ask = {"to": "beta", "message": "deploy", "timeout_s": 600}
    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_when_asked, queue, "beta", "deployed")
        assert text(await session(queue, tmp_path, cause).ask(ask)) == "deployed"
    with anyio.fail_after(10):  # nobody answers a second time: it is read, not asked
        assert text(await session(queue, tmp_path, cause).ask(ask)) == "deployed"
    await queue.update_agent("beta", state="stopped")  # since: its answer is still the one
    assert text(await session(queue, tmp_path, cause).ask(ask)) == "deployed"
    assert len(await messages(queue, "request")) == 1
    other = await queue.send("user", "alpha", "go")  # a new ask to a stopped peer: refused
    assert text(await session(queue, tmp_path, other).ask(ask)).startswith(
        "error recipient_stopped:"
    )


async def test_the_same_question_in_a_later_turn_or_twice_in_a_turn_is_a_new_ask(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    ask = {"to": "beta", "message": "status?", "timeout_s": 600}
    first = session(queue, tmp_path, await queue.send("user", "alpha", "go"))
    later = session(queue, tmp_path, await queue.send("user", "alpha", "go"))
    for relay in (first, first, later):
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_when_asked, queue, "beta", "fine")
            assert text(await relay.ask(ask)) == "fine"
    assert len({m.id for m in await messages(queue, "request")}) == 3


@pytest.mark.parametrize(
    ("tool", "args", "code"),
    [
        ("send", {"to": "b\ud800", "message": "hi"}, "recipient_unknown"),
        ("ask", {"to": "\ud800", "message": "hi"}, "recipient_unknown"),
        ("send", {"to": "Beta; DROP", "message": "hi"}, "recipient_unknown"),
        ("reply", {"request_id": "\ud800", "message": "x"}, "not_found"),
        ("reply", {"request_id": "../../etc", "message": "x"}, "not_found"),
    ],
)
async def test_a_name_or_id_no_message_can_have_is_refused_with_its_code(
    queue: AsyncMailbox, tmp_path: Path, tool: str, args: dict[str, Any], code: str
) -> None:
    """A lone surrogate reached SQLite's encoder: a raw codec error came back, no code."""
    relay = session(queue, tmp_path, await queue.send("user", "alpha", "go"))
    result = await getattr(relay, tool)(args)
    assert result.get("is_error") is True
    assert text(result).startswith(f"error {code}: ")
    text(result).encode("utf-8")  # printable as it is
    assert await messages(queue, "request") == []


def test_the_ask_tools_codes_are_the_readmes_and_every_answer_code() -> None:
    """The model reads codes the ask tool's description did not list (expired,
    turn_failed, recipient_stopped...) and the README's relay section left some out."""
    description = TOOL_SPECS["ask"][0]
    listed = set(re.findall(r"[a-z_]+", description.split("Fails with a code:")[1]))
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    relay = readme.split("## Relay tools")[1].split("\n## ")[0]
    failures = relay.split("- Failures are tool errors")[1].split("\n- ")[0]
    documented = set(re.findall(r"`([a-z_]+)`", failures))
    answers = {cls.code for cls in errors._BY_CODE.values()} - {"request_failed"}
    assert answers <= listed
    assert listed <= documented
    assert {"timeout", "usage", "invalid_body", "queue_unavailable"} <= listed


async def test_an_ask_id_sorts_with_the_ids_of_its_time(
    queue: AsyncMailbox, tmp_path: Path
) -> None:
    """Ids sort by time, and a NATS bucket lists messages in key order (`queue ls`, `queue
    show`): a derived ask id (a hash alone) sorted after every id ever drawn, so the ask
    was listed as the newest message for ever."""
    before = await queue.send("user", "gamma", "earlier")
    await anyio.sleep(0.005)  # ids of another millisecond
    cause = await queue.send("user", "alpha", "go")
    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_when_asked, queue, "beta", "ok")
        assert (
            text(await session(queue, tmp_path, cause).ask({"to": "beta", "message": "q"})) == "ok"
        )
    await anyio.sleep(0.005)
    after = await queue.send("user", "gamma", "later")
    (asked,) = await messages(queue, "request")
    assert before.id < asked.id < after.id
