"""The team-wide ``prices:`` key: dollars per million tokens per model name, for models the
bundled CLI does not know (a gateway's names, a newer model) or priced otherwise. Read
to price a turn cut off before the CLI priced it (orchestrator/prices.py) and each turn's
part spent on such a model (orchestrator/spend.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from orchestrator.redact import escape_controls
from orchestrator.roster import _coerce as c
from orchestrator.roster._yaml import join
from orchestrator.roster.model import FrozenDict, ModelPrice

PRICE_KEYS = ("input", "output", "cache_write", "cache_write_1h", "cache_read")
MAX_PRICE = 10_000.0  # dollars per million tokens; the CLI's own catalog schema caps at 1e4
MAX_MODELS = 200
MAX_NAME = 200
# Left out, the cache rates follow the API's usual ratios to the input rate (a 1-hour
# cache write, left out, is twice the input rate: orchestrator.roster.model.ModelPrice).
CACHE_WRITE_RATIO = 1.25
CACHE_READ_RATIO = 0.1
_EXAMPLE = "{input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}"


def prices(value: Any, where: c.Where) -> Any:
    """``{MODEL: {input, output, cache_write, cache_write_1h, cache_read}}``; null or {}
    means none."""
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping):
        return c.wrong_type(f"a mapping of model names to prices like {_EXAMPLE}", value, where)
    if len(value) > MAX_MODELS:
        return where.error(f"at most {MAX_MODELS} models, got {len(value)}")
    out: dict[str, Any] = {}
    for model, item in value.items():
        line = value.line_of(model) if hasattr(value, "line_of") else where.line
        shown = escape_controls(str(model)[:MAX_NAME])  # no raw control reaches a terminal
        sub = replace(where, key=join(where.key, shown), line=line)
        name = _model_name(model, sub)
        out[str(model)] = _price(item, sub) if name is not c.INVALID else c.INVALID
    if any(v is c.INVALID for v in out.values()):
        return c.INVALID
    return FrozenDict(out)


def _model_name(model: Any, where: c.Where) -> Any:
    if not isinstance(model, str) or not model.strip():
        return c.wrong_type("a model name (like claude-sonnet-4-5) as the key", model, where)
    if len(model) > MAX_NAME:
        return where.error(f"a model name is at most {MAX_NAME} characters")
    if model != model.strip() or not model.isprintable():
        return where.error(
            "a model name has no spaces around it and no control characters; "
            "write it as the API reports it"
        )
    return model


def _price(value: Any, where: c.Where) -> Any:
    if not isinstance(value, Mapping):
        return c.wrong_type(f"a mapping like {_EXAMPLE}", value, where)
    parts: dict[str, Any] = {}
    for key, item in value.items():
        line = value.line_of(key) if hasattr(value, "line_of") else where.line
        sub = replace(where, key=join(where.key, str(key)), line=line)
        if key not in PRICE_KEYS:
            valid = f"; valid keys are {', '.join(PRICE_KEYS)}"
            hint = c.did_you_mean(str(key), PRICE_KEYS) or valid
            parts[str(key)] = sub.error(f"unknown key '{key}'{hint}")
        else:
            parts[key] = _rate(item, sub)
    missing = [k for k in ("input", "output") if k not in parts]
    if missing:
        return where.error(f"needs {' and '.join(missing)} (dollars per million tokens)")
    if any(v is c.INVALID for v in parts.values()):
        return c.INVALID
    return ModelPrice(
        input=parts["input"],
        output=parts["output"],
        cache_write=parts.get("cache_write", round(parts["input"] * CACHE_WRITE_RATIO, 6)),
        cache_read=parts.get("cache_read", round(parts["input"] * CACHE_READ_RATIO, 6)),
        cache_write_1h=parts.get("cache_write_1h"),
    )


def _rate(value: Any, where: c.Where) -> Any:
    number = c.finite_number(value)
    if number is None:
        return c.wrong_type("dollars per million tokens, a number like 3 or 0.3", value, where)
    if not 0 <= number <= MAX_PRICE:
        return where.error(
            f"must be between 0 and {MAX_PRICE:,.0f} dollars per million tokens, got {number:g}"
        )
    return float(number)
