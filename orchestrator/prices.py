"""Dollars for tokens the CLI never priced: a turn cut off before its result.

The CLI prices a turn only when it reports its result; a turn cut off before that
(``turn_timeout``, the ``claude`` process killed) spent real tokens that no ``usd``
budget would see. The runner prices them here, from the per-request tally it keeps
(:mod:`orchestrator.spend`), and marks the figure as an estimate.

The table is the bundled CLI's own (2.1.332, read 2026-11-29 from the baked model
catalog in ``claude_agent_sdk/_bundled/claude``: ``pricing_tiers`` and each
model's ``pricing``; dollars per million tokens). Its arithmetic is the CLI's too:
cache writes at the 5-minute rate, those the API reports as 1-hour
(``cache_creation.ephemeral_1h_input_tokens``) at the 1-hour rate; a request whose
prompt is above a tier's ``long_prompt`` threshold at the long-prompt rates; a
request served in the US (``inference_geo: us``) at 1.1 times. Checked against the
CLI: a turn's tokens priced here give its ``total_cost_usd``
(tests/team/test_team_spend_cutoff.py).

A model the table does not know (a gateway's name, a newer model) is priced at the
highest known rate of each kind: an estimate that errs toward stopping. The roster's
``prices:`` (team-wide, per model name) comes before the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.roster.model import ModelPrice

US_INFERENCE = 1.1  # the CLI's multiplier for inference_geo "us"


@dataclass(frozen=True)
class Rates:
    """A model's prices in dollars per million tokens, as the CLI keeps them."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes
    cache_write_1h: float
    cache_read: float
    long_prompt_above: int | None = None  # prompt tokens above which ``long`` applies
    long: Rates | None = None

    @classmethod
    def of(cls, price: ModelPrice) -> Rates:
        return cls(price.input, price.output, price.cache_write, price.hour_write, price.cache_read)


def _tier(rates: tuple[float, float, float, float, float], long: Rates | None = None) -> Rates:
    return Rates(*rates, long_prompt_above=None if long is None else 100_000, long=long)


