"""The async mailbox: the same operations, never blocking the event loop.

Short calls run right on the event loop, on a connection of their own opened
with ``busy_timeout = 0``: a WAL read never waits, and a write only waits
when another connection holds the write lock — then SQLite refuses at once
(SQLITE_BUSY, before anything is written: every call is one transaction, or
reads before one) and the call is run again in a worker thread on the
patient connection (the normal busy timeout), one at a time per client.
So nothing waits for a lock on the loop, and the common case costs no
thread hop and queues behind nothing (the supervisor's ask->reply path has
about fifteen such calls; through one worker thread, each waited behind the
idle agents' checks and the other agents' bookkeeping).
Calls that can be long (``list``, ``sweep``, ``purge``, ``related``,
``dead``) always go to the thread.

Waits sleep on the change feed inside the event loop, so they hold no thread
and a cancelled wait returns at once; its wait-for edge is cleared on the
way out (shielded from the cancellation).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import anyio.lowlevel

from orchestrator import errors
from orchestrator.mailbox.model import (
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    KEEP,
    AgentInfo,
    Keep,
    Message,
    SweepResult,
)
from orchestrator.mailbox.sending import SendKind
from orchestrator.mailbox.store import Mailbox
from orchestrator.mailbox.waiting import inbox_answer
from orchestrator.mailbox.wakeup import bucket

T = TypeVar("T")
Inboxes = Iterable[str] | Callable[[Any], Iterable[str]] | None
"""Whose waiters a write wakes: recipient names, a function of the call's result, None: all."""
ALL: Inboxes = None


