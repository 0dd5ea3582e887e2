"""What becomes of the messages a turn took when the turn does not end well.

A failed turn's messages are retried later, delivered alone, or given up on (a request's
asker is answered with the reason); a session that dies mid-turn hands its messages back
counting the attempt, a stop hands them back without. Nothing is lost; nothing is paid
for twice when it cannot help; one bad message does not take the others with it.
"""

from __future__ import annotations

from typing import Any

from orchestrator import errors
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.mailbox.backend import gone_reason, requeue_counted
from orchestrator.model_errors import Failure
from orchestrator.outage import Outage

RETRY_DELAY_S = 5.0  # before a message whose turn failed is delivered again
UNAVAILABLE_DELAY_S = 10.0  # ... when the model could not be reached (doubles per attempt)
MAX_ERROR_CHARS = 1000  # of the reason kept on a nacked message


class GiveBack:
    """One runner's give-back: its agent's name, its lease owner and its log."""

    def __init__(
        self,
        mailbox: AsyncMailboxBackend,
        name: str,
        owner: str,
        log: Any,
        outage: Outage,
    ) -> None:
        self.mailbox = mailbox
        self.name = name
        self.owner = owner
        self.log = log
        self.outage = outage  # the runner's: one warning per outage, whichever step met it

    async def failed_turn(self, batch: list[Message], failure: Failure) -> None:
        """What a failed turn's messages become."""
        for m in batch:
            where = f"{failure.kind}: {failure.reason}"
            if failure.kind == "unavailable":
                if m.kind == "request":  # its asker hears why now; `queue retry` resends it
                    detail = f"'{self.name}' cannot reach its model: {failure.reason}"
                    await self._fail_request(m, errors.ModelUnavailable.code, detail)
                    continue
                delay = UNAVAILABLE_DELAY_S * 2 ** max(m.attempts - 1, 0)
                await self.nack(m, where, delay)
            elif len(batch) > 1:
                # Whose fault was it? Each is delivered alone next (batching.batch_of).
                await self.nack(m, f"batch failed: {where}", 0.0)
            elif failure.kind == "deterministic" or m.attempts >= m.max_attempts:
                await self._fail_for_good(m, failure)
            else:
                await self.nack(m, where, RETRY_DELAY_S)

    async def _fail_for_good(self, m: Message, failure: Failure) -> None:
        code = errors.TurnFailed.code
        detail = f"'{self.name}' could not handle it: {failure.reason}"
        if failure.kind != "deterministic":
            detail += f" (attempt {m.attempts} of {m.max_attempts})"
        self.log.warning("gave_up", message_id=m.id, code=code, reason=failure.reason)
        if m.kind == "request":
            await self._fail_request(m, code, detail)
        else:
            await self.nack(m, detail, 0.0, dead_code=code)

    async def _fail_request(self, m: Message, code: str, detail: str) -> None:
        """Answer the asker with why (tried until the queue takes it; written only once).
        A request gone from the queue meanwhile (lost with a NATS server's store, or
        purged) has nobody to answer: said, as a reply dropped is (inbox.answer), not
        raised into the session, which it ended (a restart of the agent)."""
        try:
            await self.outage.retry(
                "fail_request", lambda: self.mailbox.fail_request(m.id, code, detail)
            )
        except errors.MessageNotFound as exc:
            self.log.warning(
                "request_gone", request_id=m.id, answered=exc.answered, reason=gone_reason(exc)
            )

    async def nack(
        self, m: Message, error: str, delay_s: float, dead_code: str | None = None
    ) -> None:
        """Tried until the queue takes it (the session is not ended for an outage). A nack
        whose answer was lost finds its lease gone when tried again: LeaseLost, logged."""
        try:
            await self.outage.retry(
                "nack",
                lambda: self.mailbox.nack(
                    m.id,
                    owner=self.owner,
                    error=error[:MAX_ERROR_CHARS],
                    delay_s=delay_s,
                    dead_code=dead_code,
                ),
            )
        except errors.LeaseLost as exc:
            self.log.warning("lease_lost", message_id=exc.message_id)

    async def inflight(self, messages: list[Message], *, failed: bool) -> None:
        """A dead session counts an attempt (a poison message ends dead); a stop does not."""
        if not messages:
            return
        ids = [m.id for m in messages]
        lost: list[str] = []
        try:
            if failed:
                for m in messages:
                    if m.kind == "request" and m.attempts >= m.max_attempts:
                        # Its last attempt: the asker reads turn_failed, as for a turn that
                        # kept failing, not the queue's `expired` (review I.4).
                        self.log.warning("gave_up", message_id=m.id, reason=_died_on(m))
                await requeue_counted(
                    self.mailbox,
                    self.owner,
                    messages,
                    error="session_died",
                    why=_died_on,
                    lost=lost,
                )
            else:
                await self.mailbox.release(self.owner)
        except errors.QueueStalled as exc:
            # The session is over either way: not waited for (a stop would hang on it).
            # Nothing is lost: the leases run out and the messages are delivered again.
            self.log.warning("requeue_failed", messages=ids, error=str(exc))
            return
        for message_id in lost:  # moved or gone since the claim: not ours to give back
            self.log.warning("lease_lost", message_id=message_id)
        if lost:
            ids = [i for i in ids if i not in lost]
        if ids:
            self.log.info("requeued", messages=ids, counted_attempt=failed)


def _died_on(m: Message) -> str:
    return f"its session died on it {m.attempts} times"
