"""The validated roster: frozen objects the supervisor starts agents from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from orchestrator import names
from orchestrator.errors import RosterError
from orchestrator.redact import REDACTED, is_secret_name
from orchestrator.roster.work import DEFAULT_APPROVAL_TIMEOUT_S, Subagent, Workspace

if TYPE_CHECKING:
    from orchestrator.roster.queue_setting import QueueSetting

RESTART_POLICIES: tuple[str, ...] = ("always", "on-failure", "never")

# The values of claude_agent_sdk.types.PermissionMode (a Literal). Copied, not
# imported: importing the SDK costs most of a second, too much for `config`;
# tests/roster/test_roster.py checks this copy against the SDK's Literal.
PERMISSION_MODES: tuple[str, ...] = (
    "default",
    "acceptEdits",
    "plan",
    "bypassPermissions",
    "dontAsk",
    "auto",
)

# One rule with the queue's registry (orchestrator.names); re-exported here.
RESERVED_NAMES = names.RESERVED_NAMES
AGENT_NAME_RE = names.AGENT_NAME_RE

# The CLI retries a failed API call with backoff 0.5 s, 1 s, 2 s, ... (capped at 32 s): three
# retries bound a persistent 529 or 5xx to about 5 s per turn (its default, 10, is ~175 s).
DEFAULT_MODEL_RETRIES = 3

_K = TypeVar("_K")
_V = TypeVar("_V")


def is_secret_key(name: str) -> bool:
    """True for names like ANTHROPIC_API_KEY, GH_TOKEN, DB_PASSWORD: the logs' rule too."""
    return is_secret_name(name)


class FrozenDict(Mapping[_K, _V], Generic[_K, _V]):
    """An immutable, hashable, ordered mapping (frozen dataclasses need hashable fields)."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data: dict[_K, _V] = dict(items)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


class Env(FrozenDict[str, str]):
    """An agent's environment. Its repr hides secret-looking values: a logged spec leaks nothing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Env({redact_env(self)!r})"


@dataclass(frozen=True)
class Backoff:
    """Delay before a restart: doubles from ``initial_s`` up to ``max_s``.

    Jitter is the supervisor's business, not the roster's.
    """

    initial_s: float = 1.0
    max_s: float = 30.0


@dataclass(frozen=True)
class Budget:
    """A spending limit: dollars and/or tokens per window (see orchestrator/budget.py).

    ``per_s`` is the window's length in seconds (windows are aligned to the Unix
    epoch: ``1h`` is a clock hour, ``1d`` a UTC day); None means the whole run."""

    usd: float | None = None
    tokens: int | None = None
    per: str = "1d"  # as written: "1h", "1d", "run", "30s"...
    per_s: float | None = 86400.0

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "tokens": self.tokens, "per": self.per}


