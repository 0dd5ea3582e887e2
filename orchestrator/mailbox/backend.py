"""The queue interface callers depend on: the one contract every backend keeps.

The runner, relay tools, control and supervisor hold an :class:`AsyncMailboxBackend`;
sync tools and the CLI a :class:`MailboxBackend`. Two implementations of the async
contract: SQLite (``AsyncMailbox``, the embedded default) and NATS JetStream
(``orchestrator.mailbox.nats.NatsMailbox``, for a team across machines). Semantics are
pinned by the conformance suite in ``tests/mailbox/contract/``: the same tests, run
against every backend; a new backend passes it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from orchestrator import errors
from orchestrator.mailbox.model import AgentInfo, Keep, Message, SweepResult


class MailboxBackend(Protocol):
    """What the synchronous ``Mailbox`` offers (see its docstrings for semantics)."""

    path: Path

    def close(self) -> None: ...
    def register(
        self,
        name: str,
        description: str = "",
        *,
        pid: int | None = None,
        state: str = "registered",
        meta: dict[str, Any] | None = None,
    ) -> AgentInfo: ...
    def register_supervisor(self, pid: int, meta: dict[str, Any]) -> AgentInfo: ...
    def update_agent(
        self,
        name: str,
        *,
        state: str | None = None,
        pid: int | Keep | None = ...,
        meta: dict[str, Any] | None = None,
        heartbeat: bool = True,
    ) -> None: ...
    def unregister(self, name: str, *, force: bool = False) -> bool: ...
    def agents(self) -> list[AgentInfo]: ...
    def agent(self, name: str) -> AgentInfo | None: ...
    def send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        kind: Any = "notice",
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = ...,
        message_id: str | None = None,
    ) -> Message: ...
    def send_many(
        self,
        sender: str,
        messages: Sequence[tuple[str, Any]],
        *,
        kind: Any = "notice",
        ttl_s: float | None = None,
        max_attempts: int = ...,
    ) -> list[Message]: ...
    def request(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = ...,
        wait_s: float | None = None,
        message_id: str | None = None,
    ) -> Message: ...
    def broadcast(self, sender: str, body: Any, *, ttl_s: float | None = None) -> list[Message]: ...
    def reply(self, request_id: str, sender: str, body: Any) -> Message: ...
    def fail_request(self, request_id: str, code: str, detail: str = "") -> bool: ...
    def claim(
        self, recipient: str, *, owner: str, lease_s: float = ..., limit: int = 1
    ) -> list[Message]: ...
    def ack(self, message_ids: Sequence[str], *, owner: str) -> None: ...
    def nack(
        self,
        message_id: str,
        *,
        owner: str,
        error: str | None = None,
        delay_s: float = 0.0,
        dead_code: str | None = None,
    ) -> Message: ...
    def extend(self, message_ids: Sequence[str], *, owner: str, lease_s: float) -> None: ...
    def release(self, owner: str, message_ids: Sequence[str] | None = None) -> int: ...
    def wait_for_reply(
        self, request_id: str, timeout_s: float, *, still: Callable[[], bool] | None = None
    ) -> Message: ...
    def wait_for_messages(self, recipient: str, timeout_s: float) -> bool: ...
    def get(self, message_id: str) -> Message: ...
    def find_reply(self, request_id: str) -> Message | None: ...
    def waited_requests(self, recipient: str) -> list[str]: ...
    def related(self, message_id: str) -> list[Message]: ...
    def dead(self) -> list[Message]: ...
    def retry(self, message_id: str) -> Message: ...
    def purge(self, *, statuses: Sequence[str] = ...) -> int: ...
    def sweep(self, *, retention_s: float = 86400.0) -> SweepResult: ...
    def peek(self, recipient: str, *, limit: int = 10) -> list[Message]: ...
    def pending_count(self, recipient: str) -> int: ...
    def pending_counts(self) -> dict[str, int]: ...
    def status_counts(self, statuses: Sequence[str] = ...) -> dict[str, int]: ...
    def wake_all(self) -> None: ...
    def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        sender: str | None = None,
        limit: int = 100,
    ) -> list[Message]: ...


class AsyncMailboxBackend(Protocol):
    """What ``AsyncMailbox`` offers: the same operations as coroutines."""

    async def aclose(self) -> None: ...
    def check_file(self) -> None:
        """Raise DatabaseReplaced if the store was swapped under the open client."""

    async def check_store(self) -> str | None:
        """A NATS server that lost the team's bucket: made again (empty), and what
        happened returned, to be said once; None while it is the bucket opened (always on
        SQLite, whose file :meth:`check_file` watches)."""

    async def register(
        self,
        name: str,
        description: str = "",
        *,
        pid: int | None = None,
        state: str = "registered",
        meta: dict[str, Any] | None = None,
    ) -> AgentInfo: ...
    async def register_supervisor(self, pid: int, meta: dict[str, Any]) -> AgentInfo: ...
    async def update_agent(
        self,
        name: str,
        *,
        state: str | None = None,
        pid: int | Keep | None = ...,
        meta: dict[str, Any] | None = None,
        heartbeat: bool = True,
    ) -> None: ...
    async def unregister(self, name: str, *, force: bool = False) -> bool: ...
    async def agents(self) -> list[AgentInfo]: ...
    async def agent(self, name: str) -> AgentInfo | None: ...
    async def send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        kind: Any = "notice",
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = ...,
        message_id: str | None = None,
    ) -> Message: ...
    async def send_many(
        self,
        sender: str,
        messages: Sequence[tuple[str, Any]],
        *,
        kind: Any = "notice",
        ttl_s: float | None = None,
        max_attempts: int = ...,
    ) -> list[Message]: ...
    async def request(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = ...,
        wait_s: float | None = None,
        message_id: str | None = None,
    ) -> Message: ...
    async def broadcast(
        self, sender: str, body: Any, *, ttl_s: float | None = None
    ) -> list[Message]: ...
    async def reply(self, request_id: str, sender: str, body: Any) -> Message: ...
    async def fail_request(self, request_id: str, code: str, detail: str = "") -> bool: ...
    async def claim(
        self, recipient: str, *, owner: str, lease_s: float = ..., limit: int = 1
    ) -> list[Message]: ...
    async def ack(self, message_ids: Sequence[str], *, owner: str) -> None: ...
    async def nack(
        self,
        message_id: str,
        *,
        owner: str,
        error: str | None = None,
        delay_s: float = 0.0,
        dead_code: str | None = None,
    ) -> Message: ...
    async def extend(self, message_ids: Sequence[str], *, owner: str, lease_s: float) -> None: ...
    async def release(self, owner: str, message_ids: Sequence[str] | None = None) -> int: ...
    async def wait_for_reply(self, request_id: str, timeout_s: float) -> Message: ...
    async def wait_for_messages(self, recipient: str, timeout_s: float) -> bool: ...
    async def get(self, message_id: str) -> Message: ...
    async def find_reply(self, request_id: str) -> Message | None: ...
    async def waited_requests(self, recipient: str) -> list[str]: ...
    async def related(self, message_id: str) -> list[Message]: ...
    async def dead(self) -> list[Message]: ...
    async def retry(self, message_id: str) -> Message: ...
    async def purge(self, *, statuses: Sequence[str] = ...) -> int: ...
    async def sweep(self, *, retention_s: float = 86400.0) -> SweepResult: ...
    async def peek(self, recipient: str, *, limit: int = 10) -> list[Message]: ...
    async def pending_count(self, recipient: str) -> int: ...
    async def pending_counts(self) -> dict[str, int]:
        """Messages waiting (not responses) per recipient: `ps` per agent, without
        reading the done ones (NATS: through the hints of the open messages)."""

    async def status_counts(self, statuses: Sequence[str] = ...) -> dict[str, int]:
        """Messages per status, responses left out: `top`'s team line. Cheap to call
        again on the same client (NATS keeps a tally it brings up to date)."""

    async def wake_all(self) -> None: ...
    async def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        sender: str | None = None,
        limit: int = 100,
    ) -> list[Message]: ...


DIED_HOLDING: Final = "its supervisor ended with the message in hand"


def _died_holding(m: Message) -> str:
    return f"{DIED_HOLDING} (attempt {m.attempts} of {m.max_attempts})"


async def requeue_counted(
    mailbox: AsyncMailboxBackend,
    owner: str,
    messages: Iterable[Message],
    *,
    error: str = DIED_HOLDING,
    why: Callable[[Message], str] = _died_holding,
    lost: list[str] | None = None,
) -> int:
    """A dead supervisor's claims back to the queue with their attempt counted, as a dying
    session's are: pending again, or dead with ``max_attempts`` once they are used up (a
    message on which the supervisor dies every time ends dead). ``release`` would not count
    it. A claim that changed since it was listed is left as it is. How many went back.

    A request on its last attempt is answered ``turn_failed`` (its asker reads why), as a
    dying session's is (give_back.inflight, review I.4), not left to read the queue's
    ``expired``. ``error``: the detail a message given back keeps; ``why``: what the asker
    of a request on its last attempt reads (a killed supervisor's by default; a dead
    session's, give_back.inflight). ``lost``: gets the ids of the claims not given back
    because they changed or went since they were listed (their lease lost; a message
    gone from the queue, purged or lost with a NATS server's store)."""
    given = 0
    for m in messages:
        if m.status == "leased" and m.lease_owner == owner:
            last = m.kind == "request" and m.attempts >= m.max_attempts
            try:
                if last and await _fail_last_attempt(mailbox, owner, m, why(m)):
                    given += 1
                    continue
                await mailbox.nack(m.id, owner=owner, error=error)
                given += 1
            except (errors.LeaseLost, errors.MessageNotFound):
                # Gone between the check and the answer (on NATS the two are separate
                # reads): nothing to give back. Its MessageNotFound escaped a dying
                # session's cleanup, which then left its claude process unclosed.
                if lost is not None:
                    lost.append(m.id)
    return given


async def _fail_last_attempt(
    mailbox: AsyncMailboxBackend, owner: str, m: Message, why: str
) -> bool:
    """End request ``m``, still ``owner``'s claim, with a turn_failed answer to its asker.
    False: it changed meanwhile, or it was answered already (its session replied, then
    the supervisor died before the ack): then the nack ends it, its reply stands."""
    try:
        now = await mailbox.get(m.id)
    except errors.MessageNotFound:
        return False
    if now.status != "leased" or now.lease_owner != owner:
        return False
    detail = f"'{m.recipient}' could not handle it: {why}"
    return await mailbox.fail_request(m.id, errors.TurnFailed.code, detail)


async def fail_waiting(
    mailbox: AsyncMailboxBackend,
    name: str,
    code: str,
    detail: str,
    log: Any,
    *,
    statuses: tuple[str, ...] = ("pending",),
) -> list[str]:
    """Answer each request waiting for ``name`` (in ``statuses``) with the error ``code``,
    so its askers stop waiting now (notices stay queued); the ids answered. One gone since
    the listing (answered and purged by `queue purge`, or lost with a NATS server's store)
    has nobody waiting on it: said once (``request_gone``), the rest answered (it ended the
    loop, and the requests after it waited out their askers' timeouts)."""
    answered = []
    for status in statuses:
        for m in await mailbox.list(status=status, recipient=name, limit=100_000):
            if m.kind != "request":
                continue
            try:
                if await mailbox.fail_request(m.id, code, detail):
                    answered.append(m.id)
            except errors.MessageNotFound as exc:
                if exc.answered:  # answered, then gone: its asker may have read it
                    answered.append(m.id)
                log.warning(
                    "request_gone",
                    agent=name,
                    request_id=m.id,
                    answered=exc.answered,
                    reason=gone_reason(exc),
                )
    return answered


def gone_reason(exc: errors.MessageNotFound) -> str:
    """What a ``request_gone`` says of a failure answer that met its request gone: not
    answered (gone before the answer), or answered and gone before it was marked dead
    (NATS: the answer is one write, the request's end another; said "not answered",
    it was false of an answer already stored, maybe read)."""
    if exc.answered:
        return (
            f"its failure was answered, then the request went ({exc.how}) before it "
            "was marked dead: an asker that read the answer has it"
        )
    return f"no longer in the queue ({exc.how}): its failure is not answered"
