"""The price table for turns cut off before the CLI priced them (orchestrator/prices.py):
the bundled CLI's own figures, found under the names providers give the models; a model
of unknown price at the highest known rate; the roster's ``prices:`` first."""

from __future__ import annotations

import re
from pathlib import Path

import claude_agent_sdk
import pytest

from orchestrator import prices
from orchestrator.roster.model import ModelPrice

BUNDLED = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def bundled_catalog() -> str:
    """The model catalog baked into the bundled CLI (JS object text)."""
    data = BUNDLED.read_bytes()
    start = data.find(b"On model launch add one entry")
    assert start >= 0, f"no model catalog found in {BUNDLED}: has the CLI's packaging changed?"
    text = data[start : start + 200_000].decode("latin-1")
    return text[: text.index("],aliases:")]


def test_the_table_is_the_bundled_clis_catalog() -> None:
    """Every model of the CLI's catalog, by catalog id and first-party id, at its tier's
    rates; and nothing the catalog does not have. Fails when an upgrade of the SDK brings
    a CLI with other prices: update orchestrator/prices.py from it."""
    catalog = bundled_catalog()
    tiers = {
        name: dict(f.split(":") for f in body.split(","))
        for name, body in re.findall(r"(\w+):\{(input:[^{}]*?)(?:,long_prompt:|\})", catalog)
    }
    models = re.findall(
        r'\{id:"([^"]+)",family:"[^"]+".*?first_party:"([^"]+)".*?pricing:"([^"]+)"', catalog
    )
    assert len(models) >= 20
    names = set()
    for model, first_party, tier in models:
        t = tiers[tier]
        want = prices.Rates(
            float(t["input"]),
            float(t["output"]),
            float(t["cache_write_5m"]),
            float(t["cache_write_1h"]),
            float(t["cache_read"]),
        )
        for name in (model, first_party):
            got = prices.CLI_PRICES[name]
            names.add(name)
            assert (
                got.input,
                got.output,
                got.cache_write,
                got.cache_write_1h,
                got.cache_read,
            ) == (want.input, want.output, want.cache_write, want.cache_write_1h, want.cache_read)
    assert set(prices.CLI_PRICES) == names
    assert "long_prompt:{above_prompt_tokens:1e5" in catalog  # haiku 5.5's, as in the table


@pytest.mark.parametrize(
    ("name", "same_as"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),  # Bedrock
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),  # Vertex
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4-0"),
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("Claude-Opus-5-5", "claude-opus-5-5"),
    ],
)
def test_provider_names_find_the_catalog_model(name: str, same_as: str) -> None:
    assert prices.rates_for(name, {}) is prices.CLI_PRICES[same_as]


@pytest.mark.parametrize(
    "name", ["scripted-model", "claude-opus-5-9", "claude-opus-5-5-fast", "gpt-5", "", "x" * 5000]
)
def test_a_model_of_unknown_price_is_priced_at_the_highest_known_rate(name: str) -> None:
    """Not the rate of a near name (claude-opus-5-9 is not opus 5): the estimate errs
    toward stopping, and says which models it guessed."""
    assert prices.rates_for(name, {}) is None
    priced = prices.estimate({"m": (name, {"input_tokens": 1_000_000, "output_tokens": 0})}, {})
    assert priced.usd == 15.0  # Opus 4.0/4.1's input rate, the highest of the table
    assert priced.unknown == (name,)


def test_the_rosters_prices_come_first_and_count_toward_the_highest() -> None:
    overrides = {
        "claude-opus-5-5": ModelPrice(input=1, output=2, cache_write=1.25, cache_read=0.1),
        "gw/big": ModelPrice(input=100, output=500, cache_write=125, cache_read=10),
    }
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert prices.estimate({"a": ("claude-opus-5-5", usage)}, overrides).usd == 3.0
    assert prices.estimate({"a": ("gw/big", usage)}, overrides).usd == 600.0
    unknown = prices.estimate({"a": ("other", usage)}, overrides)
    assert (unknown.usd, unknown.unknown) == (600.0, ("other",))


def test_a_request_is_priced_as_the_cli_prices_it() -> None:
    """Cache reads and writes at their rates, 1-hour writes at the 1-hour rate, a long
    prompt at the long-prompt rates, US inference at 1.1 times."""
    sonnet = prices.CLI_PRICES["claude-sonnet-4-5"]
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_read_input_tokens": 10_000,
        "cache_creation_input_tokens": 2000,
        "cache_creation": {"ephemeral_1h_input_tokens": 500, "ephemeral_5m_input_tokens": 1500},
    }
    want = (1000 * 3 + 100 * 15 + 10_000 * 0.3 + 1500 * 3.75 + 500 * 6) / 1e6
    assert prices.request_usd(sonnet, usage) == pytest.approx(want)
    assert prices.request_usd(sonnet, {**usage, "inference_geo": "us"}) == pytest.approx(want * 1.1)
    haiku = prices.CLI_PRICES["claude-haiku-5-5"]
    assert prices.request_usd(haiku, {"input_tokens": 100_000}) == pytest.approx(0.01)
    assert prices.request_usd(haiku, {"input_tokens": 100_001}) == pytest.approx(0.0500005)


def test_hostile_usage_figures_count_nothing() -> None:
    """A usage the stream garbled (negative, text, boolean) adds no dollars."""
    sonnet = prices.CLI_PRICES["claude-sonnet-4-5"]
    usage = {"input_tokens": -5, "output_tokens": "9", "cache_read_input_tokens": True}
    assert prices.request_usd(sonnet, {**usage, "cache_creation": "x"}) == 0.0