# pricing_tiers of the CLI's catalog (input, output, cache_write_5m, cache_write_1h, cache_read).
_TIERS = {
    "tier_2_10": _tier((2, 10, 2.5, 4, 0.2)),
    "tier_2_10_cache_read_0_10": _tier((2, 10, 2.5, 4, 0.1)),
    "tier_3_15": _tier((3, 15, 3.75, 6, 0.3)),
    "tier_5_25": _tier((5, 25, 6.25, 10, 0.5)),
    "tier_15_75": _tier((15, 75, 18.75, 30, 1.5)),
    "tier_10_50": _tier((10, 50, 12.5, 20, 1)),
    "tier_10_50_cache_read_0_25": _tier((10, 50, 12.5, 20, 0.25)),
    "tier_4_20_cache_read_0_20": _tier((4, 20, 5, 8, 0.2)),
    "tier_8_40_cache_read_0_20": _tier((8, 40, 10, 16, 0.2)),
    "haiku_35": _tier((0.8, 4, 1, 1.6, 0.08)),
    "haiku_45": _tier((1, 5, 1.25, 2, 0.1)),
    "haiku_55": _tier((0.1, 0.5, 0.125, 0.2, 0.01), long=_tier((0.5, 2.5, 0.625, 1, 0.05))),
}
# models of the catalog: id, first-party id (the name the API reports), pricing tier.
_MODELS = (
    ("claude-3-5-haiku", "claude-3-5-haiku-20241022", "haiku_35"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001", "haiku_45"),
    ("claude-haiku-5-5", "claude-haiku-5-5", "haiku_55"),
    ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022", "tier_3_15"),
    ("claude-3-7-sonnet", "claude-3-7-sonnet-20250219", "tier_3_15"),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514", "tier_3_15"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "tier_3_15"),
    ("claude-sonnet-4-6", "claude-sonnet-4-6", "tier_3_15"),
    ("claude-sonnet-5", "claude-sonnet-5", "tier_2_10"),
    ("claude-sonnet-5-5", "claude-sonnet-5-5", "tier_2_10_cache_read_0_10"),
    ("claude-opus-4-0", "claude-opus-4-20250514", "tier_15_75"),
    ("claude-opus-4-1", "claude-opus-4-1-20250805", "tier_15_75"),
    ("claude-opus-4-5", "claude-opus-4-5-20251101", "tier_5_25"),
    ("claude-opus-4-6", "claude-opus-4-6", "tier_5_25"),
    ("claude-opus-4-7", "claude-opus-4-7", "tier_5_25"),
    ("claude-opus-4-8", "claude-opus-4-8", "tier_5_25"),
    ("claude-opus-5", "claude-opus-5", "tier_5_25"),
    ("claude-opus-5-5", "claude-opus-5-5", "tier_4_20_cache_read_0_20"),
    ("claude-fable-5", "claude-fable-5", "tier_10_50"),
    ("claude-fable-5-1", "claude-fable-5-1", "tier_10_50_cache_read_0_25"),
    ("claude-fable-5-2", "claude-fable-5-2", "tier_8_40_cache_read_0_20"),
    ("claude-mythos-5", "claude-mythos-5", "tier_10_50"),
    ("claude-mythos-5-1", "claude-mythos-5-1", "tier_10_50_cache_read_0_25"),
    ("claude-mythos-5-2", "claude-mythos-5-2", "tier_8_40_cache_read_0_20"),
)
CLI_PRICES: Mapping[str, Rates] = {
    name: _TIERS[tier] for model, first_party, tier in _MODELS for name in (model, first_party)
}
# How a provider writes a catalog name around it: "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# (Bedrock), "claude-3-5-haiku@20241022" (Vertex), "claude-sonnet-4-5[1m]" (the 1M variant).
_AROUND = re.compile(
    r"(?:[a-z0-9_-]+[./])*(?P<name>claude-[a-z0-9-]+?)(?:[-@](?P<date>\d{8}))?"
    r"(?:-v\d+(?::\d+)?)?(?:\[1m\])?"
)


@dataclass(frozen=True)
class Priced:
    usd: float
    unknown: tuple[str, ...]  # models priced at the highest known rate


def rates_for(model: str, overrides: Mapping[str, ModelPrice]) -> Rates | None:
    """The rates of ``model``: the roster's ``prices:`` first, then the CLI's table.
    None for a model neither knows."""
    if model in overrides:
        return Rates.of(overrides[model])
    name = model.strip().lower()
    if name in CLI_PRICES:
        return CLI_PRICES[name]
    match = _AROUND.fullmatch(name)
    if match is None:
        return None
    dated = f"{match.group('name')}-{match.group('date')}" if match.group("date") else ""
    return CLI_PRICES.get(dated) or CLI_PRICES.get(match.group("name"))


def known_to_cli(model: str) -> bool:
    """Whether the CLI's catalog knows ``model`` (its own figures for it are not guesses)."""
    return rates_for(model, {}) is not None


def highest(overrides: Mapping[str, ModelPrice]) -> Rates:
    """The highest known rate of each kind: what a model of unknown price is charged."""
    known = [*CLI_PRICES.values(), *(Rates.of(p) for p in overrides.values())]
    return Rates(
        input=max(r.input for r in known),
        output=max(r.output for r in known),
        cache_write=max(r.cache_write for r in known),
        cache_write_1h=max(r.cache_write_1h for r in known),
        cache_read=max(r.cache_read for r in known),
    )


def request_usd(rates: Rates, usage: Mapping[str, Any]) -> float:
    """One model request's dollars, from its usage as the API reports it."""
    read = _int(usage, "cache_read_input_tokens")
    written = _int(usage, "cache_creation_input_tokens")
    prompt = _int(usage, "input_tokens") + read + written
    if rates.long is not None and prompt > (rates.long_prompt_above or 0):
        rates = rates.long
    split = usage.get("cache_creation")
    hour = _int(split, "ephemeral_1h_input_tokens") if isinstance(split, Mapping) else 0
    hour = min(hour, written)
    usd = (
        _int(usage, "input_tokens") * rates.input
        + _int(usage, "output_tokens") * rates.output
        + read * rates.cache_read
        + (written - hour) * rates.cache_write
        + hour * rates.cache_write_1h
    ) / 1e6
    return usd * US_INFERENCE if usage.get("inference_geo") == "us" else usd


def estimate(
    requests: Mapping[Any, tuple[str, Mapping[str, Any]]], overrides: Mapping[str, ModelPrice]
) -> Priced:
    """Dollars of model requests, each ``(model, usage)``."""
    usd = 0.0
    unknown: list[str] = []
    for model, usage in requests.values():
        rates = rates_for(model, overrides)
        if rates is None:
            rates = highest(overrides)
            if model not in unknown:
                unknown.append(model)
        usd += request_usd(rates, usage)
    return Priced(round(usd, 6), tuple(unknown))


def _int(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
