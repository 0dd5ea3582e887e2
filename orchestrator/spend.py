"""What one agent's session spends: each turn's cost added to the agent's totals, the
estimate charged for a turn cut off before its result, and the token budget watched
while a turn runs (interrupting it once spent).

The figures themselves are :mod:`orchestrator.usage`'s; the budgets are
:class:`orchestrator.budget_watch.BudgetWatch`'s, asked through :class:`BudgetGate`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    ToolUseBlock,
)

from orchestrator.lifecycle import OnEvent, RunnerEvent
from orchestrator.prices import (
    US_INFERENCE,
    estimate,
    highest,
    known_to_cli,
    rates_for,
    request_usd,
)
from orchestrator.roster import Roster
from orchestrator.usage import (
    TOKEN_KEYS,
    SessionCost,
    TurnUsage,
    add_turn,
    cut_off,
    session_tokens,
)


class BudgetGate(Protocol):
    """What the runner asks the budgets (orchestrator.budget_watch.BudgetWatch)."""

    def is_blocked(self, name: str) -> bool: ...

    def in_turn(self, name: str, tokens: int) -> None: ...  # 0: no turn in progress

    async def over_with(self, name: str, tokens: int) -> bool: ...


class Spend:
    """One runner's spend: its agent's totals, the session's running total, and the
    model requests of the turn in progress."""

    def __init__(
        self,
        name: str,
        roster: Callable[[], Roster],
        on_event: OnEvent,
        log: Any,
        *,
        session_id: str | None,
        totals: Mapping[str, Any] | None,
        budgets: BudgetGate | None,
    ) -> None:
        self.name = name
        self.roster = roster
        self.on_event = on_event
        self.log = log
        self.budgets = budgets  # asked during a turn: stop it once over budget
        # The agent's totals across sessions (orchestrator.agent_meta.TOTAL_KEYS), and the running
        # total of the session it resumes: the CLI's total_cost_usd continues from there.
        self.totals: dict[str, Any] = dict(totals or {})
        self.last_usage: TurnUsage | None = None
        # The CLI of the session's last run was never closed (its supervisor was killed, and
        # the CLI with it by its parent-death signal): it saved nothing, and resumed it
        # continues the figures it resumed with, not the last ones seen. Measured: its next
        # turn was charged nothing (one turn since that resume) or the session's earlier
        # spend again (two or more: the total fell below the last seen, read as counted
        # afresh).
        killed = bool(session_id) and self.totals.get("session_live") is True
        usd, tokens = self.totals.get("session_cost_usd"), self.totals.get("session_tokens")
        if killed:
            usd, tokens = (
                self.totals.get("session_resumed_usd"),
                self.totals.get("session_resumed_tokens"),
            )
        self.session = SessionCost(
            session_id,
            _usd(usd),
            tokens if isinstance(tokens, Mapping) else None,
        )
        # This turn's model requests (message id -> model, usage): what a turn cut off before
        # its result (turn_timeout, the CLI's death) is charged, in tokens and priced dollars.
        self.turn_requests: dict[str, tuple[str, dict[str, Any]]] = {}
        # The CLI's running total when this session was resumed: what it resumes with again
        # after a death (it saves its total only when it exits cleanly; measured on 2.1.332).
        self.restored_usd = 0.0
        self.restored_tokens: dict[str, int] | None = None  # its running tokens, the same
        self.over_budget = False
        # The session's per-model running figures at its last result (_per_model): the
        # baseline of the next turn's parts. None: not known (resumed, or a cut-off turn).
        # Kept with the totals: a new runner (a restart, a reload) resumes with them.
        self.models: dict[str, dict[str, Any]] | None = (
            None if killed else _models(self.totals.get("session_models")) if session_id else {}
        )
        # The last figures seen, for the first result to tell which the CLI resumed with:
        # killed at the very moment its supervisor died, a CLI may still save them (seen
        # once in six runs on a loaded machine; its stdin closes as the signal comes).
        self.last_seen: tuple[float, dict[str, int] | None, Any] | None = None
        if killed:  # the baseline it resumes with (the next turn's figures move it on)
            seen = self.totals.get("session_tokens")
            self.last_seen = (
                _usd(self.totals.get("session_cost_usd")),
                _baseline(seen) if isinstance(seen, Mapping) else None,
                self.totals.get("session_models"),
            )
            self.totals = _with_baseline(
                {**self.totals, "session_cost_usd": self.session.total_usd}, self.session
            )
        # The requests of a turn its supervisor died in (kept in the registry as they came,
        # watch; every way a turn is counted or dropped clears them first): charged once
        # this session's CLI runs (charge_carried). Measured before: a turn's answered
        # 30,100 tokens never reached the ledger; its redelivery did.
        # Kept with the totals until charged: a session that ends before its CLI runs (a
        # connect that failed or timed out, a stop while connecting) hands the totals back
        # to the next one with the tally still in them. Cleared there, the tally was lost
        # (found by review: a killed turn's 30,001 tokens never charged).
        self.carried = _carried(self.totals.get("turn_tally"))
        self.carried_at = _carried_at(self.totals.get("turn_tally"))

    def connected(self) -> None:
        """A CLI runs the session: what it resumed with is what it resumes with again
        after a death (it saves its running figures only when it exits cleanly)."""
        self.restored_usd = self.session.total_usd
        self.restored_tokens = _copy(self.session.tokens)
        # Kept with the totals (the next turn's event carries them to the registry): should
        # the supervisor be killed with this CLI, the next `up` starts from these.
        self.totals = {
            **self.totals,
            "session_live": True,
            "session_resumed_usd": self.restored_usd,
            "session_resumed_tokens": _copy(self.restored_tokens),
        }

    async def charge_carried(self) -> None:
        """Charge the turn the last supervisor died in (its CLI killed with it), as a turn
        cut off by the CLI's death is: an estimate of its answered requests."""
        carried, self.carried = self.carried, {}
        # every event's totals from now on say the ledger has the tally
        self.totals["turn_tally"] = None
        if carried:
            await self.unfinished("session_died", carried, "supervisor_died", self.carried_at)

    async def forced(
        self,
        requests: Mapping[Any, tuple[str, dict[str, Any]]],
        *,
        saved: bool,
        cause: str | None = None,
    ) -> None:
        """A turn cut by a forced stop (a stop whose grace and interrupt ran out: the
        session cancelled, the CLI's process group killed): its answered requests are
        charged, an estimate, as a turn cut by the CLI's death is. Dropped with the
        session, they never reached the ledger (found by review: a SIGSTOPped CLI and a
        restart, the cut 30,100 tokens not charged; only the redelivery was).

        The baseline of the next turn is the figures the CLI had resumed with, as after
        any death: measured on 2.1.332 (the CLI SIGSTOPped, its group killed after the
        grace), it saved nothing, and resumed it continued from those ($0.0042 and then
        $0.12626 for a $0.12206 turn), not from the last result's. Kept at the last seen
        figures, the redelivered turn was charged less that CLI's earlier turns ($0.11786),
        and a turn after a cut compaction nothing.

        ``saved``: the CLI exited by itself as its stdin closed (a live one forced, e.g.
        a second Ctrl-C): measured, it saved its figures with the cut request in them, as
        after a turn_timeout, so the baseline moves on by the estimate (else the
        redelivered turn counted the cut request again: 60,010 input tokens).

        ``cause`` ``compaction``: a compaction's summary request (the context in use, as
        input), of which the CLI streams nothing: its figures, saved or not, are the last
        seen, and the baseline stays.
        """
        self.turn_requests = {}
        if requests:
            await self.unfinished("forced", requests, cause, saved=saved)
        elif not saved:  # killed: it resumes with the figures it had resumed with
            await self.after_death()

    def closed(self) -> None:
        """The CLI was closed (it saves its running figures as it exits) or has died
        (:meth:`after_death` took the figures it resumes with): the totals' session figures
        are what the next CLI resumes with."""
        self.totals = {**self.totals, "session_live": False}

    def paused(self) -> bool:
        """Whether the agent is paused for its budget (a compaction is spend too)."""
        return self.budgets is not None and self.budgets.is_blocked(self.name)

    def new_turn(self) -> None:
        self.turn_requests = {}
        self.over_budget = False

    def out_of_turn(self) -> None:
        self.turn_requests = {}
        if self.budgets is not None:
            self.budgets.in_turn(self.name, 0)

    def count(self, result: ResultMessage, *, turn: bool = True) -> TurnUsage:
        """What ``result`` cost, added to the agent's totals."""
        # The per-model figures before this turn: none yet in a new session (the CLI
        # counts from 0), unknown in one resumed before any result was seen here.
        same = bool(result.session_id) and result.session_id == self.session.session_id
        if same and self.last_seen is not None:
            self._resumed_with(result)
        self.last_seen = None
        before = self.models if same else {}
        usage = self._priced(self.session.turn(result), result, before)
        self.models = _per_model(result.model_usage)
        self.last_usage = usage
        self.totals = {**add_turn(self.totals, usage, turn=turn), "session_models": self.models}
        return usage

    def _resumed_with(self, result: ResultMessage) -> None:
        """The first result after a resume of a killed CLI's session: if its running tokens
        are the last seen plus exactly this turn's own usage, the CLI had saved those after
        all, and they are the baseline (else the figures it resumed with stay). A turn with
        subagents (its own usage leaves them out) cannot tell: it keeps the resumed ones."""
        assert self.last_seen is not None
        usd, tokens, models = self.last_seen
        running = session_tokens(result.model_usage)
        own = result.usage or {}
        if tokens is None or not running or tokens == self.session.tokens:
            return
        if any(running.get(k, 0) - tokens[k] != _count(own, k) for k in TOKEN_KEYS):
            return
        self.log.info("resumed_with_last_seen", session_cost_usd=usd)
        self.session.total_usd = usd
        self.session.tokens = dict(tokens)
        self.models = _models(models)
        self.restored_usd, self.restored_tokens = usd, dict(tokens)
        self.totals = {
            **self.totals,
            "session_resumed_usd": usd,
            "session_resumed_tokens": dict(tokens),
        }

    def _priced(
        self, usage: TurnUsage, result: ResultMessage, before: Mapping[str, Any] | None
    ) -> TurnUsage:
        """The CLI prices a model outside its catalog (a gateway's name) at a default rate
        ($4 and $20 per million, measured on 2.1.332) and knows nothing of the roster's
        ``prices:``: a usd budget on a $15/$75 model was spent 3.75 times over. Such a
        model's part of a turn (or a part the roster prices) is priced here instead, from
        its tokens: at the roster's rates, else at the highest known rate (as an estimate
        is). The other models' parts keep the CLI's figure.

        A session of one model: the turn's tokens, priced. Of several (a subagent on
        another model; model_usage holds every model the session has used, so this is
        every turn after the first such subagent): each model's part is the difference of
        its running figures (tokens and the CLI's ``costUSD``) since ``before``, the last
        result's; the CLI's figure for the repriced parts is swapped for ours. Measured
        before: a $15/$75 lead with a haiku subagent was charged at $4/$20 on every turn.
        ``before`` None (resumed from another process's totals): the CLI's figure."""
        figures = _per_model(result.model_usage)
        prices = self.roster().prices
        repriced = [m for m in figures if m in prices or not known_to_cli(m)]
        if not repriced:
            return usage
        if len(figures) == 1:
            model = repriced[0]
            rates = rates_for(model, prices)
            turn = {**usage.fields(), **self._split(model, figures, before, result)}
            cost = round(self._geo(model, result) * request_usd(rates or highest(prices), turn), 6)
            return replace(usage, cost_usd=cost, price_unknown=() if rates else (model,))
        if before is None:
            return usage
        usd, unknown = usage.cost_usd, []
        for model in repriced:
            now, then = figures[model], before.get(model) or {}
            part = {k: now.get(k, 0) - then.get(k, 0) for k in (*TOKEN_KEYS, "cost")}
            if any(v < 0 for v in part.values()):  # counting started afresh: unknown
                return usage
            rates = rates_for(model, prices)
            if rates is None and any(part[k] for k in TOKEN_KEYS):
                unknown.append(model)
            part.update(self._split(model, figures, before, result))
            priced = self._geo(model, result) * request_usd(rates or highest(prices), part)
            usd += priced - part["cost"]
        return replace(usage, cost_usd=round(max(usd, 0.0), 6), price_unknown=tuple(unknown))

    @staticmethod
    def _split(
        model: str,
        figures: Mapping[str, Mapping[str, Any]],
        before: Mapping[str, Any] | None,
        result: ResultMessage,
    ) -> dict[str, Any]:
        """The part of ``model``'s cache writes this turn kept for 1 hour, as the API says it
        (``cache_creation``): the difference of the CLI's running per-model figure
        (``cacheCreationEphemeral1hInputTokens``) since ``before``; ``before`` unknown, the
        turn's own ``usage`` split (measured on 2.1.332: both carry it). 1-hour writes cost
        more than 5-minute ones (2x input against 1.25x): priced as 5-minute, a team that
        caches for an hour was charged 62.5 % of their cost."""
        now = int(figures[model].get(HOUR, 0))
        if before is not None:
            then = int((before.get(model) or {}).get(HOUR, 0))
            hour = now - then if now >= then else now
        else:
            split = (result.usage or {}).get("cache_creation")
            hour = _count(split, "ephemeral_1h_input_tokens") if isinstance(split, Mapping) else 0
        return {"cache_creation": {"ephemeral_1h_input_tokens": max(hour, 0)}}

    def _geo(self, model: str, result: ResultMessage) -> float:
        """The multiplier for where ``model``'s requests were served: the CLI charges a
        request served in the US (``inference_geo: us``) 1.1 times, per request (measured on
        2.1.332). Each request's place is in its assistant message (the turn's tally); its
        share of the model's tokens served there is charged so. A part with no request in
        the tally (a compaction, a foreign turn): the place the result's ``usage`` says (the
        turn's last request's)."""
        mine = [u for m, u in self.turn_requests.values() if m == model]
        weights = [(sum(_count(u, k) for k in TOKEN_KEYS), u.get("inference_geo")) for u in mine]
        total = sum(w for w, _ in weights)
        if total:
            share = sum(w for w, geo in weights if geo == "us") / total
        else:
            share = 1.0 if (result.usage or {}).get("inference_geo") == "us" else 0.0
        return 1 + (US_INFERENCE - 1) * share

    async def spent(self, result: ResultMessage, cause: str, *, turn: bool = True) -> TurnUsage:
        """Spend that is not a delivered turn's (a compaction, a turn that overflowed or was
        interrupted, a foreign turn): counted and sent to the budgets all the same."""
        usage = self.count(result, turn=turn)
        self.log.info("spend", cause=cause, **usage.fields())
        await self.on_event(
            RunnerEvent.SPEND, {**usage.fields(), "cause": cause, "totals": self.totals}
        )
        return usage

    async def unfinished(
        self,
        cut: str,
        requests: Mapping[Any, tuple[str, Mapping[str, Any]]],
        cause: str | None = None,
        spent_at: float | None = None,
        *,
        saved: bool = False,
    ) -> None:
        """A turn cut off before its result (``cut``: ``turn_timeout``, or ``session_died``,
        the CLI's death): the requests answered so far are charged from the running tally,
        else each redelivery of the turn would be free. The CLI prices a turn only at its
        result, which never came: the tally is priced here (orchestrator/prices.py) and
        marked an estimate. ``cause``: the spend's, when not the cut's (a compaction).
        ``spent_at``: when it was spent, if not now (a turn the last supervisor died in:
        the budget window it belongs to is that moment's, not the next `up`'s).
        ``saved``: the CLI exited by itself (forced, or closed after a turn_timeout: at
        its stdin's end; died: by its SIGTERM handler) and saved its running figures."""
        priced = estimate(requests, self.roster().prices)
        # The CLI's running total when the session is resumed, so that the next turn's
        # cost (the total's difference) neither counts the cut requests again nor leaves
        # out what the estimate missed: closed after a turn_timeout, the CLI saves its total
        # with the cut requests in it; killed, it saves nothing and resumes with the total
        # it resumed with last (measured on 2.1.332).
        # Its running tokens the same way (the baseline of the next turn's, kept with the
        # totals: the next session's runner starts from them): with the cut tally in them
        # after a turn_timeout, else the tally was counted again in the next turn (measured:
        # the cut 30,100-token request in the ledger twice).
        # A CLI that exited by itself as it died (``saved``: SIGTERM, its handler exits 143)
        # or was forced (at its stdin's end) saved its figures as a closed one does: the
        # cut turn's requests in them; not a compaction's summary request, of which it
        # streams nothing (its figures are the last seen). One killed by a forced stop
        # saved nothing, as one killed otherwise (measured on 2.1.332: resumed, it
        # continued from the figures it had resumed with).
        restored = not saved
        if saved and cause == "compaction":  # the baseline stays the last seen
            usage = cut_off(requests, priced.usd, self.session.session_id, self.session)
        elif not restored:  # closed: it saved them
            self.session.total_usd = round(self.session.total_usd + priced.usd, 6)
            usage = cut_off(requests, priced.usd, self.session.session_id, self.session)
            if self.session.tokens is not None:
                self.session.tokens = {
                    k: n + int(getattr(usage, k)) for k, n in self.session.tokens.items()
                }
        else:
            self.session.total_usd = self.restored_usd
            self.session.tokens = _copy(self.restored_tokens)
            usage = cut_off(requests, priced.usd, self.session.session_id, self.session)
        self.models = None  # what the CLI saved of its per-model figures: not known
        if not usage.tokens:
            if restored:
                await self.after_death()
            return
        self.totals = _with_baseline(add_turn(self.totals, usage, turn=False), self.session)
        fields = {**usage.fields(), "cost_estimated": True, "cut_off": cut}
        if priced.unknown:  # priced at the highest known rate: roster `prices:` can say better
            fields["price_unknown"] = list(priced.unknown)
        cause = cause or cut
        self.log.warning("spend", cause=cause, requests=len(requests), **fields)
        at = {} if spent_at is None else {"spent_at": spent_at}
        await self.on_event(
            RunnerEvent.SPEND, {**fields, "cause": cause, "totals": self.totals, **at}
        )

    async def after_death(self, *, saved: bool = False) -> None:
        """The CLI died: it saves its running total only when it exits cleanly, and a
        resumed one continues the total it resumed with (measured on 2.1.332), so the next
        turn's cost is its difference from that, not from the last total seen (a killed
        session's next turn was charged less what the session had spent). The supervisor
        keeps the baseline with the agent's totals: a spend of nothing carries them.

        ``saved``: it exited by itself (ended by SIGTERM, its handler exits 143): it saved
        its running figures, the last seen, and resumed it continues from them (measured
        on 2.1.332). Put back to the figures it had resumed with, the next turn was charged
        the session's earlier turns again ($0.18 for a $0.06 turn)."""
        if saved:
            return
        self.session.total_usd = self.restored_usd
        self.session.tokens = _copy(self.restored_tokens)  # its running tokens, the same
        self.models = None  # the figures it resumes with: not known
        totals = _with_baseline(
            {**self.totals, "session_cost_usd": self.restored_usd}, self.session
        )
        if totals == self.totals:
            return
        self.totals = totals
        await self.on_event(RunnerEvent.SPEND, {"cause": "session_died", "totals": self.totals})

    async def watch(
        self, client: ClaudeSDKClient, item: AssistantMessage, interrupted: bool
    ) -> None:
        """Add up the turn's model requests as they come (each assistant message carries
        its request's usage; the blocks of one request share it, hence by message id) and
        interrupt the turn once the agent's or the team's token budget is spent and the
        model asks for a tool (another request would follow): a turn of many requests would
        otherwise overshoot by all of them. ``interrupted``: the turn already was."""
        if not item.usage or item.model == "<synthetic>":
            return
        key = item.message_id or f"#{len(self.turn_requests)}"
        entry = (item.model, dict(item.usage))
        changed = self.turn_requests.get(key) != entry
        self.turn_requests[key] = entry
        if self.budgets is not None:
            await self._check(client, item, interrupted)
        if changed:  # after the check: keeping it must never delay an interrupt
            await self.on_event(RunnerEvent.TALLY, {"tally": _tally(self.turn_requests)})

    async def _check(
        self, client: ClaudeSDKClient, item: AssistantMessage, interrupted: bool
    ) -> None:
        assert self.budgets is not None
        tokens = sum(_count(u, k) for _, u in self.turn_requests.values() for k in TOKEN_KEYS)
        self.budgets.in_turn(self.name, tokens)  # the other agents' checks count it too
        if self.over_budget or interrupted:
            return
        if not any(isinstance(b, ToolUseBlock) for b in item.content):
            return  # an answer, no further request: the turn ends at no more cost
        if not await self.budgets.over_with(self.name, tokens):
            return
        self.over_budget = True
        requests = len(self.turn_requests)
        self.log.warning("budget_turn_stopped", turn_tokens=tokens, requests=requests)
        try:
            await client.interrupt()
        except ClaudeSDKError as exc:
            self.log.warning("interrupt_failed", error=str(exc))


