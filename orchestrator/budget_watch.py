"""The budget policy: warn at 80 %, pause at 100 %, run again when it no longer holds.

After every turn (and every second, for windows that roll over) the watch
compares each agent's budget and the team's with what was spent
(:mod:`orchestrator.budget`). An agent over either is *blocked*: its runner
claims nothing more (the turn in progress finishes first), the supervisor
shows it ``paused``, requests already queued for it and new ones are answered
``budget_exceeded`` with the figures, notices stay queued. It runs again when
the window rolls over, when a reload raises the budget, or on ``resume``,
which overrides the budgets it is over until their window rolls over.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import anyio.to_thread
import structlog

from orchestrator import errors
from orchestrator.budget import TEAM, Ledger, Standing, turn_spend
from orchestrator.lifecycle import AgentState
from orchestrator.mailbox import SUPERVISOR, AsyncMailboxBackend, schema
from orchestrator.mailbox.backend import fail_waiting
from orchestrator.roster import Roster
from orchestrator.roster.model import Budget

log = structlog.get_logger()

CHECK_EVERY_S = 0.5  # roll-over checks, and answering requests sent to a paused agent
KEEP_SPEND_S = 35 * 86400.0  # turns older than this (or two of the longest window) are pruned
_NOTHING: dict[str, Any] = {
    "agent": None,
    "team": None,
    "paused_by": None,
    "paused": None,
    "held_for": None,
}


class Team(Protocol):
    """What the watch needs from the supervisor."""

    def agent_state(self, name: str) -> AgentState | None: ...

    async def pause_agent(self, name: str) -> None: ...  # ready -> paused

    async def unpause_agent(self, name: str) -> None: ...  # paused -> ready


class BudgetWatch:
    def __init__(
        self,
        database: Path,
        roster: Callable[[], Roster],
        team: Team,
    ) -> None:
        self.database = database
        self.roster = roster
        self.team = team
        self._mailbox: AsyncMailboxBackend | None = None
        self.run_started = time.time()
        self.blocked: dict[str, list[Standing]] = {}  # agent -> the budgets it is over
        self._ledger: Ledger | None = None
        self._released = anyio.Event()  # set (and replaced) whenever an agent is unblocked
        self._lock = anyio.Lock()
        self._published: dict[str, Any] = {}
        # Each agent's turn in progress: its requests' tokens so far (the ledger has them
        # once the turn ends). The team budget's in-turn check counts the others' too.
        self._in_turn: dict[str, int] = {}
        # Agents whose turn was stopped for the team's budget by the others' turns in
        # progress, the ledger alone not over it: held (claim nothing) until those turns
        # have ended, been recorded and evaluated. Released at once, such an agent claimed
        # its message again, began a new turn and crossed again: a request more per stop,
        # past the bound the README gives (measured: 140,507 tokens against 130,400, under
        # load; 1 in 15 runs of test_agents_at_once_stop_near_the_team_token_budget).
        # Agent -> the others' turns it waits for: their names, with how many turns each
        # had ended then (only those turns: a busy team always has some turn in progress).
        self._after_others: dict[str, dict[str, int]] = {}
        self._turns_ended: dict[str, int] = {}

    async def open(self, mailbox: AsyncMailboxBackend) -> None:
        self._mailbox = mailbox
        try:
            self._ledger = await anyio.to_thread.run_sync(Ledger, self.database)
        except sqlite3.Error as exc:
            raise schema.translate(self.database, exc) from exc
        windows = [b.per_s or 0.0 for b in _budgets(self.roster())]
        keep_s = max([KEEP_SPEND_S, *(2 * w for w in windows)])
        pruned = await anyio.to_thread.run_sync(self.ledger.prune, time.time() - keep_s)
        if pruned:
            log.info("spend_pruned", turns=pruned, older_than_days=round(keep_s / 86400, 1))

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "BudgetWatch.open() first"
        return self._ledger

    @property
    def mailbox(self) -> AsyncMailboxBackend:
        assert self._mailbox is not None, "BudgetWatch.open() first"
        return self._mailbox

    # --- for the runner and the supervisor ------------------------------------------

    async def hold(self, name: str) -> None:
        """Return once ``name`` may claim messages (at once, unless it is blocked, or its
        turn was stopped by the others' turns in progress and one of them still is)."""
        while name in self.blocked or self._waits_on_others(name):
            await self._released.wait()

    def _waits_on_others(self, name: str) -> bool:
        if self._held_for(name):
            return True
        self._after_others.pop(name, None)  # their turns are in the ledger, evaluated
        return False

    def _held_for(self, name: str) -> list[str]:
        """The agents whose turns in progress ``name`` is held for (none: not held)."""
        turns = self._after_others.get(name) or {}
        return sorted(n for n, ended in turns.items() if self._turns_ended.get(n, 0) == ended)

    def is_blocked(self, name: str) -> bool:
        return name in self.blocked

    def in_turn(self, name: str, tokens: int) -> None:
        """``name``'s turn in progress has spent ``tokens`` so far (0: no turn)."""
        if tokens > 0:
            self._in_turn[name] = tokens
        elif self._in_turn.pop(name, None) is not None:
            self._turns_ended[name] = self._turns_ended.get(name, 0) + 1
            if self._after_others:
                # Its turn is recorded and evaluated by now (after_turn runs before this):
                # an agent held for it may look again.
                self._wake()

    async def over_with(self, name: str, tokens: int) -> bool:
        """Whether ``tokens`` more (a turn in progress) spend ``name``'s token budget or
        the team's, one not overridden by ``resume``; for the team's, the other agents'
        turns in progress count too (N agents at once would each see only their own).
        Dollars are known only when the turn ends (the CLI prices requests then), so
        they are checked after it."""
        roster = self.roster()
        spec = roster.agents.get(name)
        budgets = [(TEAM, roster.budget), (name, spec.budget if spec else None)]
        if not any(b is not None and b.tokens for _, b in budgets):
            return False
        try:
            over, by_others = await anyio.to_thread.run_sync(self._over_with, name, tokens, budgets)
        except (sqlite3.Error, errors.OrchestratorError) as exc:  # the turn runs on
            log.error("budget_check_failed", cause="turn", error=str(exc))
            return False
        if by_others:
            self._after_others[name] = {
                n: self._turns_ended.get(n, 0) for n in self._in_turn if n != name
            }
            # Shown (`ps`: `ready (held for …)`) by the next evaluation (this turn's end, or
            # the half-second check), not here: nothing may delay the interrupt.
        return over

    def _over_with(
        self, name: str, tokens: int, budgets: list[tuple[str, Budget | None]]
    ) -> tuple[bool, bool]:
        """Whether over, and whether only with the others' turns in progress counted."""
        now = time.time()
        marks = self.ledger.marks()
        for scope, budget in budgets:
            if budget is None or not budget.tokens:
                continue
            s = self.ledger.standing(scope, budget, now, self.run_started)
            if marks.get(f"override/{name}/{scope}") == s.start:
                continue
            others = 0
            if scope == TEAM:
                others = sum(t for n, t in list(self._in_turn.items()) if n != name)
            if s.spent.tokens + tokens + others >= budget.tokens:
                return True, s.spent.tokens + tokens < budget.tokens
        return False, False

    async def after_turn(self, name: str, data: dict[str, Any]) -> None:
        usd, tokens = turn_spend(data)
        if usd or any(tokens.values()):
            try:
                # priced by the runner: a cut-off turn's tally, or a model of unknown price
                # at the highest known rate (spend.py): `ps` and `top` show it as `~$`
                guessed = data.get("cost_estimated") is True or bool(data.get("price_unknown"))
                record = partial(self.ledger.record, estimated=guessed)
                await anyio.to_thread.run_sync(record, name, usd, tokens, _spent_at(data))
            except (sqlite3.Error, errors.DatabaseError) as exc:  # the team runs on
                log.error("spend_not_recorded", agent=name, usd=usd, error=str(exc))
        await self.evaluate("turn")

    async def run(self) -> None:
        """Every CHECK_EVERY_S: roll-overs, and requests sent to paused agents."""
        while True:
            await anyio.sleep(CHECK_EVERY_S)
            await self.evaluate("window")
            for name, standings in list(self.blocked.items()):
                try:
                    await self._refuse_requests(name, standings)
                except errors.OrchestratorError as exc:  # tried again at the next check
                    log.error("budget_refusal_failed", agent=name, error=str(exc))

    async def evaluate(self, cause: str) -> None:
        """Compare every budget with its spend; block, unblock, warn and publish.

        A database that cannot be read now (locked past its timeout, a disk error) is
        logged and tried again at the next check: the team keeps running as it was."""
        try:
            await self._evaluate(cause)
        except (sqlite3.Error, errors.OrchestratorError) as exc:
            log.error("budget_check_failed", cause=cause, error=str(exc))

    async def _evaluate(self, cause: str) -> None:
        async with self._lock:
            roster = self.roster()
            for name in [n for n in self._after_others if n not in roster.agents]:
                # Removed from the roster while held: `resume` listed it as held, "then
                # runs on its own" (found by review); added again, it starts unheld.
                del self._after_others[name]
            if not (_has_budget(roster) or self.blocked or self._published):
                return  # the common case: no budget anywhere, nothing to read or clear
            now = time.time()
            standings, marks = await anyio.to_thread.run_sync(self._read, roster, now)
            for standing in standings.values():
                await self._maybe_warn(standing, marks)
            team = standings.get(TEAM)
            for name in roster.agents:
                over = [
                    s
                    for s in (standings.get(name), team)
                    if s is not None
                    and s.over
                    and marks.get(f"override/{name}/{s.scope}") != s.start
                ]
                if over:
                    await self._block(name, over)
                else:
                    await self._unblock(name, cause)
                await self._publish(name, standings.get(name), team)
            for name in [n for n in self.blocked if n not in roster.agents]:
                await self._unblock(name, cause)  # removed from the roster
            if team is not None or SUPERVISOR in self._published:
                await self._publish(SUPERVISOR, None, team)

    async def resume(self, names: list[str]) -> list[dict[str, Any]]:
        """Override the budgets that pause ``names`` (every paused agent if empty) until
        their windows roll over. Says, per agent, what it overrode; of one stopped or
        failed, that it runs once started (a held one was said to "run on its own")."""
        down = {
            n: str(state)
            for n in [*names, *self.blocked, *self._after_others]
            if (state := self.team.agent_state(n)) in _NOT_RUNNING
        }
        results = []
        held = {n: who for n in self._after_others if (who := self._held_for(n))}
        for name in names or sorted({*self.blocked, *held}):
            over = self.blocked.get(name)
            if not over and name in held:
                # `ps` shows it `ready (held for bob's turn (team budget))`: "not paused by
                # a budget" said nothing of that. Nothing to override (the hold is no
                # budget: it keeps the team's overshoot bounded) and nothing failed.
                said = f"'{name}' is not paused by a budget"
                if name in down:
                    said = f"'{name}' is not running ({down[name]}) and not paused by a budget"
                told: dict[str, Any] = {
                    "agent": name,
                    "resumed": False,
                    "held_for": held[name],
                    "message": f"{said}: {_held(held[name], name, name in down)}",
                }
                results.append(told | ({"state": down[name]} if name in down else {}))
                continue
            if not over:
                results.append(
                    {
                        "agent": name,
                        "resumed": False,
                        "message": f"'{name}' is not paused by a budget; nothing to override",
                    }
                )
                continue
            for s in over:
                try:
                    await anyio.to_thread.run_sync(
                        self.ledger.set_mark, f"override/{name}/{s.scope}", s.start
                    )
                except sqlite3.Error as exc:
                    raise errors.DatabaseError(str(self.database), str(exc)) from exc
            overrides = [f"{s.owner()} ({s.describe()})" for s in over]
            message = (
                f"resumed '{name}': overriding {' and '.join(overrides)}; spending is still "
                "counted, and the override ends when that window rolls over"
            )
            if name in down:
                message += (
                    f"; it is not running ({down[name]}): it runs once started "
                    f"(`octy-orchestrate start {name}`)"
                )
            if name in held:
                message += f"; and {_held(held[name], name, name in down)}"
            log.warning("budget_override", agent=name, overrides=overrides)
            entry: dict[str, Any] = {
                "agent": name,
                "resumed": True,
                "message": message,
                "overrides": [s.figures() for s in over],
            }
            if name in held:  # still held after the override: --json says so too
                entry["held_for"] = held[name]
            if name in down:
                entry["state"] = down[name]
            results.append(entry)
        await self.evaluate("resume")
        return results

    # --- inside ----------------------------------------------------------------------

    def _read(self, roster: Roster, now: float) -> tuple[dict[str, Standing], dict[str, float]]:
        """Standings and marks, in one worker-thread call."""
        ledger = self.ledger
        standings: dict[str, Standing] = {}
        if roster.budget is not None:
            standings[TEAM] = ledger.standing(TEAM, roster.budget, now, self.run_started)
        for name, spec in roster.agents.items():
            if spec.budget is not None:
                standings[name] = ledger.standing(name, spec.budget, now, self.run_started)
        return standings, ledger.marks()

    async def _maybe_warn(self, s: Standing, marks: dict[str, float]) -> None:
        key = f"warned/{s.scope}"
        if not s.warn or marks.get(key) == s.start:
            return
        await anyio.to_thread.run_sync(self.ledger.set_mark, key, s.start)
        who = {} if s.scope == TEAM else {"agent": s.scope}
        log.warning(
            "budget_warning",
            scope=s.figures()["scope"],
            share=round(s.share, 3),
            detail=f"{s.owner()}: {s.describe()}",
            **who,
        )

    async def _block(self, name: str, over: list[Standing]) -> None:
        first = name not in self.blocked
        self.blocked[name] = over
        if first:
            log.warning(
                "budget_exceeded",
                agent=name,
                by=[s.figures()["scope"] for s in over],
                detail="; ".join(f"{s.owner()}: {s.describe()}" for s in over),
            )
        if self.team.agent_state(name) == AgentState.READY:
            await self.team.pause_agent(name)
            await self._refuse_requests(name, over)

    def _wake(self) -> None:
        """Wake every agent waiting in :meth:`hold` to look again."""
        self._released.set()
        self._released = anyio.Event()

    async def _unblock(self, name: str, cause: str) -> None:
        if self.blocked.pop(name, None) is None:
            return
        self._wake()
        reason = {
            "window": "the budget window rolled over",
            "reload": "the budget was raised (reload)",
            "resume": "resumed by the operator (`resume`)",
        }.get(cause, cause)
        log.info("budget_resumed", agent=name, reason=reason)
        if self.team.agent_state(name) == AgentState.PAUSED:
            await self.team.unpause_agent(name)

    async def _refuse_requests(self, name: str, over: list[Standing]) -> None:
        """Answer requests queued for a paused agent at once: askers must not wait out
        their timeouts. Notices stay queued for when it runs again."""
        detail = paused_detail(name, over)
        code = errors.BudgetExceeded.code
        for request_id in await fail_waiting(self.mailbox, name, code, detail, log):
            log.info("request_refused", agent=name, request_id=request_id, code=code)

    async def _publish(self, name: str, own: Standing | None, team: Standing | None) -> None:
        over = self.blocked.get(name)
        figures: dict[str, Any] = {
            "agent": own.figures() if own else None,
            "team": team.figures() if team else None,
            "paused_by": [s.figures()["scope"] for s in over] if over else None,
            "paused": paused_detail(name, over) if over else None,
            # held (hold) for these agents' turns in progress, the team budget's
            "held_for": self._held_for(name) or None,
        }
        if name == SUPERVISOR:
            figures = dict(figures["team"] or {})
        if self._published.get(name, _NOTHING) == figures:
            return
        self._published[name] = figures
        with contextlib.suppress(errors.RecipientUnknown):
            await self.mailbox.update_agent(name, meta={"budget": figures}, heartbeat=False)
        if figures in (_NOTHING, {}):  # a budget removed: cleared once, then nothing to watch
            del self._published[name]


def _spent_at(data: dict[str, Any]) -> float:
    """When a turn's spend was spent: now, or the moment a turn the last supervisor died in
    was (``spent_at``, spend.py): charged by the next `up`, a day later, it was counted in
    that day's window, against a budget it was not spent in (found by review)."""
    now = time.time()
    at = data.get("spent_at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not 0 < at <= now:
        return now
    return float(at)


def paused_detail(name: str, over: list[Standing]) -> str:
    spent = "; ".join(f"{s.owner()}: {s.describe()}" for s in over)
    return (
        f"'{name}' is paused, its budget is spent ({spent}); it runs again when the window "
        f"rolls over, when the budget is raised in agents.yaml, or on "
        f"`octy-orchestrate resume {name}`"
    )


def _budgets(roster: Roster) -> list[Budget]:
    found = [spec.budget for spec in roster.agents.values() if spec.budget is not None]
    return found + ([roster.budget] if roster.budget is not None else [])


def _has_budget(roster: Roster) -> bool:
    return bool(_budgets(roster))


_NOT_RUNNING: Final = (AgentState.STOPPING, AgentState.STOPPED, AgentState.FAILED)


def _held(others: list[str], name: str, stopped: bool = False) -> str:
    """What `resume` says of ``name``, held for ``others``' turns in progress (hold);
    ``stopped``: not running (stopped or failed), it claims nothing before it is started."""
    one = len(others) == 1
    turns = f"{', '.join(others)}'s {'turn' if one else 'turns'} in progress (team budget)"
    until = f"until {'that turn has' if one else 'those have'} ended and been counted"
    spent = "(or is paused, if the team budget is spent; `resume` overrides that)"
    if stopped:
        return (
            f"started again (`octy-orchestrate start {name}`), it is held for {turns}: it "
            f"claims nothing {until} {spent}"
        )
    return f"it is held for {turns}: it claims nothing {until}, then runs on its own {spent}"
