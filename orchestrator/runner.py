"""One agent's claude session: connect, serve its inbox turn by turn, stop.

A runner lives as long as one claude process. The supervisor
(:mod:`orchestrator.supervisor`) creates a new runner for each (re)start and
decides what a :class:`SessionEnd` means. Delivery guarantees kept by the session:
a message is acked only after its reply is committed; a session that dies
nacks what it held (an attempt counted), a stop releases it (not counted);
a redelivered request that already has a reply is not answered twice.

The runner holds the session's shape (connect or resume, the serve loop, the
stop's grace and interrupt); its parts have a module each: :mod:`~orchestrator.connect`
(the CLI process up and down), :mod:`~orchestrator.inbox` (claims, replies, acks),
:mod:`~orchestrator.turn_stream` and :mod:`~orchestrator.turn_reader` (what the CLI
says, by turn), :mod:`~orchestrator.turn_end` (what a turn's end means for its
messages), :mod:`~orchestrator.spend` (costs and the budget watch).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    ToolPermissionContext,
)

from orchestrator import errors, prompts, relay_route, workspaces
from orchestrator.connect import close, connect_within, is_group_leader
from orchestrator.context import ContextKeeper, SessionOver
from orchestrator.give_back import GiveBack
from orchestrator.inbox import Inbox
from orchestrator.lifecycle import EndReason, OnEvent, RunnerEvent, SessionEnd
from orchestrator.mailbox import AsyncMailboxBackend, Message
from orchestrator.outage import Outage
from orchestrator.policy import for_agent
from orchestrator.prompts import SERVER, frame, text_of
from orchestrator.relay import Relay, Turn
from orchestrator.roster import AgentSpec, Roster
from orchestrator.session_options import (
    build_options,
    cli_pid_file,
    discard_prompt_file,
    read_cli_pid,
)
from orchestrator.spend import BudgetGate, Spend
from orchestrator.stopping import Stopping
from orchestrator.turn_end import ResumePoint, TurnEnd
from orchestrator.turn_reader import TurnReader
from orchestrator.turn_stream import (
    SessionDied,
    TurnSorter,
    TurnTimeout,
    drain,
    next_item,
    pump,
)
from orchestrator.write_hold import Hold

log = structlog.get_logger()


class AgentRunner:
    """Holds one ``ClaudeSDKClient`` for one agent until the session ends."""

    def __init__(
        self,
        name: str,
        mailbox: AsyncMailboxBackend,
        roster: Callable[[], Roster],
        *,
        owner: str,
        cli_path: str | None,
        on_event: OnEvent,
        session_id: str | None = None,
        peer_state: Callable[[str], str | None] | None = None,
        totals: Mapping[str, Any] | None = None,
        resume_at: str | None = None,
        hold: Callable[[str], Awaitable[None]] | None = None,
        budgets: BudgetGate | None = None,
        write_hold: Hold | None = None,
        client: Callable[[ClaudeAgentOptions], ClaudeSDKClient] = ClaudeSDKClient,
    ) -> None:
        self.name = name
        self.mailbox = mailbox
        self.roster = roster
        self.owner = owner  # lease owner: unique per session
        self.cli_path = cli_path
        # the supervisor's hook (lifecycle.RunnerEvent); the context keeper's "context" and
        # the approval wait's "blocked"/"unblocked" go through it too
        self.on_event = on_event
        self.relay = Relay(name, mailbox, roster, peer_state=peer_state)
        # owns, approvals; the team's write hold (a runner alone holds with its own)
        self.policy = for_agent(name, mailbox, roster, self.relay, on_event, hold=write_hold)
        self.pid: int | None = None
        self.log = log.bind(agent=name)
        self.spend = Spend(
            name, roster, on_event, self.log, session_id=session_id, totals=totals, budgets=budgets
        )
        # The queue out of reach (a NATS outage): each step is tried again, once warned.
        self._outage = Outage(self.log)
        self._giving = GiveBack(mailbox, name, owner, self.log, self._outage)  # failed turns
        self._stopping = Stopping(self.log)
        self._stop = self._stopping.requested  # set: nothing more is claimed or connected
        self.inbox = Inbox(mailbox, name, owner, self.log, self._outage, stop=self._stop, hold=hold)
        self._own_group = False  # the CLI leads its own process group (see session_options)
        self._cli_env: dict[str, str] = dict(os.environ)  # what the CLI sees (its endpoint)
        self._resume = ResumePoint(resume_at)  # where a rewind goes back to
        self._turns = TurnSorter()  # ours or foreign: what the CLI says, by turn
        # The requests of a turn cut before its result and not charged (a forced stop
        # charges them as the session ends, once its CLI is killed).
        self._cut: dict[str, tuple[str, dict[str, Any]]] = {}
        # The same for a compaction in progress (its summary request, estimated from the
        # context in use): a forced stop charges it as the session ends.
        self._compacting: list[tuple[str, dict[str, Any]]] = []
        self.context = ContextKeeper(name, lambda: self.spec, on_event)
        self._ends = TurnEnd(
            spend=self.spend,
            inbox=self.inbox,
            giving=self._giving,
            context=self.context,
            resume=self._resume,
            on_event=on_event,
            log=self.log,
        )
        self._new_client = client  # the SDK's; tests/team/test_runner_unit.py passes a double

    @property
    def spec(self) -> AgentSpec:
        return self.roster().agents[self.name]

    @property
    def session_id(self) -> str | None:
        """The session to resume: the last result's (the spend's baseline is that session's)."""
        return self.spend.session.session_id

    # --- control from the supervisor ------------------------------------------------

    def request_stop(self, grace_s: float) -> None:
        """Stop claiming; let a running turn finish within ``grace_s``, then interrupt it.
        A session still connecting is ended at once (see :func:`connect.connect_within`)."""
        self._stopping.request(grace_s)
        self.inbox.wake()

    def force_stop(self) -> None:
        self._stopping.force()

    # --- the session ---------------------------------------------------------------------

    async def run(self) -> SessionEnd:
        while True:
            client = await self._connect()
            if isinstance(client, SessionEnd):
                return client
            await self.on_event(RunnerEvent.READY, {"pid": self.pid, "session_id": self.session_id})
            await self.spend.charge_carried()  # a turn the last supervisor died in
            end = await self._run_session(client)
            if end.reason != EndReason.REWIND:
                return end
            self.log.info("session_rewound", session_id=self.session_id, at=self._resume.at)

    async def _run_session(self, client: ClaudeSDKClient) -> SessionEnd:
        send, receive = anyio.create_memory_object_stream[Any](256)
        end = SessionEnd(EndReason.STOPPED)
        self._turns.new_session()
        try:
            with anyio.CancelScope() as self._stopping.session_scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pump, client, send, self._turns.sort, self.inbox.wake)
                    tg.start_soon(self.inbox.keep_leases)
                    tg.start_soon(
                        self._stopping.interrupt_after_grace, client, lambda: self.inbox.inflight
                    )
                    end = await self._serve(client, receive)
                    tg.cancel_scope.cancel()
            if self._stopping.session_scope.cancelled_caught:
                end = SessionEnd(EndReason.STOPPED, "forced")
        except Exception as exc:
            # Whatever ended the session from inside (a bug, an input nobody foresaw) ends
            # it as a failure: the message in hand counts an attempt, so one that crashes
            # every session it reaches goes to the dead letters at its limit. Released
            # uncounted, it came back until the crash-loop limit failed the whole agent
            # and every request queued for it (found by review: a lone surrogate).
            end = SessionEnd(EndReason.ERROR, repr(exc))
            raise
        finally:
            send.close()
            receive.close()
            with anyio.CancelScope(shield=True):
                try:
                    await self._giving.inflight(self.inbox.inflight, failed=end.failed)
                finally:  # an error out of the give-back must not leave this CLI running,
                    self.inbox.inflight = []  # nor its spend uncounted
                    code = await self._close(client)
                    saved = isinstance(code, int) and code >= 0
                    if end.detail == "forced":  # a turn cut: its answered requests, charged
                        await self.spend.forced(self._cut, saved=saved)
                        cut = dict(enumerate(self._compacting))
                        await self.spend.forced(cut, saved=saved, cause="compaction")
                    elif isinstance(code, int) and code < 0:
                        # Killed by the close (stuck: it did not exit at its stdin's end,
                        # nor at the SDK's SIGTERM): it saved nothing, as any CLI killed,
                        # whatever this session's end assumed (a turn_timeout: that it
                        # closed cleanly, the cut turn in its figures). Measured on
                        # 2.1.332 (SIGSTOPped, turn_timeout): resumed, it continued from
                        # the figures it had resumed with, below the baseline kept, read
                        # as counted afresh: the redelivered turn charged the session's
                        # earlier turns again ($0.18206 for a $0.12206 turn).
                        await self.spend.after_death()
                        if self._compacting:  # timed out: a summary request it never saved
                            cut = dict(enumerate(self._compacting))
                            await self.spend.unfinished("turn_timeout", cut, "compaction")
                    self._cut = {}
                    self._compacting = []
                    self.spend.closed()
        return end

    def _clear_git_locks(self) -> None:
        """A worktree agent's stale git locks, before its CLI starts (see
        workspaces.clear_stale_locks); never a reason not to start it."""
        with contextlib.suppress(errors.OrchestratorError, OSError):
            workspaces.clear_stale_locks(self.spec, self.roster())

    async def _connect(self) -> ClaudeSDKClient | SessionEnd:
        rewind_at = None
        if self._resume.rewind:
            self._resume.rewind = False
            rewind_at = self._resume.at
            if rewind_at is None:  # no good point known: a fresh conversation, not a poisoned one
                self.spend.session.reset()
        # A worktree checkout may be slow, and its git config waits out a lock: a stop
        # asked meanwhile ends that wait (workspaces.GIVE_UP).
        give_up = workspaces.GIVE_UP.set(self._stop.is_set)
        try:
            await anyio.to_thread.run_sync(self.policy.folder)
        except errors.WorkspaceError:
            if self._stop.is_set():
                return SessionEnd(EndReason.STOPPED, "stopped before connecting")
            raise
        finally:
            workspaces.GIVE_UP.reset(give_up)
        await anyio.to_thread.run_sync(self._clear_git_locks)
        for resume in [self.session_id, None] if self.session_id else [None]:
            if self._stop.is_set():  # asked before this process was launched: none is
                return SessionEnd(EndReason.STOPPED, "stopped before connecting")
            # Not the last CLI's (a rewind connects again): a failed connect closed with
            # its pid killed that process group again, or whoever had its pid since.
            self.pid, self._own_group = None, False
            options = build_options(
                self.spec,
                self.roster(),
                self.relay,
                self._can_use_tool,
                resume=resume,
                cli_path=self.cli_path,
                stderr=self._stderr,
                policy=self.policy,
            )
            if resume is not None and rewind_at is not None:
                options.resume_session_at = rewind_at
            self._cli_env = {**os.environ, **(options.env or {})}
            pid_file = cli_pid_file(self.cli_path, self.spec.name)
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)  # the last session's: not this process
            client = self._new_client(options)
            try:
                connected = await connect_within(
                    client, self.spec.connect_timeout_s, pid_file, self._stop
                )
            except ClaudeSDKError as exc:
                self._note_pid(pid_file)
                await self._close(client)
                if resume is not None:  # the saved conversation may be gone: start afresh once
                    self.log.warning("resume_failed", session_id=resume, error=str(exc))
                    self.spend.session.reset()
                    self._resume.at = None
                    continue
                return SessionEnd(EndReason.CONNECT_FAILED, str(exc))
            finally:
                discard_prompt_file(options)  # read by the CLI at start-up; off the disk now
            self._note_pid(pid_file)
            if connected == "stopped":
                await self._close(client)
                return SessionEnd(EndReason.STOPPED, "stopped while connecting")
            if connected == "timed_out":
                await self._close(client)
                return SessionEnd(
                    EndReason.CONNECT_TIMEOUT,
                    f"no connection within {self.spec.connect_timeout_s:g}s",
                )
            self.spend.connected()
            if not relay_route.install(client, SERVER, self.relay.tools()):
                self.log.warning("relay_direct_route_unavailable")  # the SDK's route: slower
            return client
        return SessionEnd(EndReason.CONNECT_FAILED, "unreachable")

    async def _foreign(self, message: Any) -> None:
        """A foreign turn answers nobody, but it was paid for: its spend is counted."""
        if isinstance(message, AssistantMessage) and message.parent_tool_use_id is None:
            self.context.observe(message)
        if isinstance(message, ResultMessage):
            usage = await self.spend.spent(message, "foreign_turn")
            self.log.warning("foreign_turn", result=(message.result or "")[:300], **usage.fields())

    def _note_pid(self, pid_file: Path | None) -> None:
        """This connect's CLI, as its launcher wrote it: the process :meth:`_close` kills
        the group of (if it leads one, see session_options)."""
        self.pid = read_cli_pid(pid_file)
        self._own_group = self.pid is not None and is_group_leader(self.pid)

    async def _close(self, client: ClaudeSDKClient) -> int | None:
        """Close the CLI; its exit code: one (>= 0) if it exited by itself (at its stdin's
        end: it saved its running figures), a signal's (< 0) if killed (it saved nothing),
        None if not known."""
        process = getattr(getattr(client, "_transport", None), "_process", None)
        await close(client, self.pid, self._own_group, self.log)
        code = getattr(process, "returncode", None)
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    async def _serve(
        self, client: ClaudeSDKClient, receive: MemoryObjectReceiveStream[Any]
    ) -> SessionEnd:
        while not self._stop.is_set():
            died = await drain(receive, self._foreign)
            if died:
                await self.spend.after_death(saved=died.saved)
                return SessionEnd(EndReason.EXITED, died.detail, died.exit_code)
            batch = await self.inbox.next_batch()
            if not batch:
                continue
            try:
                await self._deliver(client, receive, batch)
                if not self._stopping.interrupted and not self._stop.is_set():
                    # Not while paused for the budget (a compaction is spend too), nor before
                    # a rewind (the new process resumes before what it would summarise).
                    paused = self.spend.paused()
                    compacted = await self._between_turns(client, receive, paused)
                    if compacted is not None:
                        await self.spend.spent(compacted, "compaction", turn=False)
            except SessionOver as exc:  # context.py: an overflow, a compaction gone silent
                return SessionEnd(exc.reason, exc.detail, handover=exc.handover)
            except SessionDied as exc:
                return SessionEnd(EndReason.EXITED, exc.died.detail, exc.died.exit_code)
            except TurnTimeout:
                return SessionEnd(
                    EndReason.TURN_TIMEOUT, f"no output for {self.spec.turn_timeout_s:g}s"
                )
            if self._stopping.interrupted:
                break
            if self._resume.rewind:
                return SessionEnd(EndReason.REWIND)
        return SessionEnd(EndReason.STOPPED)

    async def _deliver(
        self, client: ClaudeSDKClient, receive: MemoryObjectReceiveStream[Any], batch: list[Message]
    ) -> None:
        fresh = await self.inbox.unanswered(batch)
        if not fresh:
            return
        self._cut = {}
        charged = False  # the cut turn's requests, by unfinished below
        turn = Turn(fresh)
        reader = TurnReader(
            client,
            receive,
            turn,
            spend=self.spend,
            context=self.context,
            foreign=self._foreign,
            interrupted=lambda: self._stopping.interrupted,
            cli_env=self._cli_env,
            on_event=self.on_event,
            log=self.log,
        )
        self.relay.turn = turn
        self._stopping.turn_started()
        started = time.monotonic()
        result: ResultMessage | None = None
        try:
            try:
                await self._turns.query(client, self.context.framed(frame(fresh)))
            finally:
                # Bookkeeping after the query is written: the CLI starts while we record it.
                for m in fresh:
                    self.log.info(
                        "received",
                        message_id=m.id,
                        kind=m.kind,
                        sender=m.sender,
                        body=text_of(m.body),
                        attempt=m.attempts,
                    )
            await self.on_event(RunnerEvent.BUSY, {"messages": [m.id for m in fresh]})
            try:
                result, final = await reader.collect(self.spec.turn_timeout_s)
            except TurnTimeout:
                charged = True
                # closed, it saves them (else _run_session puts the baseline back)
                await self.spend.unfinished("turn_timeout", self.spend.turn_requests, saved=True)
                raise
            except SessionDied as exc:
                charged = True
                requests = self.spend.turn_requests
                await self.spend.unfinished("session_died", requests, saved=exc.died.saved)
                raise
        finally:
            self.relay.turn = None
            self._stopping.turn_ended()
            if result is None:  # charged above, or charged as the session ends (forced)
                if not charged:
                    self._cut = dict(self.spend.turn_requests)
                self.spend.out_of_turn()
        try:
            await self._ends.finish(
                fresh,
                reader,
                result,
                final,
                started=started,
                interrupted=self._stopping.interrupted,
            )
        finally:  # the ledger has the turn now: the tally would count it twice
            self.spend.out_of_turn()

    async def _between_turns(
        self, client: ClaudeSDKClient, receive: MemoryObjectReceiveStream[Any], paused: bool
    ) -> ResultMessage | None:
        """The context keeper's turn (a compaction's result, if one ran). A compaction cut
        off by the CLI's death is charged an estimate: the CLI streams no message for its
        summary request (measured on 2.1.332: status, compact_boundary and the result,
        whose usage says 0), so its tokens are the conversation it summarises, the context
        in use, as input. One gone silent is not: the CLI, closed cleanly, saves its total
        with what it counted of it, and the next turn's figure has that."""
        started: list[tuple[str, dict[str, Any]]] = []

        async def query(text: str) -> None:
            started.append((self.context.model or "", {"input_tokens": self.context.tokens or 0}))
            self._compacting = started  # charged by a forced stop (see _run_session)
            await self._turns.query(client, text)

        # A stop waits for a compaction as for a turn: the grace, an interrupt, then the
        # force (from here, not from the /compact: a stop asked in between would not wait).
        # It did not: a restart of an agent whose summary request hung (its claude stuck or
        # SIGSTOPped) waited out the compaction's timeout (turn_timeout, 10 minutes by
        # default), whatever its --grace, and then charged nothing of it.
        self._stopping.turn_started()
        try:
            result = await self.context.between_turns(
                query,
                lambda: next_item(receive, self._foreign),
                may_compact=not (paused or self._resume.rewind),
            )
        except SessionDied as exc:
            self._compacting = []
            cut = dict(enumerate(started))
            await self.spend.unfinished("session_died", cut, "compaction", saved=exc.died.saved)
            raise
        finally:
            self._stopping.turn_ended()
        self._compacting = []
        return result

    async def _can_use_tool(
        self, tool_name: str, _input: dict[str, Any], _ctx: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        # Only reached for tools the CLI would prompt for: an unattended agent never waits.
        self.log.warning("tool_denied", tool=tool_name)
        return PermissionResultDeny(message=prompts.tool_not_allowed(tool_name, self.spec.tools))

    def _stderr(self, line: str) -> None:
        self.log.info("cli_stderr", line=line.rstrip()[:2000])
