"""Roster keys for spend and context: ``budget`` (per agent, in ``defaults``, and
team-wide at the top level), ``context_window`` and ``compact_at``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from orchestrator.roster import _coerce as c
from orchestrator.roster._yaml import join
from orchestrator.roster.model import Budget

BUDGET_KEYS = ("usd", "tokens", "per")
DEFAULT_PER = "1d"
_DAYS = re.compile(r"\s*(\d+(?:\.\d*)?)\s*d\s*")
_PER_HELP = "use 1h, 1d, run, or another duration like 30m or 7d"


def parse_per(value: Any) -> float | None:
    """Seconds of a budget window, or None for ``run`` (the whole run of the team).

    Raises ValueError with the reason a user should read."""
    if isinstance(value, str) and value.strip() == "run":
        return None
    days = _DAYS.fullmatch(value) if isinstance(value, str) else None
    if days:
        try:
            seconds = c.check_seconds(float(days.group(1)) * 86400.0, value)
        except ValueError as exc:
            raise ValueError(f"{exc}; for a budget window {_PER_HELP}") from None
    else:
        try:
            seconds = c.parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; for a budget window {_PER_HELP}") from None
    if seconds < 1:
        raise ValueError(f"a budget window must be at least 1s; {_PER_HELP}")
    return seconds


def budget(value: Any, where: c.Where) -> Any:
    """``{usd: 5, tokens: 2000000, per: 1d}``; null means no budget."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return c.wrong_type("a mapping like {usd: 5, per: 1d}", value, where)
    parts: dict[str, Any] = {}
    for key, item in value.items():
        line = value.line_of(key) if hasattr(value, "line_of") else where.line
        sub = replace(where, key=join(where.key, str(key)), line=line)
        if key not in BUDGET_KEYS:
            valid = f"; valid keys are {', '.join(BUDGET_KEYS)}"
            hint = c.did_you_mean(str(key), BUDGET_KEYS) or valid
            parts[str(key)] = sub.error(f"unknown key '{key}'{hint}")
        elif key == "usd":
            parts["usd"] = c.positive_number(item, sub)
        elif key == "tokens":
            parts["tokens"] = c.integer(1, optional=True)(item, sub)
        else:
            try:
                parts["per_s"] = parse_per(item)
                parts["per"] = str(item).strip()
            except ValueError as exc:
                parts["per"] = sub.error(str(exc))
    if any(v is c.INVALID for v in parts.values()):
        return c.INVALID
    if parts.get("usd") is None and parts.get("tokens") is None:
        return where.error("a budget needs 'usd', 'tokens' or both (write null for no budget)")
    per = parts.get("per", DEFAULT_PER)
    return Budget(
        usd=parts.get("usd"),
        tokens=parts.get("tokens"),
        per=per,
        per_s=parts["per_s"] if "per_s" in parts else parse_per(DEFAULT_PER),
    )


def compact_at(value: Any, where: c.Where) -> Any:
    """A share of the context window between 0 and 1, or null to never compact."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return c.wrong_type("a fraction like 0.8, or null to never compact", value, where)
    if not 0 < value <= 1:
        return where.error(f"must be above 0 and at most 1 (a share of the window), got {value:g}")
    return float(value)


AGENT_FIELDS: Mapping[str, c.Coercer] = {
    "budget": budget,
    "context_window": c.integer(1000, optional=True),
    "compact_at": compact_at,
}
BUILT_IN: Mapping[str, Any] = {"budget": None, "context_window": None, "compact_at": 0.8}
