"""The synchronous mailbox: every operation, one class."""

from __future__ import annotations

from types import TracebackType

from orchestrator.mailbox.admin import AdminOps
from orchestrator.mailbox.registry import RegistryOps
from orchestrator.mailbox.sending import SendOps
from orchestrator.mailbox.waiting import WaitOps


class Mailbox(RegistryOps, SendOps, WaitOps, AdminOps):
    """The SQLite message queue, synchronous.

    ``Mailbox(path)`` creates the file (0600, folder 0700) if needed, switches
    it to WAL, and migrates the schema. Every public method is one short
    transaction; waits block the calling thread without busy-polling.

    Thread safety: calls on one instance are serialised by a lock, so sharing
    an instance between threads is safe but gives no parallelism; open one
    per thread for that (SQLite connections are cheap). Never share one
    across ``fork()``.

    ``clock`` (default ``time.time``) stamps every timestamp and decides
    expiry, so tests can move time; waits still sleep in real time.
    ``synchronous="FULL"`` trades ~10x write throughput for surviving power
    loss (see queue/README.md). ``busy_timeout_ms`` (default 10 s) is how long
    a write waits for another connection's write lock before DatabaseError
    ("locked"); 0 refuses at once (the async client's loop connection does).

    ``readonly=True`` opens an existing queue for reading only (``mode=ro``: no
    write lock, no migration, nothing created): for verbs that only look, on a
    read-only copy too; a write then raises DatabaseError. Every write checks
    that the file under the path is still the one opened (DatabaseReplaced).
    Files are refused in a folder others can write, or through a link (safefs).
    """

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Mailbox({str(self.path)!r})"