class AsyncMailbox:
    """``async with AsyncMailbox(path) as mailbox: ...`` — opens in a worker thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self._args = (path, create, clock, synchronous)
        self._mb: Mailbox | None = None  # the patient one: worker thread, normal busy timeout
        self._inline: Mailbox | None = None  # busy_timeout 0, used on the loop thread only
        self._limiter = anyio.CapacityLimiter(1)
        self._open_lock = threading.Lock()  # `sync` may open it from another thread
        self._closed = False

    def _open(self) -> Mailbox:
        with self._open_lock:
            if self._closed:
                raise errors.DatabaseError(str(self._args[0]), "this mailbox is closed")
            if self._mb is None:
                path, create, clock, synchronous = self._args
                self._mb = Mailbox(path, create=create, clock=clock, synchronous=synchronous)
                try:
                    # The loop's connection refuses a held lock at once, never sleeps on it.
                    inline: Mailbox | None = Mailbox(
                        self._mb.path,
                        create=False,
                        clock=clock,
                        synchronous=synchronous,
                        busy_timeout_ms=0,
                    )
                except errors.DatabaseError:
                    inline = None  # every call then goes through the worker thread
                self._inline = inline
            return self._mb

    @property
    def sync(self) -> Mailbox:
        """The underlying synchronous Mailbox, for tools written sync. Thread-safe
        (calls are serialised); do not call its waits from the event loop thread."""
        return self._open()

    async def open(self) -> AsyncMailbox:
        """Open (and migrate) the database now, so errors show up here."""
        await anyio.to_thread.run_sync(self._open, limiter=self._limiter)
        return self

    async def aclose(self) -> None:
        # The inline connection is only ever used on the loop thread: close it here,
        # where no call can be running on it.
        self._closed = True
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close, limiter=self._limiter)

    def _close(self) -> None:
        with self._open_lock:
            self._closed = True
            if self._mb is not None:
                self._mb.close()

    async def __aenter__(self) -> AsyncMailbox:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def path(self) -> Path:
        """The database file (absolute)."""
        return Path(self._args[0]).absolute()

    def check_file(self) -> None:
        """Raise DatabaseReplaced if the file under :attr:`path` is no longer the one
        opened (one stat(): fine on the event loop). Every write checks it too."""
        for mb in (self._mb, self._inline):
            if mb is not None and not self._closed:
                mb.check_file()

    async def check_store(self) -> str | None:
        """Nothing to make again: a file replaced under us is :meth:`check_file`'s."""
        return None

    async def _opened(self) -> Mailbox:
        if self._mb is not None and not self._closed:
            return self._mb
        return await anyio.to_thread.run_sync(self._open, limiter=self._limiter)

    async def _call(
        self, fn: Callable[[Mailbox], T], held: list[set[str] | None] | None = None
    ) -> T:
        """Run ``fn`` on the loop's own connection; if SQLite refuses it a lock, or the
        mailbox is not open yet, in the worker thread. ``fn`` must be one transaction
        (or reads, then one transaction), so a refused attempt has written nothing.
        With ``held``, the bells its commit would ring on the loop's connection are put
        there for the caller to ring (the worker thread's connection rings them itself)."""
        inline = self._inline
        if inline is not None and not self._closed:
            try:
                if held is None:
                    return fn(inline)
                with inline.holding_bells(held):
                    return fn(inline)
            except (errors.DatabaseError, sqlite3.OperationalError) as exc:
                if not _locked(exc):
                    raise
        return await self._threaded(fn)

    async def _posted(self, fn: Callable[[Mailbox], T], inboxes: Inboxes = ALL) -> T:
        """A call that can end someone's wait (new mail, an answer): after it, this
        process's waiters are woken right away and run before the caller goes on:
        the waiters for ``inboxes`` (recipient names; None: everyone's) and the
        waiters for any change (replies).

        Other processes wake on the commit's bell; ours would too, but through the
        feed's reader thread (a thread hop, and on a busy machine a wait for a CPU).
        The two yields let a woken waiter (its wake-up callback, then its task) run
        its check before the caller's own follow-up work: an ask's tool result is
        written before the answering agent's ack and bookkeeping.

        When it woke a waiter here, the bell rings after those yields, not at the
        commit (issue 14.4, measured): our own feed's reader thread hears every bell
        this process rings, and woken mid-way it took the GIL from the waiter at each
        of its system calls (its query, its log lines), 0.1-4 ms per answer on two
        busy cores. Other processes then hear the bell that much later: the time our
        waiters take to reach their next wait (a few hundred microseconds). A write
        nobody here waits for rings at once."""
        held: list[set[str] | None] = []
        try:
            result = await self._call(fn, held)
            inline = self._inline
            if inline is not None and not self._closed:
                names = inboxes(result) if callable(inboxes) else inboxes
                woke = inline.feed.notify(None if names is None else {bucket(n) for n in names})
                if not woke:
                    self._ring_held(held)
                    held.clear()
                # Not cancellation points: what was written must reach the caller.
                await anyio.lowlevel.cancel_shielded_checkpoint()
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return result
        finally:
            if held:  # rung whatever happened after the commit: other processes wait on it
                self._ring_held(held)

    def _ring_held(self, held: list[set[str] | None]) -> None:
        inline = self._inline
        if inline is not None:
            inline.ring_held(held)
        # Closed in between (aclose): the other processes' WAL watch sees the commit.

    async def _threaded(self, fn: Callable[[Mailbox], T]) -> T:
        def run() -> T:
            return fn(self._open())

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    # --- registry -----------------------------------------------------------

    async def register(
        self,
        name: str,
        description: str = "",
        *,
        pid: int | None = None,
        state: str = "registered",
        meta: dict[str, Any] | None = None,
    ) -> AgentInfo:
        return await self._call(
            lambda m: m.register(name, description, pid=pid, state=state, meta=meta)
        )

    async def update_agent(
        self,
        name: str,
        *,
        state: str | None = None,
        pid: int | Keep | None = KEEP,
        meta: dict[str, Any] | None = None,
        heartbeat: bool = True,
    ) -> None:
        await self._call(
            lambda m: m.update_agent(name, state=state, pid=pid, meta=meta, heartbeat=heartbeat)
        )

    async def register_supervisor(self, pid: int, meta: dict[str, Any]) -> AgentInfo:
        return await self._call(lambda m: m.register_supervisor(pid, meta))

    async def unregister(self, name: str, *, force: bool = False) -> bool:
        return await self._call(lambda m: m.unregister(name, force=force))

    async def agents(self) -> list[AgentInfo]:
        return await self._call(lambda m: m.agents())

    async def agent(self, name: str) -> AgentInfo | None:
        return await self._call(lambda m: m.agent(name))

    # --- sending ------------------------------------------------------------

    async def send(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        kind: SendKind = "notice",
        correlation_id: str | None = None,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        message_id: str | None = None,
    ) -> Message:
        return await self._posted(
            lambda m: m.send(
                sender,
                recipient,
                body,
                kind=kind,
                correlation_id=correlation_id,
                cause_id=cause_id,
                ttl_s=ttl_s,
                max_attempts=max_attempts,
                message_id=message_id,
            ),
            [recipient],
        )

    async def send_many(
        self,
        sender: str,
        messages: Sequence[tuple[str, Any]],
        *,
        kind: SendKind = "notice",
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[Message]:
        return await self._posted(
            lambda m: m.send_many(
                sender, messages, kind=kind, ttl_s=ttl_s, max_attempts=max_attempts
            ),
            [recipient for recipient, _ in messages],
        )

    async def request(
        self,
        sender: str,
        recipient: str,
        body: Any,
        *,
        cause_id: str | None = None,
        ttl_s: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        wait_s: float | None = None,
        message_id: str | None = None,
    ) -> Message:
        return await self._posted(
            lambda m: m.request(
                sender,
                recipient,
                body,
                cause_id=cause_id,
                ttl_s=ttl_s,
                max_attempts=max_attempts,
                wait_s=wait_s,
                message_id=message_id,
            ),
            [recipient],
        )

    async def broadcast(
        self, sender: str, body: Any, *, ttl_s: float | None = None
    ) -> list[Message]:
        return await self._posted(lambda m: m.broadcast(sender, body, ttl_s=ttl_s))

    async def reply(self, request_id: str, sender: str, body: Any) -> Message:
        # A response is nobody's mail: only the waiters for any change (the asker) wake.
        return await self._posted(lambda m: m.reply(request_id, sender, body), [])

    async def fail_request(self, request_id: str, code: str, detail: str = "") -> bool:
        return await self._posted(lambda m: m.fail_request(request_id, code, detail), [])

    # --- consuming ----------------------------------------------------------

    async def claim(
        self, recipient: str, *, owner: str, lease_s: float = DEFAULT_LEASE_S, limit: int = 1
    ) -> list[Message]:
        return await self._call(
            lambda m: m.claim(recipient, owner=owner, lease_s=lease_s, limit=limit)
        )

    async def ack(self, message_ids: Sequence[str], *, owner: str) -> None:
        await self._call(lambda m: m.ack(message_ids, owner=owner))

    async def nack(
        self,
        message_id: str,
        *,
        owner: str,
        error: str | None = None,
        delay_s: float = 0.0,
        dead_code: str | None = None,
    ) -> Message:
        return await self._posted(
            lambda m: m.nack(
                message_id, owner=owner, error=error, delay_s=delay_s, dead_code=dead_code
            ),
            lambda nacked: [nacked.recipient],
        )

    async def extend(self, message_ids: Sequence[str], *, owner: str, lease_s: float) -> None:
        await self._call(lambda m: m.extend(message_ids, owner=owner, lease_s=lease_s))

    async def release(self, owner: str, message_ids: Sequence[str] | None = None) -> int:
        return await self._posted(lambda m: m.release(owner, message_ids))

    # --- waiting ------------------------------------------------------------

    async def wait_for_reply(self, request_id: str, timeout_s: float) -> Message:
        """As :meth:`Mailbox.wait_for_reply`; cancellable, holds no thread while idle."""
        deadline = time.monotonic() + timeout_s
        try:
            mb = await self._opened()
            with mb.feed.watching() as waiter:
                reply = await waiter.until_async(
                    lambda: self._call(lambda m: m.poll_reply(request_id)), deadline
                )
            if reply is None:
                raise errors.RequestTimeout(request_id, timeout_s)
            return reply
        finally:
            if not self._closed:
                with anyio.CancelScope(shield=True):
                    await self._call(lambda m: m.clear_wait(request_id))

    async def wait_for_messages(self, recipient: str, timeout_s: float) -> bool:
        """As :meth:`Mailbox.wait_for_messages`; cancellable, holds no thread while idle.

        Each check after a wake-up is one indexed read on the loop's own connection
        (a WAL read meets no lock but during recovery; then it goes to the thread)."""
        deadline = time.monotonic() + timeout_s
        mb = await self._opened()
        with mb.feed.watching(recipient) as waiter:  # woken by its own inbox's bell only
            return await waiter.until_async(lambda: self._ready(recipient), deadline) is not None

    async def _ready(self, recipient: str) -> tuple[bool | None, float]:
        return inbox_answer(await self._call(lambda m: m.poll_inbox(recipient)))

    # --- admin --------------------------------------------------------------

    async def get(self, message_id: str) -> Message:
        return await self._call(lambda m: m.get(message_id))

    async def find_reply(self, request_id: str) -> Message | None:
        return await self._call(lambda m: m.find_reply(request_id))

    async def waited_requests(self, recipient: str) -> list[str]:
        return await self._call(lambda m: m.waited_requests(recipient))

    async def related(self, message_id: str) -> list[Message]:
        return await self._threaded(lambda m: m.related(message_id))

    async def dead(self) -> list[Message]:
        return await self._threaded(lambda m: m.dead())

    async def retry(self, message_id: str) -> Message:
        return await self._posted(lambda m: m.retry(message_id), lambda m: [m.recipient])

    async def purge(self, *, statuses: Sequence[str] = ("done", "dead")) -> int:
        return await self._threaded(lambda m: m.purge(statuses=statuses))

    async def sweep(self, *, retention_s: float = 86400.0) -> SweepResult:
        return await self._threaded(lambda m: m.sweep(retention_s=retention_s))

    async def peek(self, recipient: str, *, limit: int = 10) -> list[Message]:
        return await self._call(lambda m: m.peek(recipient, limit=limit))

    async def pending_count(self, recipient: str) -> int:
        return await self._call(lambda m: m.pending_count(recipient))

    async def wake_all(self) -> None:
        await self._call(lambda m: m.wake_all())

    async def pending_counts(self) -> dict[str, int]:
        return await self._call(lambda m: m.pending_counts())

    async def status_counts(
        self, statuses: Sequence[str] = ("pending", "leased", "dead")
    ) -> dict[str, int]:
        return await self._call(lambda m: m.status_counts(statuses))

    async def list(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        sender: str | None = None,
        limit: int = 100,
    ) -> list[Message]:
        # Last in the class: its name would shadow the builtin in later annotations.
        return await self._threaded(
            lambda m: m.list(status=status, recipient=recipient, sender=sender, limit=limit)
        )


def _locked(exc: BaseException) -> bool:
    """SQLite refused a lock (SQLITE_BUSY/LOCKED): nothing was written, try patiently."""
    cause = exc if isinstance(exc, sqlite3.OperationalError) else exc.__cause__
    if isinstance(cause, sqlite3.OperationalError):
        code = getattr(cause, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        return "locked" in str(cause)
    return False
