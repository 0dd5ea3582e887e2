"""What a roster edit changes, agent by agent (hot reload applies this)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.roster.model import Roster

TEAM_SETTINGS = ("name", "database", "logs", "log_max_bytes", "log_backups", "queue")


@dataclass(frozen=True)
class RosterDiff:
    """Agent names by what happened to them; each tuple in file order.

    ``changed`` means any resolved setting differs (inherited defaults and the
    prompt file's text included); a shift in line numbers alone is not a change.
    ``team_changed`` names team-level settings that differ (a running
    supervisor cannot move its database: it reports those instead of applying them).
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    team_changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to apply."""
        return not (self.added or self.removed or self.changed or self.team_changed)


def diff_rosters(old: Roster, new: Roster) -> RosterDiff:
    """Compare two loads of a roster (old: running, new: just read)."""
    return RosterDiff(
        added=tuple(n for n in new.agents if n not in old.agents),
        removed=tuple(n for n in old.agents if n not in new.agents),
        changed=tuple(n for n in new.agents if n in old.agents and new.agents[n] != old.agents[n]),
        unchanged=tuple(
            n for n in new.agents if n in old.agents and new.agents[n] == old.agents[n]
        ),
        team_changed=tuple(k for k in TEAM_SETTINGS if getattr(old, k) != getattr(new, k)),
    )