_MODEL_USAGE = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadInputTokens": "cache_read_input_tokens",
    "cacheCreationInputTokens": "cache_creation_input_tokens",
}
# Of the cache writes, those kept for 1 hour (model_usage's running figure, per model).
HOUR = "cache_creation_1h_input_tokens"
_MODEL_USAGE_HOUR = "cacheCreationEphemeral1hInputTokens"


def _per_model(model_usage: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """model_usage's running figures per model (``<synthetic>`` left out): its tokens as
    the API names them, and ``cost``, the CLI's dollars for that model."""
    out: dict[str, dict[str, Any]] = {}
    for model, figures in (model_usage or {}).items():
        if model == "<synthetic>" or not isinstance(figures, Mapping):
            continue
        part: dict[str, Any] = {
            ours: _count(figures, theirs) for theirs, ours in _MODEL_USAGE.items()
        }
        part[HOUR] = _count(figures, _MODEL_USAGE_HOUR)
        cost = figures.get("costUSD")
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            cost = 0.0
        part["cost"] = float(cost) if math.isfinite(cost) and cost > 0 else 0.0
        out[str(model)] = part
    return out


def _models(raw: Any) -> dict[str, dict[str, Any]] | None:
    """Per-model figures kept with the totals (a registry row: any JSON), or None."""
    if not isinstance(raw, Mapping):
        return None
    out: dict[str, dict[str, Any]] = {}
    for model, figures in raw.items():
        if not isinstance(figures, Mapping):
            return None
        part: dict[str, Any] = {k: _count(figures, k) for k in (*TOKEN_KEYS, HOUR)}
        cost = figures.get("cost")
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
            return None
        part["cost"] = float(cost)
        out[str(model)] = part
    return out


# What the registry keeps of a request's usage (the figures prices.request_usd reads).
_TALLY_USAGE = (*TOKEN_KEYS, "cache_creation", "inference_geo")


# In a kept tally, beside the requests (message ids, `msg_…`): when the last one came.
_TALLY_AT = "@at"


def _tally(requests: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """A turn's requests as the registry keeps them (JSON), with when the last came."""
    return {
        **{
            key: {"model": model, "usage": {k: usage[k] for k in _TALLY_USAGE if k in usage}}
            for key, (model, usage) in requests.items()
        },
        _TALLY_AT: time.time(),
    }


def _carried_at(raw: Any) -> float | None:
    """When a kept tally's last request came (any JSON: None unless a time not ahead)."""
    at = raw.get(_TALLY_AT) if isinstance(raw, Mapping) else None
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None
    return float(at) if 0 < at <= time.time() else None


def _carried(raw: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """A tally read back from the registry (any JSON): its well-formed requests."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, item in (raw if isinstance(raw, Mapping) else {}).items():
        if not isinstance(item, Mapping):
            continue
        model, usage = item.get("model"), item.get("usage")
        if isinstance(model, str) and isinstance(usage, Mapping):
            out[str(key)] = (model, dict(usage))
    return out


def _baseline(tokens: Mapping[str, Any]) -> dict[str, int]:
    return {k: _count(tokens, k) for k in TOKEN_KEYS}


def _usd(value: Any) -> float:
    """A running total kept with the totals (a registry row: any JSON), or 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def _copy(tokens: Mapping[str, int] | None) -> dict[str, int] | None:
    return None if tokens is None else dict(tokens)


def _with_baseline(totals: dict[str, Any], session: SessionCost) -> dict[str, Any]:
    """``totals`` with ``session``'s running tokens as the next turn's baseline, and no
    per-model one (what the CLI saved of it is not known). None, not left out: the
    supervisor updates its copy of the totals with these."""
    return {**totals, "session_tokens": _copy(session.tokens), "session_models": None}


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
