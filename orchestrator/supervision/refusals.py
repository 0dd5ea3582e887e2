"""A write the database refuses, handled the same way wherever the supervisor writes.

Two failures, two answers. The database file left its path (deleted, or another file
moved over it: :class:`~orchestrator.errors.DatabaseReplaced`): the team stops at once,
writing nothing more, since writing on would split it in two (the supervisor's
``abandon``). Any other queue error (another process holding the write lock past the
busy timeout, a full disk): logged, never raised into the agent or the chore that
wrote; the state in memory is what counts, and the caller tries again later or leaves
the rest to a TTL (issue 16, A.2).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from typing import Any, Literal, Protocol

import structlog

from orchestrator import errors

log = structlog.get_logger()


class Abandons(Protocol):
    """What handling a refusal needs of the supervisor."""

    def abandon(self, exc: errors.DatabaseReplaced) -> None: ...


class Outcome(enum.Enum):
    WRITTEN = "written"
    REFUSED = "refused"  # logged (unless the caller said it had been already)
    ABANDONED = "abandoned"  # the database was replaced: the team stops


async def attempt(
    sup: Abandons,
    write: Awaitable[object],
    event: str | None,
    *,
    level: Literal["warning", "error"] = "warning",
    **context: Any,
) -> Outcome:
    """Await ``write``; a refusal is logged as ``event`` (with ``context`` and the error;
    None: not logged, the caller reported it before), a replaced database abandons the
    team. Nothing but a bug is raised."""
    try:
        await write
    except errors.DatabaseReplaced as exc:
        sup.abandon(exc)
        return Outcome.ABANDONED
    except errors.QueueError as exc:
        if event is not None:
            (log.error if level == "error" else log.warning)(event, **context, error=str(exc))
        return Outcome.REFUSED
    return Outcome.WRITTEN


__all__ = ["Abandons", "Outcome", "attempt"]
