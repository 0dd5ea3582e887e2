"""The team line's figures that `ps` rows leave out: the queue's counts, when each
message in flight was claimed, the registry's meta and heartbeats, and the budgets'
`spend` ledger. From the database on a read-only connection (as `ps` opens its own), or
through the queue's client for a NATS team. Called from `top`'s reader thread."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.mailbox import schema
from orchestrator.mailbox.backend import MailboxBackend
from orchestrator.mailbox.model import meta_of, number_column

# The team line's counts, one literal status per count: each is read from that status's
# partial index (messages_claim, messages_leased, messages_dead), where `status IN (...)
# GROUP BY status` scanned the whole table, done messages and all, every second.
COUNTED = ("pending", "leased", "dead")
COUNTS_SQL = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM messages WHERE status = '{s}' AND kind != 'response')" for s in COUNTED
)
# The budgets' ledger (orchestrator/budget.py): a row per turn, kept when the agent's
# registry row goes (a reload that removes it); read from the rows after the last seen.
SPEND_LAST_SQL = "SELECT coalesce(max(seq), 0) FROM spend"
# (Plain SQL may write text or 1e400 in a row: that row is left out, not the agent's sum.)
SPEND_SINCE_SQL = (
    "SELECT agent, sum(usd), sum(CASE WHEN estimated = 1 THEN usd ELSE 0.0 END) FROM spend "
    "WHERE seq > ? AND typeof(usd) = 'real' AND abs(usd) <= 1e308 GROUP BY agent"
)
# A ledger no supervisor of this version has opened yet has no `estimated` column.
SPEND_SINCE_OLD_SQL = SPEND_SINCE_SQL.replace(
    "sum(CASE WHEN estimated = 1 THEN usd ELSE 0.0 END)", "0.0"
)
LEASED_LIMIT = 100_000  # as ps_rows lists the messages in flight (one read of them: ReadOnce)
CLAIMED_SQL = (
    f"SELECT id, {number_column('claimed_at', 'NULL', time=True)} "
    "FROM messages WHERE status = 'leased'"
)


def from_database(database: Path, ledger: SpendSums) -> dict[str, Any]:
    """What `ps` rows leave out, in one read transaction."""
    # Read-only, as `ps` opens it: no lock that a writer waits for, no link followed.
    conn = schema.connect_readonly(database.absolute())
    try:
        counts = dict(zip(COUNTED, conn.execute(COUNTS_SQL).fetchone(), strict=True))
        spent = ledger.read(conn, database)
        claimed = dict(conn.execute(CLAIMED_SQL).fetchall())
        meta, beats = {}, []
        for name, meta_text, beat in conn.execute(
            f"SELECT name, meta, {number_column('heartbeat_at', 'NULL', time=True)} FROM agents"
        ):
            meta[name] = meta_of(meta_text) if isinstance(meta_text, str) else {}
            if beat is not None:
                beats.append(float(beat))
    finally:
        conn.close()
    return {
        "counts": counts,
        "spent": spent,
        "estimated": dict(ledger.estimated),
        "claimed": {k: v for k, v in claimed.items() if v is not None},
        "meta": meta,
        "last_heartbeat": max(beats) if beats else None,
    }


def from_queue(mailbox: MailboxBackend, database: Path, ledger: SpendSums) -> dict[str, Any]:
    """The same, through the queue's client (a NATS team), kept open between refreshes:
    counts (responses left out) from the client's tally, which reads only the messages
    written since the last refresh; claims from the leased messages (through their
    hints); the registry from the server; the ledger from this machine's database, where
    a supervisor that ran here keeps it. (Listing every message here cost 0.4 s of CPU
    a refresh at 2,000.)"""
    counts = mailbox.status_counts(COUNTED)
    claimed = {
        m.id: m.claimed_at
        for m in mailbox.list(status="leased", limit=LEASED_LIMIT)
        if m.claimed_at is not None
    }
    registry = mailbox.agents()
    beats = [a.heartbeat_at for a in registry if a.heartbeat_at is not None]
    return {
        "counts": counts,
        "spent": ledger.read_file(database),
        "estimated": dict(ledger.estimated),
        "claimed": claimed,
        "meta": {a.name: a.meta if isinstance(a.meta, dict) else {} for a in registry},
        "last_heartbeat": max(beats) if beats else None,
    }


@dataclass
class SpendSums:
    """Each agent's spend in the ledger, summed from the rows added since the last read
    (a full sum each second would scan every turn of 35 days)."""

    spent: dict[str, float] = field(default_factory=dict)
    # the part of each agent's spend the runner priced itself (a turn cut off before the
    # CLI priced it: prices.py); `ps` and `top` mark such a COST as an estimate
    estimated: dict[str, float] = field(default_factory=dict)
    upto: tuple[tuple[int, int] | None, int] = (None, 0)  # (the file, its last seq summed)

    def read(self, conn: sqlite3.Connection, database: Path) -> dict[str, float]:
        identity = schema.file_identity(database)
        try:
            (last,) = conn.execute(SPEND_LAST_SQL).fetchone()
            seen_file, seen = self.upto
            if identity != seen_file or int(last) < seen:  # another file, or emptied
                self.spent, self.estimated, seen = {}, {}, 0
            if int(last) != seen:
                for agent, usd, guessed in self._since(conn, seen):
                    # (a sum of finite rows may still overflow)
                    if isinstance(agent, str) and isinstance(usd, float) and math.isfinite(usd):
                        self.spent[agent] = self.spent.get(agent, 0.0) + usd
                        if isinstance(guessed, float) and math.isfinite(guessed) and guessed:
                            self.estimated[agent] = self.estimated.get(agent, 0.0) + guessed
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return {}  # no supervisor has counted a turn in this file yet
        self.upto = (identity, int(last))
        return dict(self.spent)

    @staticmethod
    def _since(conn: sqlite3.Connection, seen: int) -> list[tuple[object, object, object]]:
        try:
            return conn.execute(SPEND_SINCE_SQL, (seen,)).fetchall()
        except sqlite3.OperationalError as exc:
            if "estimated" not in str(exc):
                raise
            return conn.execute(SPEND_SINCE_OLD_SQL, (seen,)).fetchall()

    def read_file(self, database: Path) -> dict[str, float]:
        """From a database that may not exist (a NATS team's, on a machine that never
        ran its supervisor)."""
        if not database.exists():
            return {}
        conn = schema.connect_readonly(database.absolute())
        try:
            return self.read(conn, database)
        finally:
            conn.close()