@dataclass(frozen=True)
class ModelPrice:
    """``prices:`` for one model: dollars per million tokens (see orchestrator/prices.py)."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes
    cache_read: float
    cache_write_1h: float | None = None  # 1-hour cache writes; None: 2 x input (the API's)

    @property
    def hour_write(self) -> float:
        """The 1-hour cache-write rate: as written, else twice the input rate."""
        if self.cache_write_1h is not None:
            return self.cache_write_1h
        return round(self.input * 2, 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_write": self.cache_write,
            "cache_write_1h": self.hour_write,
            "cache_read": self.cache_read,
        }


@dataclass(frozen=True)
class AgentSpec:
    """One agent, fully resolved: team defaults applied, paths absolute, prompt read."""

    name: str
    description: str
    prompt: str
    prompt_file: Path | None
    model: str | None
    fallback_model: str | None
    tools: tuple[str, ...]
    disallowed_tools: tuple[str, ...]
    permission_mode: str | None
    cwd: Path
    env: Mapping[str, str]
    max_turns: int | None
    max_budget_usd: float | None
    restart: str
    max_restarts: int
    restart_window_s: float
    backoff: Backoff
    depends_on: tuple[str, ...]
    can_message: tuple[str, ...] | None
    turn_timeout_s: float | None
    connect_timeout_s: float
    # The CLI's own retries of a failed API call (CLAUDE_CODE_MAX_RETRIES), per turn.
    model_retries: int = DEFAULT_MODEL_RETRIES
    # Tools run in the CLI's bubblewrap sandbox, which hides the team's files (issue 16 p. 10).
    sandbox: bool = True
    # Its commands see the supervisor's secrets (orchestrator/agent_env.py); off by default.
    inherit_secrets: bool = False
    # --- issue 11: workspaces, owned paths, approvals, subagents (roster/work.py) ---
    workspace: Workspace = field(default_factory=Workspace)
    owns: tuple[str, ...] | None = None  # None: no limit on where the file tools write
    approve: tuple[str, ...] = ()
    approver: str = "user"
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S
    subagents: Mapping[str, Subagent] = field(default_factory=FrozenDict)
    # Where the agent is defined. Not compared: an edit elsewhere in the file
    # shifts it, and that must not look like a change to hot reload.
    line: int = field(default=0, compare=False)
    # Budgets and context (orchestrator/budget.py, context.py). Not compared: a
    # reload applies them to the running session, no restart needed.
    budget: Budget | None = field(default=None, compare=False)
    context_window: int | None = field(default=None, compare=False)
    compact_at: float | None = field(default=0.8, compare=False)

    def may_message(self, recipient: str) -> bool:
        """Whether ``can_message`` lets this agent send to ``recipient``."""
        return self.can_message is None or recipient in self.can_message

    def to_dict(self) -> dict[str, Any]:
        """The agent as roster keys (durations in seconds), secret env values redacted."""
        source: dict[str, Any] = (
            {"prompt_file": str(self.prompt_file)} if self.prompt_file else {"prompt": self.prompt}
        )
        return {
            "description": self.description,
            **source,
            "model": self.model,
            "fallback_model": self.fallback_model,
            "tools": list(self.tools),
            "disallowed_tools": list(self.disallowed_tools),
            "permission_mode": self.permission_mode,
            "cwd": str(self.cwd),
            "env": redact_env(self.env),
            "max_turns": self.max_turns,
            "max_budget_usd": self.max_budget_usd,
            "restart": self.restart,
            "max_restarts": self.max_restarts,
            "restart_window": self.restart_window_s,
            "backoff": {"initial": self.backoff.initial_s, "max": self.backoff.max_s},
            "depends_on": list(self.depends_on),
            "can_message": None if self.can_message is None else list(self.can_message),
            "turn_timeout": self.turn_timeout_s,
            "connect_timeout": self.connect_timeout_s,
            "model_retries": self.model_retries,
            "budget": None if self.budget is None else self.budget.to_dict(),
            "context_window": self.context_window,
            "compact_at": self.compact_at,
            "sandbox": self.sandbox,
            "inherit_secrets": self.inherit_secrets,
            # --- issue 11 ---
            "workspace": self.workspace.to_value(),
            "owns": None if self.owns is None else list(self.owns),
            "approve": list(self.approve),
            "approver": self.approver,
            "approval_timeout": self.approval_timeout_s,
            "subagents": {n: s.to_dict() for n, s in self.subagents.items()},
        }


def redact_env(env: Mapping[str, Any]) -> dict[str, Any]:
    return {k: REDACTED if is_secret_key(k) else v for k, v in env.items()}


@dataclass(frozen=True)
class Roster:
    """A whole ``agents.yaml``: team settings and its agents in file order."""

    path: Path
    name: str
    database: Path
    logs: Path
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    # repr=False: the raw block may hold secrets in its env.
    defaults: Mapping[str, Any] = field(default_factory=FrozenDict, repr=False)
    agents: Mapping[str, AgentSpec] = field(default_factory=FrozenDict)
    queue: QueueSetting | None = None
    """``queue: nats://...``: the team's queue on NATS JetStream instead of ``database``."""
    budget: Budget | None = None  # team-wide: every agent's spend together
    # Per model name: what a turn cut off before the CLI priced it costs (orchestrator/prices.py).
    prices: Mapping[str, ModelPrice] = field(default_factory=FrozenDict)

    @property
    def folder(self) -> Path:
        """The roster's folder: relative paths in the file are resolved against it."""
        return self.path.parent

    def dependencies(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` plus everything they depend on, transitively, in file order.

        Raises RosterError for a name that is not an agent of this roster.
        """
        wanted: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in self.agents:
                known = ", ".join(self.agents) or "(none)"
                raise RosterError(
                    str(self.path), None, "agents", f"no agent named '{name}'; agents: {known}"
                )
            if name not in wanted:
                wanted.add(name)
                pending.extend(self.agents[name].depends_on)
        return tuple(n for n in self.agents if n in wanted)

    def start_layers(self, only: Iterable[str] | None = None) -> list[list[str]]:
        """Agents grouped by ``depends_on`` depth: each layer may start in parallel
        once the layers before it are ready. ``only`` limits the result to those
        agents and their dependencies (``up AGENT…``). Order within a layer is file order.
        """
        names = tuple(self.agents) if only is None else self.dependencies(only)
        placed: set[str] = set()
        layers: list[list[str]] = []
        remaining = list(names)
        while remaining:
            layer = [n for n in remaining if all(d in placed for d in self.agents[n].depends_on)]
            if (
                not layer
            ):  # a cycle; load_roster rejects these, so only a hand-built Roster gets here
                cycle = ", ".join(remaining)
                raise RosterError(
                    str(self.path), None, "depends_on", f"dependency cycle among: {cycle}"
                )
            layers.append(layer)
            placed.update(layer)
            remaining = [n for n in remaining if n not in placed]
        return layers

    def to_dict(self) -> dict[str, Any]:
        """The resolved roster for ``octy-orchestrate config``: defaults and
        interpolation applied, paths absolute, durations in seconds, secret-looking
        env values shown as '***'. Loading it back as YAML gives the same agents."""
        return {
            "name": self.name,
            "database": str(self.database),
            "logs": str(self.logs),
            "log_max_bytes": self.log_max_bytes,
            "log_backups": self.log_backups,
            "defaults": _thaw_defaults(self.defaults),
            "budget": None if self.budget is None else self.budget.to_dict(),
            **({"prices": {m: p.to_dict() for m, p in self.prices.items()}} if self.prices else {}),
            "agents": {name: spec.to_dict() for name, spec in self.agents.items()},
            **({} if self.queue is None else {"queue": self.queue.to_dict()}),
        }


def _thaw_defaults(defaults: Mapping[str, Any]) -> dict[str, Any]:
    plain = {k: thaw(v) for k, v in defaults.items()}
    env = plain.get("env")
    if isinstance(env, dict):
        plain["env"] = redact_env(env)
    return plain


def freeze(value: Any) -> Any:
    """Deep-freeze YAML values: mappings -> FrozenDict, lists -> tuples, str subclasses -> str."""
    if isinstance(value, Mapping):
        return FrozenDict((freeze(k), freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, str):
        return str(value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`, for JSON and YAML output."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
