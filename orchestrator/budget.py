"""Budgets: what each agent and the team spent in the current window, kept in the database.

Every turn's cost and tokens are written to the ``spend`` table of the team's
database (the same file as the queue), so a restart of an agent or of the
supervisor does not forget them. A budget's window is fixed, aligned to the
Unix epoch: ``per: 1h`` counts from the top of the clock hour (UTC), ``1d``
from UTC midnight, any other duration from the last multiple of it; ``run``
counts from the moment the supervisor started (``up``). Fixed windows roll
over at a time that can be said (``ps`` shows it), unlike a sliding one.

Tokens counted against a budget are all of a turn's: input, output, cache
writes and cache reads (``TurnUsage.tokens`` of :mod:`orchestrator.usage`).

The policy (warn at 80 %, pause at 100 %, run again on roll-over, a raised
budget or ``resume``) is :class:`orchestrator.budget_watch.BudgetWatch`.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import errors
from orchestrator.mailbox.schema import file_identity
from orchestrator.roster.model import Budget

WARN_AT = 0.8
TEAM = "@team"  # the scope of the team-wide budget (no agent name starts with "@")
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    seq   INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    at    REAL NOT NULL,            -- unix seconds, when the turn ended
    usd   REAL NOT NULL DEFAULT 0,  -- this turn's cost
    input_tokens                INTEGER NOT NULL DEFAULT 0,
    output_tokens               INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0  -- 1: usd is the runner's estimate (prices.py)
);
CREATE INDEX IF NOT EXISTS spend_at ON spend (at, agent);
-- per window: warned already (warned/SCOPE) and overrides by `resume` (override/AGENT/SCOPE);
-- the value is the start of the window the mark belongs to.
CREATE TABLE IF NOT EXISTS budget_marks (key TEXT PRIMARY KEY, window_start REAL NOT NULL);
"""


@dataclass(frozen=True)
class Spent:
    usd: float = 0.0
    tokens: int = 0


def turn_spend(data: Mapping[str, Any]) -> tuple[float, dict[str, int]]:
    """A ``turn`` event's cost and token figures (missing ones count 0)."""
    usd = data.get("cost_usd")
    tokens = {k: data.get(k) for k in TOKEN_KEYS}
    return (
        float(usd) if isinstance(usd, int | float) and math.isfinite(usd) and usd > 0 else 0.0,
        {
            k: v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0
            for k, v in tokens.items()
        },
    )


def window(budget: Budget, now: float, run_started: float) -> tuple[float, float | None]:
    """(start, end) of the window ``now`` falls in; end is None for ``per: run``."""
    if budget.per_s is None:
        return run_started, None
    start = math.floor(now / budget.per_s) * budget.per_s
    return start, start + budget.per_s


@dataclass(frozen=True)
class Standing:
    """One budget against what was spent in its current window."""

    scope: str  # an agent's name, or TEAM
    budget: Budget
    spent: Spent
    start: float
    end: float | None

    @property
    def share(self) -> float:
        shares = [0.0]
        if self.budget.usd:
            # To nine places: a sum of REALs misses by a rounding error (ten turns of $0.10
            # add up to 0.9999999999999999, eight to 0.7999999999999999), which kept an
            # agent from pausing at exactly $1 and from warning at exactly 80 %.
            shares.append(round(self.spent.usd / self.budget.usd, 9))
        if self.budget.tokens:
            shares.append(self.spent.tokens / self.budget.tokens)
        return max(shares)

    @property
    def over(self) -> bool:
        return self.share >= 1.0

    @property
    def warn(self) -> bool:
        return self.share >= WARN_AT

    def owner(self) -> str:
        return "the team's budget" if self.scope == TEAM else f"{self.scope}'s budget"

    def describe(self) -> str:
        """``spent $0.0132 of $0.0100, 1,200 of 1,000 tokens per 1h (resets 15:00:00 UTC)``."""
        parts = []
        if self.budget.usd:
            parts.append(f"${self.spent.usd:.4f} of ${self.budget.usd:.4f}")
        if self.budget.tokens:
            parts.append(f"{self.spent.tokens:,} of {self.budget.tokens:,} tokens")
        per = "for this run" if self.end is None else f"per {self.budget.per}"
        return f"spent {', '.join(parts)} {per} ({self.resets()})"

    def resets(self) -> str:
        if self.end is None:
            return "until the team is brought up again"
        return "resets " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.end))

    def figures(self) -> dict[str, Any]:
        """What ``ps --json`` and ``top`` read from the registry's meta."""
        return {
            "scope": "team" if self.scope == TEAM else "agent",
            "usd": round(self.spent.usd, 6),
            "usd_limit": self.budget.usd,
            "tokens": self.spent.tokens,
            "tokens_limit": self.budget.tokens,
            "per": self.budget.per,
            "window_start": self.start,
            "resets_at": self.end,
            "share": round(self.share, 4),
        }


class Ledger:
    """The ``spend`` and ``budget_marks`` tables. Sync; call it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # mode=rw: the queue created the file (0600, checked folders); never create one here.
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=rw"
        self._conn = sqlite3.connect(uri, uri=True, timeout=10.0, check_same_thread=False)
        self._identity = file_identity(path)
        self._lock = threading.Lock()
        with self._tx(write=True) as conn:
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(spend)")}
            if "estimated" not in columns:  # a database from before estimates
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                    conn.execute(
                        "ALTER TABLE spend ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0"
                    )

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            if write and file_identity(self.path) != self._identity:
                # Another file took the path (see Mailbox.check_file): write nothing more.
                raise errors.DatabaseReplaced(
                    str(self.path), self._identity or (0, 0), file_identity(self.path)
                )
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(
        self,
        agent: str,
        usd: float,
        tokens: Mapping[str, int],
        at: float,
        *,
        estimated: bool = False,
    ) -> None:
        """One turn's spend; ``estimated``: ``usd`` is priced by the runner, not the CLI."""
        with self._tx(write=True) as conn:
            conn.execute(
                f"INSERT INTO spend (agent, at, usd, {', '.join(TOKEN_KEYS)}, estimated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (agent, at, usd, *(int(tokens.get(k, 0)) for k in TOKEN_KEYS), int(estimated)),
            )

    def spent(self, agent: str | None, since: float) -> Spent:
        """What ``agent`` (or every agent, for None) spent from ``since`` on."""
        where, args = (
            ("at >= ?", [since]) if agent is None else ("at >= ? AND agent = ?", [since, agent])
        )
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT coalesce(sum(usd), 0), coalesce(sum({' + '.join(TOKEN_KEYS)}), 0) "
                f"FROM spend WHERE {where}",
                args,
            ).fetchone()
        return Spent(float(row[0]), int(row[1]))

    def mark(self, key: str) -> float | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT window_start FROM budget_marks WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else float(row[0])

    def marks(self) -> dict[str, float]:
        """Every mark (a few per agent: the table stays small)."""
        with self._tx() as conn:
            rows = conn.execute("SELECT key, window_start FROM budget_marks").fetchall()
        return {str(k): float(v) for k, v in rows}

    def set_mark(self, key: str, window_start: float) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO budget_marks (key, window_start) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start",
                (key, window_start),
            )

    def prune(self, before: float) -> int:
        """Forget turns older than every window still counted."""
        with self._tx(write=True) as conn:
            return conn.execute("DELETE FROM spend WHERE at < ?", (before,)).rowcount

    def standing(self, scope: str, budget: Budget, now: float, run_started: float) -> Standing:
        start, end = window(budget, now, run_started)
        spent = self.spent(None if scope == TEAM else scope, start)
        return Standing(scope, budget, spent, start, end)
