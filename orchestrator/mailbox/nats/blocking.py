"""The NATS mailbox behind the synchronous interface (``MailboxBackend``) the CLI
verbs use: each call runs on an event loop in a helper thread (anyio's blocking
portal), so the verbs stay plain functions whichever backend the team uses."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from orchestrator.mailbox.nats.connect import NatsConfig
from orchestrator.mailbox.nats.mailbox import NatsMailbox


class BlockingNatsMailbox:
    """``with BlockingNatsMailbox(config) as mb: mb.send(...)``: every coroutine method
    of :class:`NatsMailbox` as a blocking call."""

    def __init__(self, config: NatsConfig) -> None:
        # No file: `path` names the bucket, for messages that show where the queue is.
        self.path = Path(f"{config.display}#{config.namespace}")
        self._cm = start_blocking_portal()
        self._portal: BlockingPortal = self._cm.__enter__()
        try:
            self._mb = self._portal.call(NatsMailbox(config).open)
        except BaseException as exc:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._mb, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            fn: Callable[[], Any] = functools.partial(attr, *args, **kwargs)
            return self._portal.call(fn)

        return call

    def close(self) -> None:
        try:
            self._portal.call(self._mb.aclose)
        finally:
            self._cm.__exit__(None, None, None)

    def __enter__(self) -> BlockingNatsMailbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
