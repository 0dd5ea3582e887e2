"""What `top` shows, read the way `ps`, `logs` and `trace` read it: the team's queue
(its database, or its NATS JetStream server for a roster with `queue: nats://...`) and
its log files. No Textual here: the app calls this from its reader thread.

Rows come from :func:`orchestrator.cli.team_verbs.ps_rows` (the same figures as `ps`,
with whatever fields `ps` learns later); the team line adds counts, claims and the
spend ledger (:mod:`orchestrator.tui.figures`); events come from
:class:`orchestrator.logview.FileFollower` (what `logs -f` uses), traces from
:mod:`orchestrator.trace`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orchestrator import errors, logview, trace
from orchestrator.cli import common
from orchestrator.cli.budget_verbs import (
    budget_share,
    context_share,
    held_reason,
    paused_reason,
)
from orchestrator.cli.common import DEFAULT_ROSTER, CliFailure
from orchestrator.cli.log_verbs import Places, places_of
from orchestrator.cli.team_verbs import ps_rows
from orchestrator.control import send_command
from orchestrator.lockfile import holder_pid
from orchestrator.logconfig import SUPERVISOR_LOG, render_line
from orchestrator.mailbox import SUPERVISOR, USER
from orchestrator.mailbox.opening import QueuePlace, open_sync
from orchestrator.names import AGENT_NAME_RE, MAX_NAME_LEN
from orchestrator.redact import for_people
from orchestrator.tui import figures
from orchestrator.tui.procstat import ProcReader

if TYPE_CHECKING:
    from orchestrator.mailbox.backend import MailboxBackend
    from orchestrator.mailbox.model import AgentInfo, Message
    from orchestrator.roster.queue_setting import QueueSetting

EVENT_TAIL = 200  # events shown when `top` starts, like `logs -f` shows the last few
FIELD_WIDTH = 120
RSS_STEP = 0.02  # see TeamSource._steady_rss
# Where a short "why" beside the state may be, first found wins: a `reason` in the `ps`
# row or the registry meta (blocked on an approval, say), else the model's last trouble
# (`model_error`). Whatever the supervisor records under these shows up without a change.
REASON_KEYS = ("reason", "model_error")


def clean(text: str) -> str:
    """``text`` safe to draw: newlines as ⏎; the rest through the one filter for what people
    read (orchestrator.redact.for_people): control characters as ``\\xNN``, secrets ***."""
    return for_people(text.replace("\n", "⏎"))


def name_refused(name: str) -> str | None:
    """Why ``l``, ``t``, ``r``, ``s`` and ``S`` will not act on a registry name, or None.
    The registry is plain SQL that any process may write: a name outside the roster's rule
    could hold a NUL (the log's path fails), ``../`` (another file read as the log) or
    terminal escapes, and no supervisor would run such an agent anyway."""
    if AGENT_NAME_RE.fullmatch(name):
        return None
    return (
        f"not an agent name: '{clean(name)}' (a name is 1-{MAX_NAME_LEN} of a-z 0-9 "
        "- _, as in agents.yaml; something other than the supervisor wrote this row)"
    )


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _clean_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_value(v) for v in value]
    return value


@dataclass(frozen=True)
class AgentRow:
    name: str
    state: str  # whatever the registry holds: new states (paused, blocked…) show as they are
    reason: str | None  # a short why beside the state (backoff, model error…), if recorded
    pid: int | None
    uptime_s: float | None
    restarts: int
    pending: int
    in_flight: tuple[str, ...]  # ids of the messages it holds
    in_flight_age_s: float | None  # how long the oldest of them has been held
    turns: int
    tokens: int
    cost_usd: float
    cpu_pct: float | None
    rss_bytes: int | None
    budget_share: float | None = None  # spend / budget, the nearer of agent and team budgets
    cost_estimated: bool = False  # COST holds dollars the runner priced (a cut-off turn)
    context_share: float | None = None  # context in use / the model's window


@dataclass(frozen=True)
class TeamStatus:
    name: str
    database: Path
    logs: Path
    supervisor_pid: int | None  # None: no supervisor holds the team
    supervisor_uptime_s: float | None
    last_known_at: float | None  # newest heartbeat in the registry (epoch s)
    pending: int
    in_flight: int
    dead: int
    cost_usd: float
    roster_warning: str | None  # agents.yaml on disk is invalid (the team runs its last good)
    queue: str | None = None  # a NATS team's servers and bucket; None: the database's queue
    cost_estimated: bool = False  # part of cost_usd is the runner's estimate (`~$`)

    @property
    def live(self) -> bool:
        """Whether the registry's states are current: a supervisor holds the team here,
        or the team is on NATS, where supervisors elsewhere keep the registry (as `ps`)."""
        return self.supervisor_pid is not None or self.queue is not None


@dataclass(frozen=True)
class Snapshot:
    team: TeamStatus
    agents: tuple[AgentRow, ...]
    taken_at: float


@dataclass(frozen=True)
class Event:
    """One log event, cleaned, with the names it concerns (for the filter)."""

    line: str  # rendered as `logs` renders it, with ANSI colour for the agent's name
    names: frozenset[str]


@dataclass
class TeamSource:
    """Everything `top` reads about one team. ``snapshot`` and ``events`` keep state (CPU
    samples, the log follower): one thread calls them, the app's reader. ``command``,
    ``request_of`` and ``trace_lines`` use only the paths and may run beside it."""

    database: Path
    logs: Path
    roster: Path | None = None
    roster_warning: str | None = None
    procs: ProcReader = field(default_factory=ProcReader)
    team_name: str | None = None
    # The roster's `queue: nats://...`: messages and the registry are there, and the
    # database is only this machine's (the supervisor's lock, the spend ledger).
    queue: QueueSetting | None = None
    _events: logview.FileFollower | None = None
    _rss: dict[int, int] = field(default_factory=dict)
    _roster_stamp: tuple[int, int] | None = None
    _ledger: figures.SpendSums = field(default_factory=figures.SpendSums)
    _client: MailboxBackend | None = None  # a NATS team's queue, kept open (_queue_client)
    _client_stack: contextlib.ExitStack | None = None

    @classmethod
    def resolve(
        cls, roster: Path | None, *, database: Path | None = None, logs: Path | None = None
    ) -> TeamSource:
        """Find the team as `logs` and `trace` do: the roster named, else ./agents.yaml,
        read leniently when invalid (its warning is kept for the team line)."""
        places, warning = _places(roster)
        queue = None if database is not None or warning else _nats_queue(roster)
        source = cls(database or places.database, logs or places.logs, roster, warning)
        source.queue = queue
        source._roster_stamp = source._stamp()
        return source

    @property
    def place(self) -> QueuePlace:
        """Where the queue and the registry are, as `ps` and `trace` find them."""
        return self.database if self.queue is None else self.queue

    def queue_label(self) -> str | None:
        if self.queue is None:
            return None
        from orchestrator.mailbox.nats import NatsConfig  # noqa: PLC0415 - NATS teams only

        config = NatsConfig.from_setting(self.queue)
        return clean(f"NATS {config.display}#{config.namespace}")

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = (self.roster or Path(DEFAULT_ROSTER)).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _check_roster(self) -> None:
        """An edit of agents.yaml while top runs: say at once whether it is valid (the
        team watched stays the same one)."""
        stamp = self._stamp()
        if stamp != self._roster_stamp:
            self._roster_stamp = stamp
            try:
                self.roster_warning = _places(self.roster)[1]
            except CliFailure as failure:  # deleted or unreadable now: keep watching the team
                self.roster_warning = clean(failure.message)

    # --- the table and the team line ---------------------------------------------

    def snapshot(self) -> Snapshot:
        self._check_roster()
        now = time.time()
        sup = holder_pid(self.database)
        if self.queue is None:
            rows = ps_rows(self.place)
            extra = figures.from_database(self.database, self._ledger)
        else:
            mailbox = cast("MailboxBackend", ReadOnce(self._queue_client(self.queue)))
            rows = ps_rows(self.queue, mailbox=mailbox)
            extra = figures.from_queue(mailbox, self.database, self._ledger)
        spent: dict[str, float] = extra["spent"]
        agents = []
        for r in rows:
            meta = extra["meta"].get(r["name"], {})
            reason = _reason(r, meta)
            claimed = [extra["claimed"][m] for m in r["in_flight"] if m in extra["claimed"]]
            # No supervisor: its pids are history. A pid `ps` finds is not the agent's
            # process on this machine (another machine's, on a NATS team; reused since):
            # neither shown nor sampled, or another process's CPU and memory would be.
            pid = r["pid"] if sup and r.get("pid_here", True) else None
            proc = self.procs.sample(pid)
            agents.append(
                AgentRow(
                    name=r["name"],
                    state=str(r["state"]),
                    reason=reason,
                    pid=pid,
                    uptime_s=r["uptime_s"] if sup else None,
                    restarts=int(r["restarts"] or 0),
                    pending=int(r["pending"]),
                    in_flight=tuple(r["in_flight"]),
                    in_flight_age_s=now - min(claimed) if claimed else None,
                    turns=int(r["turns"] or 0),
                    tokens=int(r["tokens"] or 0),
                    # The registry's total is the agent's whole life, but a reload that
                    # removes the agent drops it; the ledger keeps every turn of the
                    # last 35 days or more (on this machine). Both can only fall short:
                    # the larger is the nearer.
                    cost_usd=max(float(r["cost_usd"] or 0.0), spent.get(r["name"], 0.0)),
                    cpu_pct=proc.cpu_pct,
                    rss_bytes=self._steady_rss(pid, proc.rss_bytes),
                    budget_share=budget_share(r),
                    context_share=context_share(r),
                    cost_estimated=extra["estimated"].get(r["name"], 0.0) > 0,
                )
            )
        shown = {a.name for a in agents}
        live = {a.pid for a in agents if a.pid}
        self.procs.forget_except(live)
        self._rss = {p: v for p, v in self._rss.items() if p in live}
        sup_proc = self.procs.sample(sup) if sup else None
        team = TeamStatus(
            name=self.team_name or self._name_from_registry(extra) or self.database.parent.name,
            database=self.database,
            logs=self.logs,
            supervisor_pid=sup,
            supervisor_uptime_s=(
                now - sup_proc.started_at if sup_proc and sup_proc.started_at else None
            ),
            last_known_at=extra["last_heartbeat"],
            pending=extra["counts"].get("pending", 0),
            in_flight=extra["counts"].get("leased", 0),
            dead=extra["counts"].get("dead", 0),
            # and the turns of agents no longer in the registry
            cost_usd=sum(a.cost_usd for a in agents)
            + sum(v for k, v in spent.items() if k not in shown),
            # an agent's estimate, or one of an agent no longer in the registry, is in it
            cost_estimated=any(a.cost_estimated for a in agents)
            or any(v > 0 for k, v in extra["estimated"].items() if k not in shown),
            roster_warning=self.roster_warning,
            queue=self.queue_label(),
        )
        return Snapshot(team, tuple(agents), now)

    def _queue_client(self, queue: QueueSetting) -> MailboxBackend:
        """A NATS team's queue, opened at the first refresh and kept: a connection per
        refresh cost more than the reads, and the client's tally of statuses
        (``status_counts``) reads only what changed since the last refresh. The client
        reconnects by itself; while it is cut off a refresh fails at once (READ FAILED
        on the team line) rather than after each read's 15 s of retries."""
        if self._client is None:
            stack = contextlib.ExitStack()
            self._client = stack.enter_context(open_sync(queue, readonly=True, quiet=True))
            self._client_stack = stack
        nc = getattr(self._client, "nc", None)
        if nc is not None and not nc.is_connected:
            raise errors.QueueUnavailable(
                clean(str(self._client.path)),
                "the connection to the NATS server is lost",
                "reconnecting by itself",
            )
        return self._client

    def _steady_rss(self, pid: int | None, rss: int | None) -> int | None:
        """The memory shown moves only when it changes by more than RSS_STEP: a claude
        process's resident size shifts by a few pages every second, and each shift would
        redraw the table (an idle `top` then costs half a core-percent more)."""
        if pid is None or rss is None:
            return rss
        shown = self._rss.get(pid)
        if shown is None or abs(rss - shown) > RSS_STEP * shown:
            self._rss[pid] = shown = rss
        return shown

    def _name_from_registry(self, extra: Mapping[str, Any]) -> str | None:
        """The team's name as the supervisor recorded it (its log says it too, but a
        rotated log no longer does); from an older supervisor, the roster's folder."""
        meta = extra["meta"].get(SUPERVISOR, {})
        name, roster = meta.get("team"), meta.get("roster")
        if isinstance(name, str) and name:
            return clean(name)
        return clean(Path(roster).parent.name) if isinstance(roster, str) and roster else None

    # --- events --------------------------------------------------------------------

    def events(self) -> list[Event]:
        """The last EVENT_TAIL events on the first call, then what was written since."""
        if self._events is None:
            self._events = logview.FileFollower(
                self.logs / f"{SUPERVISOR_LOG}{logview.SUFFIX}", SUPERVISOR_LOG
            )
            lines = self._events.history()
            self._learn_name(lines)
            lines = lines[-EVENT_TAIL:]
        else:
            lines = self._events.poll()
            self._learn_name(lines)
        return [render_event(line) for line in lines]

    def _learn_name(self, lines: list[logview.LogLine]) -> None:
        for line in reversed(lines):
            if '"supervisor_started"' in line.raw and line.event:
                name = line.event.get("team")
                if isinstance(name, str) and name:
                    self.team_name = clean(name)
                    return

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        stack, self._client, self._client_stack = self._client_stack, None, None
        if stack is not None:
            with contextlib.suppress(errors.OrchestratorError):  # a server already gone
                stack.close()

    # --- views on one agent ----------------------------------------------------------

    def agent_log(self, agent: str) -> logview.FileFollower:
        """A follower of the agent's own log file (``l``); the caller closes it."""
        refused = name_refused(agent)
        if refused:  # never a path built from a name outside the rule
            raise errors.UnsafePath(clean(agent), "agent log", "not an agent name")
        return logview.FileFollower(self.logs / f"{agent}{logview.SUFFIX}", agent)

    def request_of(self, row: AgentRow) -> str | None:
        """The request ``t`` traces for an agent: the one it is working on, else the
        newest request it received or sent."""
        if row.in_flight:
            return row.in_flight[0]
        with open_sync(self.place, readonly=True, create=False, quiet=True) as mailbox:
            found = [
                m
                for m in mailbox.list(recipient=row.name, limit=50)
                + mailbox.list(sender=row.name, limit=50)
                if m.kind in ("request", "notice")
            ]
        return max(found, key=lambda m: m.created_at).id if found else None

    def trace_lines(self, message_id: str) -> list[str]:
        found = trace.load_trace(self.place, message_id, self.logs)
        return [clean(line) for line in trace.render_timeline(found, colour=False, width=0)]

    def command(self, command: str, agent: str) -> str:
        """restart / stop / start through the same path as the CLI's verbs; the outcome
        as one line for the status bar."""
        shown = clean(agent)
        refused = name_refused(agent)
        if refused:
            return f"{command} {shown}: {refused}"
        try:
            result = send_command(
                self.database, command, agent=agent, timeout_s=60.0, queue=self.queue
            )
        except errors.SupervisorNotRunning:
            if self.queue is not None:  # commands go to this machine's supervisor
                return f"{command} {shown}: no supervisor of this team runs on this machine"
            return f"{command} {shown}: no supervisor is running this team (start it with `up`)"
        except errors.OrchestratorError as exc:
            return f"{command} {shown}: {clean(str(exc))}"
        if not result.get("ok"):
            return f"{command} {shown}: {clean(str(result.get('message')))}"
        return f"{command} {shown}: ok"


class ReadOnce:
    """A NATS team's queue for one refresh: the registry and the messages in flight are
    read once (a request per agent and per open message), though both the rows
    (``ps_rows``) and the team line (``figures.from_queue``) use them."""

    def __init__(self, mailbox: MailboxBackend) -> None:
        self._mailbox = mailbox
        self._agents: list[AgentInfo] | None = None
        self._lists: dict[tuple[tuple[str, Any], ...], list[Message]] = {}

    def agents(self) -> list[AgentInfo]:
        if self._agents is None:
            self._agents = self._mailbox.agents()
        return self._agents

    def list(self, **filters: Any) -> list[Message]:
        key = tuple(sorted(filters.items()))
        if key not in self._lists:
            self._lists[key] = self._mailbox.list(**filters)
        return self._lists[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mailbox, name)


def _reason(row: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    for key in REASON_KEYS:
        for found in (row.get(key), meta.get(key)):
            if found:
                return clean(str(found))
    if row.get("state") == "paused":  # by a budget: whose (budget_watch.py's figures)
        return paused_reason(meta.get("budget"))
    if row.get("state") == "ready":  # held for the others' turns (budget_watch.hold)
        return held_reason(meta.get("budget"))
    return None


def _places(roster: Path | None) -> tuple[Places, str | None]:
    """Where the team is, as `logs` and `trace` find it, and the warning they would print
    about an invalid roster (kept for the team line instead of being printed). A roster
    named with -f that cannot be read at all is CliFailure, as for `logs`."""
    warning = io.StringIO()
    with contextlib.redirect_stderr(warning):
        places = places_of(roster)
    text = warning.getvalue().strip().removeprefix("octy-orchestrate: ")
    if text:  # the supervisor, if one runs, keeps the roster it last loaded
        text += "; a running team keeps its last good roster"
    return places, clean(text) or None


def _nats_queue(roster: Path | None) -> QueueSetting | None:
    """The roster's NATS queue, found as `ps` and `trace` find it; None for SQLite (or
    a roster that cannot say: an invalid one names only its folders)."""
    with contextlib.redirect_stderr(io.StringIO()):  # _places has said what there is to say
        try:
            place = common.resolve_place(argparse.Namespace(db=None, file=roster), roster)
        except CliFailure:
            return None
    return None if isinstance(place, Path) else place


def render_event(line: logview.LogLine) -> Event:
    event = line.event
    if event is None:
        return Event(clean(line.raw), frozenset())
    cleaned = {str(k): _clean_value(v) for k, v in event.items()}
    names = {
        v
        for k in ("agent", "to", "sender", "target")
        if isinstance(v := cleaned.get(k), str) and v not in (USER,)
    }
    return Event(
        render_line(cleaned, colour=True, width=FIELD_WIDTH),
        frozenset(names or {SUPERVISOR_LOG}),
    )
