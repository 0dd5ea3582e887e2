"""An agent's row in the registry carries a ``meta`` document: what the supervisor
records of it (start time, restarts, totals, the model's trouble) for `ps`, `top` and
the next `up` to read.

:class:`AgentMeta` names those keys once, for both sides. The writers patch the
document with :meth:`AgentMeta.record` (the registry merges a patch into what is
there, so each writer sends only its keys); the readers take it whole with
:meth:`AgentMeta.read`, which is tolerant: the row may come from an older version, a
foreign participant or a hand-edited database, so an unknown key is ignored and a
value of the wrong type reads as the field's default, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

RESUME_AT: Final = "resume_at"  # the end of the agent's last good turn (a message uuid)
MODEL_NOTE: Final = "model_error"  # the model's last trouble, shown by `ps`
# The supervisor's own row: the SDK is imported and agents launch (`up -d` waits for it).
LAUNCHING: Final = "launching"
# The supervisor's row: when and how the NATS server lost the team's bucket, for `ps`.
QUEUE_LOST: Final = "queue_lost"
# The keys of an agent's totals (they survive restarts and `up`; orchestrator.usage).
TOTAL_KEYS: Final = (
    "session_id",
    "session_cost_usd",
    "session_tokens",
    "session_models",
    "session_live",
    "session_resumed_usd",
    "session_resumed_tokens",
    "turn_tally",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cost_usd",
    "last_turn_cost_usd",
)


@dataclass(frozen=True)
class AgentMeta:
    supervised: bool = False  # the supervisor keeps this row (`unregister` refuses it)
    started_at: float | None = None  # wall-clock start of the current session
    restarts: int = 0
    pid_start: int | None = None  # the claude process's start time (procid), with its pid
    host: str | None = None  # the machine that runs it (socket.gethostname()), with its pid
    blocked_reason: str | None = None  # what a blocked agent waits for (an approval)
    waiting_for: str | None = None  # what a waiting agent waits for now (depends.waits_for)
    model_error: str | None = None
    resume_at: str | None = None
    # The agent's totals across turns, sessions and `up`s (orchestrator.usage.TOTAL_KEYS).
    session_id: str | None = None
    session_cost_usd: float = 0.0
    session_tokens: dict[str, Any] | None = None  # the CLI's running token totals (usage.py)
    session_models: dict[str, Any] | None = None  # and per model, with its dollars (spend.py)
    # A CLI runs the session and has not been closed: killed with its supervisor, it saves
    # nothing, and resumed it continues the figures it resumed with, these (spend.py).
    session_live: bool = False
    session_resumed_usd: float = 0.0
    session_resumed_tokens: dict[str, Any] | None = None
    # The model requests of the turn under way (spend.py): charged by the next `up` if the
    # supervisor dies before it counts them.
    turn_tally: dict[str, Any] | None = None
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0
    last_turn_cost_usd: float = 0.0
    # Documents of their own: budget_watch's spend figures, context.py's window use.
    budget: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    @classmethod
    def read(cls, raw: object) -> AgentMeta:
        """The meta of a registry row, whatever it holds (see the module's docstring)."""
        if not isinstance(raw, Mapping):
            return cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in raw:
                value = _checked(f.type, raw[f.name])
                if value is not _BAD:
                    values[f.name] = value
        return cls(**values)

    @staticmethod
    def record(stats: Mapping[str, Any], **named: Any) -> dict[str, Any]:
        """A patch of the meta: ``stats`` (what the supervisor keeps of the agent) with
        ``named`` fields; a key that is not a field is a bug in the writer."""
        patch = {**stats, **named}
        unknown = sorted(set(patch) - _NAMES)
        if unknown:
            raise TypeError(f"not AgentMeta fields: {', '.join(unknown)}")
        return patch

    @staticmethod
    def carried(raw: object) -> dict[str, Any]:
        """What a new `up` keeps of a row's meta for the agent's next session: its totals
        and where to resume, those present and well-formed."""
        known = AgentMeta.read(raw)
        present = raw if isinstance(raw, Mapping) else {}
        return {k: getattr(known, k) for k in (*TOTAL_KEYS, RESUME_AT) if k in present}

    @property
    def tokens(self) -> int:
        """Input and output tokens, as `ps` shows them."""
        return self.input_tokens + self.output_tokens


_NAMES: Final = frozenset(f.name for f in fields(AgentMeta))
_BAD: Final = object()


def _checked(kind: object, value: object) -> object:
    """``value`` if it fits the field's annotation (a string under
    ``from __future__ import annotations``), else _BAD."""
    optional = isinstance(kind, str) and kind.endswith(" | None")
    base = kind.removesuffix(" | None") if isinstance(kind, str) else kind
    if value is None:
        return None if optional else _BAD
    if base == "bool":
        return bool(value)  # truthiness, as the registry's own `supervised` check reads it
    if base == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if base == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else _BAD
        return _BAD
    if base == "str":
        return value if isinstance(value, str) else _BAD
    if base == "dict[str, Any]":
        return value if isinstance(value, dict) else _BAD
    raise TypeError(f"AgentMeta field of unhandled type {kind!r}")


__all__ = ["MODEL_NOTE", "RESUME_AT", "TOTAL_KEYS", "AgentMeta"]
