"""A NATS server lost mid-operation: retried while it may come back, then one typed error.

The client reconnects by itself (to the same server after a restart, to another node
of a cluster); meanwhile a request times out, finds no responders, or hears 503 from
a stream electing a new leader. While a replicated stream has no leader nobody
listens on its subjects, so a write (a publish) hears no responders, which nats-py
raises as NoStreamResponseError: 2-7 s after the leader's node was SIGKILLed on a
loopback cluster, longer under load. Each key-value primitive retries those for up to
:data:`RETRY_S` (every primitive is safe to repeat: reads, purges and puts are
idempotent, a compare-and-set re-reads first, a create checks whether the value found
is its own). What still fails, and any other nats-py error that escapes a public
method of the mailbox, becomes :class:`errors.QueueUnavailable` saying what was being
done: callers (supervisor chores, relay tools, CLI verbs) already handle QueueError.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, ParamSpec, TypeVar

import nats.errors
import nats.js.errors

from orchestrator import errors
from orchestrator.mailbox.nats.connect import is_stream_missing

RETRY_S: Final = 15.0
"""How long a primitive keeps trying through a reconnect or a leader election."""

TRANSIENT: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,  # a publish to a stream electing its leader
)

P = ParamSpec("P")
T = TypeVar("T")


async def retrying(op: Callable[[], Awaitable[T]], *, budget_s: float | None = None) -> T:
    """``await op()``, again after a transient failure until ``budget_s`` (default
    :data:`RETRY_S`) has passed."""
    deadline = time.monotonic() + (RETRY_S if budget_s is None else budget_s)
    pause = 0.05
    while True:
        try:
            return await op()
        except TRANSIENT:
            if time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


def unavailable(servers: str, doing: str, exc: BaseException) -> errors.QueueUnavailable:
    detail = str(exc) or type(exc).__name__
    return errors.QueueUnavailable(
        servers,
        f"the NATS server was lost during {doing} ({detail})",
        "check that the server (or a majority of the cluster) is up; the client "
        "reconnects by itself, and nothing written before this error is lost",
    )


def typed(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A public coroutine method whose nats-py errors become QueueUnavailable; the
    server's "stream not found" for the team's bucket, StoreLost: said as the outage
    it is not, it read "the NATS server was lost ... nothing written before this error
    is lost", false of a store that is gone."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except nats.errors.Error as exc:
            config = getattr(args[0], "config", None)
            servers = getattr(config, "display", "NATS")
            if is_stream_missing(exc):
                bucket = str(getattr(config, "namespace", "?"))
                raise errors.StoreLost(servers, bucket, method.__name__) from exc
            raise unavailable(servers, method.__name__, exc) from exc

    return call


def type_public_methods(cls: type) -> None:
    """Wrap every public coroutine method ``cls`` defines (not inherited ones: their own
    class wraps them) with :func:`typed`."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(value):
            setattr(cls, name, typed(value))
