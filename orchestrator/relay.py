"""The tools every agent gets: an in-process MCP server named ``octy``.

``agents``, ``send``, ``ask``, ``reply``, ``broadcast``. The sender is always the
agent this relay belongs to — stamped here, never read from the model's input.
A write the queue refuses for now (QueueStalled: a NATS leader election, a node's
death, a SQLite file locked) is tried again for up to ``outage.TOOL_RETRY_S`` under
the id drawn for it once, so a try whose answer was lost is not stored twice; only
then does the model read ``queue_unavailable``. Broadcast is not tried again (each of
its messages has its own id; the queue's own retries ride out an election).
Failures come back as tool errors with a stable code the model can read: those the
README's relay section lists (``ask``'s are in its description, prompts.TOOL_SPECS).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from claude_agent_sdk import McpSdkServerConfig, SdkMcpTool, create_sdk_mcp_server, tool

from orchestrator import errors, outage, relay_route
from orchestrator.durations import finite_seconds
from orchestrator.lifecycle import AgentState
from orchestrator.mailbox import SUPERVISOR, USER, AsyncMailboxBackend, Message, new_id
from orchestrator.mailbox.model import derived_id, is_address
from orchestrator.names import AGENT_NAME_RE, clip_description
from orchestrator.outage import Outage
from orchestrator.prompts import DEFAULT_ASK_TIMEOUT_S, SERVER, TOOL_SPECS, text_of
from orchestrator.roster import Roster

log = structlog.get_logger()


@dataclass
class Turn:
    """What the relay needs to know about the delivery being handled right now."""

    messages: list[Message]
    replied: set[str] = field(default_factory=set)  # request ids answered with the reply tool
    asks_in_flight: int = 0  # the turn watchdog does not count time spent waiting on a peer
    asked: Counter[tuple[str, str]] = field(default_factory=Counter)  # (to, text) -> asks made

    @property
    def cause_id(self) -> str | None:
        return self.messages[0].id if self.messages else None


def _ok(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def _fail(code: str, message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": f"error {code}: {message}"}], "is_error": True}


class Relay:
    """The ``octy`` tools for one agent."""

    def __init__(
        self,
        agent: str,
        mailbox: AsyncMailboxBackend,
        roster: Callable[[], Roster],
        *,
        peer_state: Callable[[str], str | None] | None = None,
    ) -> None:
        self.agent = agent
        # The supervisor knows its agents' states in memory; the registry is the fallback
        # (a relay used outside a supervisor) — one query fewer on every ask.
        self.peer_state = peer_state
        self.mailbox = mailbox
        self.roster = roster
        self.turn: Turn | None = None
        self.log = log.bind(agent=agent)
        self._outage = Outage(self.log)  # the queue out of reach: writes are tried again
        # Relay calls a subagent made, announced by the PreToolUse hook just before the call
        # arrives here (the MCP call itself does not say who made it): key -> subagents.
        self._subagent_calls: dict[str, list[str]] = {}

    def note_subagent_call(self, tool: str, tool_input: dict[str, Any], subagent: str) -> None:
        if tool.startswith(f"mcp__{SERVER}__"):
            self._subagent_calls.setdefault(_call_key(tool, tool_input), []).append(subagent)

    def _via(self, tool: str, args: dict[str, Any]) -> dict[str, str]:
        """``{"subagent": name}`` for a call a subagent made, for the log line."""
        waiting = self._subagent_calls.get(_call_key(f"mcp__{SERVER}__{tool}", args))
        if not waiting:
            return {}
        subagent = waiting.pop(0)
        if not waiting:
            del self._subagent_calls[_call_key(f"mcp__{SERVER}__{tool}", args)]
        return {"subagent": subagent}

    # --- checks ---------------------------------------------------------------

    async def _participants(self) -> list[str]:
        """The names a message can go to, as an unknown recipient's error lists them: the
        user and the registry's names but the supervisor's row (a message to it is refused:
        its messages are the control protocol), as the CLI's `send` lists them."""
        names = sorted(a.name for a in await self.mailbox.agents() if a.name != SUPERVISOR)
        return [USER, *names]

    async def _check_allowed(self, to: str) -> None:
        if to != USER and not AGENT_NAME_RE.fullmatch(to):
            # No such name can be registered; a lone surrogate here reached the database's
            # encoder and came back as a raw codec error with no code (review I.5).
            raise errors.RecipientUnknown(_printable(to), await self._participants())
        if to == SUPERVISOR:
            # Its row is registered, so the queue took the message: "sent to supervisor",
            # read by nobody but the control loop (an unknown command), as the CLI refuses.
            raise errors.ReservedRecipient(to, await self._participants())
        spec = self.roster().agents.get(self.agent)
        if spec is not None and not spec.may_message(to):
            known = await self._participants()
            if to not in known:  # the more precise error: no such agent at all
                raise errors.RecipientUnknown(to, known)
            raise errors.NotAllowed(self.agent, to, list(spec.can_message or ()))

    async def _to_a_participant(self, step: Callable[[], Awaitable[Message]]) -> Message:
        """``step()``, whose RecipientUnknown from the queue (the name is not registered)
        names only participants: the queue's list has the supervisor's row too."""
        try:
            return await step()
        except errors.RecipientUnknown as exc:
            known = [n for n in exc.known if n != SUPERVISOR]
            raise errors.RecipientUnknown(exc.recipient, known) from None

    async def _check_alive(self, to: str, request_id: str = "") -> None:
        state = self.peer_state(to) if self.peer_state else None
        if state in (None, AgentState.STOPPED):
            # Stopped here may be running under another supervisor of the same team (a
            # team across machines): the registry, which its holder keeps, says.
            info = await self.mailbox.agent(to)
            state = info.state if info else None
        if state == AgentState.FAILED:
            raise errors.RecipientFailed(
                request_id, f"'{to}' has failed and is not being restarted"
            )
        if state == AgentState.STOPPED:
            # Stopped by the operator (or never started): the ask would wait as long as the
            # model chose (up to years), and the asker's turn with it (found by review).
            raise errors.RecipientStopped(
                request_id,
                f"'{to}' is stopped (not running) and would answer only once someone starts "
                "it; send it a notice instead (it waits in its inbox), or ask another agent",
            )
        if state == AgentState.PAUSED:  # over a budget: refuse now, not after the timeout
            info = await self.mailbox.agent(to)
            budget = info.meta.get("budget") if info else None
            detail = budget.get("paused") if isinstance(budget, dict) else None
            raise errors.BudgetExceeded(request_id, detail or f"'{to}' is paused by a budget")

    # --- tools ----------------------------------------------------------------

    async def agents(self, _args: dict[str, Any]) -> dict[str, Any]:
        roster = self.roster()
        me = roster.agents.get(self.agent)
        registry = {a.name: a for a in await self.mailbox.agents()}
        rows = []
        for name, spec in roster.agents.items():
            info = registry.get(name)
            rows.append(
                {
                    "name": name,
                    "description": clip_description(spec.description),
                    "state": info.state if info else "unknown",
                    "you": name == self.agent,
                    # whether the caller may message this agent (its own can_message)
                    "may_message": me is None or me.may_message(name),
                }
            )
        for name, info in registry.items():  # scripts that joined with `register`
            if name not in roster.agents and name != "supervisor":
                rows.append(
                    {
                        "name": name,
                        "description": clip_description(info.description),
                        "state": info.state,
                    }
                )
        return _ok(json.dumps(rows, ensure_ascii=False))

    async def send(self, args: dict[str, Any]) -> dict[str, Any]:
        to, text = str(args.get("to", "")), str(args.get("message", ""))
        via = self._via("send", args)
        message_id, cause_id = new_id(), self._cause()

        async def step() -> Message:
            await self._check_allowed(to)
            return await self._to_a_participant(
                lambda: self.mailbox.send(
                    self.agent, to, text, cause_id=cause_id, message_id=message_id
                )
            )

        try:
            msg = await self._retry("send", step)
        except errors.QueueError as exc:
            return _fail(exc.code, str(exc))
        self.log.info("sent", to=to, message_id=msg.id, body=text, **via)
        return _ok(f"sent to {to} (message id {msg.id})")

    async def ask(self, args: dict[str, Any]) -> dict[str, Any]:
        to, text = str(args.get("to", "")), str(args.get("message", ""))
        try:  # checked before anything is sent: the peer is spared work nobody waits for
            timeout_s = finite_seconds(args.get("timeout_s") or DEFAULT_ASK_TIMEOUT_S, "timeout_s")
        except errors.InvalidSeconds as exc:
            return _fail(exc.code, str(exc))
        via = self._via("ask", args)
        if to == self.agent:
            return _fail(
                "would_deadlock", "you cannot ask yourself: you would wait on your own answer"
            )
        turn = self.turn
        ids, cause_id = self._ask_ids(to, text), self._cause()
        request_id = next(ids)

        async def step() -> Message:
            await self._check_allowed(to)
            await self._check_alive(to)
            return await self._to_a_participant(
                lambda: self.mailbox.request(
                    self.agent, to, text, cause_id=cause_id, wait_s=timeout_s, message_id=request_id
                )
            )

        while True:
            try:
                request = await self._retry("ask", step)
            except errors.OrchestratorError as exc:
                # The same ask, answered before its turn was cut short: that answer, even
                # if the peer has stopped since (the checks refuse only what would wait).
                if turn is None or not await self._answered(request_id):
                    self.log.warning("ask_refused", to=to, code=exc.code, reason=str(exc))
                    return _fail(exc.code, str(exc))
                break
            if request.status != "dead":
                break
            # Made by an earlier delivery of this turn and ended unanswered by the peer
            # (failed by the supervisor: recipient_stopped by `stop`, turn_failed...; or
            # expired): asked again under the next id, or the replay would read that
            # stale refusal ('b was stopped') on every delivery though the peer runs again.
            request_id = next(ids)
        self.log.info("asked", to=to, request_id=request_id, body=text, **via)
        if turn is not None:
            turn.asks_in_flight += 1
        try:
            response = await self.mailbox.wait_for_reply(request_id, timeout_s)
        except errors.RequestFailed as exc:
            self.log.warning("ask_failed", to=to, request_id=request_id, code=exc.code)
            return _fail(exc.code, str(exc))
        except errors.MessageNotFound as exc:
            # Gone while waited on: lost with a NATS server's store, or ended and purged
            # before this wait read its end. It came out of the tool as a bare "no
            # message with id" (no code, nothing logged).
            self.log.warning(
                "request_gone",
                to=to,
                request_id=request_id,
                reason="no longer in the queue while waited on: its answer cannot come",
            )
            return _fail(
                exc.code,
                f"your question to '{to}' is no longer in the queue (its NATS server lost "
                "its store, or it was removed): no answer can come; ask again if it still "
                "matters",
            )
        finally:
            if turn is not None:
                turn.asks_in_flight -= 1
        answer = text_of(response.body)
        # Logged once the answer is on its way to the CLI: the asker waits for it, not for us.
        log_answered = partial(
            self.log.info, "answered", by=to, request_id=request_id, body=answer, **via
        )
        relay_route.after_result(log_answered)
        return _ok(answer)

    async def reply(self, args: dict[str, Any]) -> dict[str, Any]:
        request_id, text = str(args.get("request_id", "")), str(args.get("message", ""))
        if not is_address(request_id):  # no message has such an id (review I.5)
            return _fail("not_found", str(errors.MessageNotFound(_printable(request_id))))
        tries = 0

        async def step() -> Message:
            nonlocal tries
            tries += 1
            request = await self.mailbox.get(request_id)
            if request.recipient != self.agent:
                raise errors.NotAllowed(self.agent, request.sender, [])
            try:
                return await self.mailbox.reply(request_id, self.agent, text)
            except errors.AlreadyReplied:
                # An earlier try's reply may have been stored with its answer lost: it is
                # this one if it is ours, word for word (a reply has no id to choose).
                found = await self.mailbox.find_reply(request_id) if tries > 1 else None
                if found is None or (found.sender, found.body) != (self.agent, text):
                    raise
                return found

        try:
            msg = await self._retry("reply", step)
        except errors.NotAllowed:
            return _fail("not_allowed", f"request '{request_id}' was not addressed to you")
        except errors.QueueError as exc:
            return _fail(exc.code, str(exc))
        if self.turn is not None:
            self.turn.replied.add(request_id)
        self.log.info(
            "replied", to=msg.recipient, request_id=request_id, message_id=msg.id, body=text
        )
        return _ok(f"reply sent to {msg.recipient}")

    async def broadcast(self, args: dict[str, Any]) -> dict[str, Any]:
        text = str(args.get("message", ""))
        spec = self.roster().agents.get(self.agent)
        skipped: list[str] = []
        try:
            if spec is None or spec.can_message is None:
                sent = await self.mailbox.broadcast(self.agent, text)
            else:
                # can_message limits broadcast as it does send and ask (README): it reached
                # every registered agent before (found by review). Only the names it allows,
                # still one transaction and still framed as a broadcast.
                others = sorted(
                    a.name
                    for a in await self.mailbox.agents()
                    if a.name not in (self.agent, USER, SUPERVISOR)
                )
                allowed = [n for n in others if spec.may_message(n)]
                skipped = [n for n in others if n not in allowed]
                sent = await self.mailbox.send_many(
                    self.agent, [(n, text) for n in allowed], kind="broadcast"
                )
        except errors.QueueError as exc:
            return _fail(exc.code, str(exc))
        names = sorted(m.recipient for m in sent)
        self.log.info("broadcast", to=names, skipped=skipped, body=text)
        result = f"broadcast to {len(names)} agents: {', '.join(names) or '(nobody)'}"
        if skipped:
            result += f"; not to {', '.join(skipped)} (not in your can_message)"
        return _ok(result)

    async def _retry(self, doing: str, step: Callable[[], Awaitable[Message]]) -> Message:
        """``step()``, tried again through a queue outage for up to TOOL_RETRY_S."""
        return await self._outage.retry(doing, step, within_s=outage.TOOL_RETRY_S)

    def _cause(self) -> str | None:
        return self.turn.cause_id if self.turn else None

    async def _answered(self, request_id: str) -> bool:
        """Whether the request stored under ``request_id`` has its answer already."""
        try:
            return await self.mailbox.find_reply(request_id) is not None
        except errors.QueueError:
            return False

    def _ask_ids(self, to: str, text: str) -> Iterator[str]:
        """The request ids this ask tries, in order: outside a turn one drawn afresh; in a
        turn, ids derived from what makes it the same ask when the turn is delivered again
        (the asker's session restarted mid-ask): the turn's cause, the asker, the peer, the
        question and which such ask of the turn it is. The replayed ask then finds the
        request it made before (``request(message_id=...)`` returns it) and waits on it,
        or reads its answer, instead of making the peer do the work twice (review I.3);
        the next ids are for an earlier try that ended unanswered (see :meth:`ask`)."""
        turn = self.turn
        if turn is None or turn.cause_id is None:
            yield new_id()
            return
        turn.asked[(to, text)] += 1
        key = "\0".join((turn.cause_id, self.agent, to, text, str(turn.asked[(to, text)])))
        for again in range(_MAX_ASKED_AGAIN):
            yield derived_id(f"{key}\0{again}" if again else key, near=turn.cause_id)
        while True:  # as many unanswered tries as replays of one turn: fresh ids
            yield new_id()

    # --- the MCP server -----------------------------------------------------------

    def tools(self) -> list[SdkMcpTool[Any]]:
        """The octy tools, as the model sees them (orchestrator.prompts.TOOL_SPECS)."""
        return [
            tool(name, description, schema)(getattr(self, name))
            for name, (description, schema) in TOOL_SPECS.items()
        ]

    def server(self) -> McpSdkServerConfig:
        return create_sdk_mcp_server(SERVER, tools=self.tools())


_MAX_ASKED_AGAIN = 64  # a replayed turn's ask made again after that many failed ones: fresh


def _printable(text: str) -> str:
    """``text`` for an error message, a lone surrogate escaped (it cannot be encoded)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _call_key(tool: str, args: dict[str, Any]) -> str:
    return tool + json.dumps(args, sort_keys=True, default=str)
