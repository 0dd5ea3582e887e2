"""The roster's team-wide ``prices:``: dollars per million tokens per model name, for the
estimate of a turn cut off before the CLI priced it (orchestrator/prices.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import RosterErrors
from orchestrator.prices import Rates, request_usd
from orchestrator.roster import load_roster
from orchestrator.roster.model import ModelPrice

AGENTS = "agents:\n  coder:\n    prompt: hi\n"


def write(folder: Path, prices: str) -> Path:
    path = folder / "agents.yaml"
    path.write_text("name: t\n" + textwrap.dedent(prices) + AGENTS, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RosterErrors) as info:
        load_roster(path, environ or {})
    return [str(e) for e in info.value.errors]


def test_prices_per_model_with_the_usual_cache_ratios_by_default(tmp_path: Path) -> None:
    """input and output are needed; cache writes default to 1.25x input, reads to 0.1x
    (the API's usual ratios); a ${VAR} gives a number; `config` shows them."""
    path = write(
        tmp_path,
        """\
        prices:
          gateway/sonnet: {input: 3, output: 15}
          my-model: {input: "${IN}", output: 8, cache_write: 2, cache_read: 0}
        """,
    )
    roster = load_roster(path, {"IN": "1.5"})
    assert dict(roster.prices) == {
        "gateway/sonnet": ModelPrice(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3),
        "my-model": ModelPrice(input=1.5, output=8.0, cache_write=2.0, cache_read=0.0),
    }
    assert roster.to_dict()["prices"]["gateway/sonnet"] == {
        "input": 3.0,
        "output": 15.0,
        "cache_write": 3.75,
        "cache_write_1h": 6.0,
        "cache_read": 0.3,
    }


def test_a_1_hour_cache_write_rate_defaults_to_twice_the_input_rate(tmp_path: Path) -> None:
    """The API charges 1-hour cache writes 2x input (5-minute ones 1.25x): left out,
    `cache_write_1h` follows that ratio, not the 5-minute rate; written, it is kept."""
    path = write(
        tmp_path,
        """\
        prices:
          gw/a: {input: 15, output: 75}
          gw/b: {input: 3, output: 15, cache_write: 4, cache_write_1h: 7}
        """,
    )
    prices = load_roster(path, {}).prices
    assert (prices["gw/a"].cache_write, prices["gw/a"].hour_write) == (18.75, 30.0)
    assert (prices["gw/b"].cache_write, prices["gw/b"].hour_write) == (4.0, 7.0)
    rates = Rates.of(prices["gw/a"])
    split = {"cache_creation": {"ephemeral_1h_input_tokens": 400_000}}
    usage = {"cache_creation_input_tokens": 1_000_000, **split}
    assert request_usd(rates, usage) == pytest.approx(600_000 * 18.75 / 1e6 + 400_000 * 30 / 1e6)


def test_no_prices_means_the_clis_table(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, "prices: null\n"), {})
    assert dict(roster.prices) == {}
    assert "prices" not in roster.to_dict()


def test_hostile_prices_are_refused_with_where_and_what(tmp_path: Path) -> None:
    """Negative, NaN, infinite, huge, boolean, text, a misspelt key, a missing rate, a
    list, a name with a control character: each refused where it is written."""
    path = write(
        tmp_path,
        """\
        prices:
          a: {input: -1, output: .nan}
          b: {input: .inf, output: 20000}
          c: {input: true, output: "3"}
          d: {output: 2, cahce_read: 1}
          e: [1, 2]
          "f\\x07": {input: 1, output: 2}
        """,
    )
    assert problems(path) == [
        f"{path}:3: key 'prices.a.input': must be between 0 and 10,000 dollars per million "
        "tokens, got -1",
        f"{path}:3: key 'prices.a.output': expected dollars per million tokens, a number like "
        "3 or 0.3, got a number (nan)",
        f"{path}:4: key 'prices.b.input': expected dollars per million tokens, a number like "
        "3 or 0.3, got a number (inf)",
        f"{path}:4: key 'prices.b.output': must be between 0 and 10,000 dollars per million "
        "tokens, got 20000",
        f"{path}:5: key 'prices.c.input': expected dollars per million tokens, a number like "
        "3 or 0.3, got a boolean (true)",
        f"{path}:5: key 'prices.c.output': expected dollars per million tokens, a number like "
        "3 or 0.3, got a string ('3')",
        f"{path}:6: key 'prices.d.cahce_read': unknown key 'cahce_read'; did you mean "
        "'cache_read'?",
        f"{path}:6: key 'prices.d': needs input (dollars per million tokens)",
        f"{path}:7: key 'prices.e': expected a mapping like {{input: 3, output: 15, "
        "cache_write: 3.75, cache_read: 0.3}, got a list",
        f"{path}:8: key 'prices.f\\x07': a model name has no spaces around it and no control "
        "characters; write it as the API reports it",
    ]


def test_prices_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "prices: 5\n")
    assert problems(path) == [
        f"{path}:2: key 'prices': expected a mapping of model names to prices like "
        "{input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}, got an integer (5)"
    ]


def test_an_unknown_price_key_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "prices:\n  m: {input: 1, output: 2, web: 3}\n")
    assert problems(path) == [
        f"{path}:3: key 'prices.m.web': unknown key 'web'; valid keys are input, output, "
        "cache_write, cache_write_1h, cache_read"
    ]


def test_numbers_written_with_an_exponent_are_numbers(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 1.0e9 as a number but 1e9 as text, and `config` told the
    operator 'got a string ('1e9')': number fields take 1e9 and 2.5E-1, whole-number
    fields 2e6; anything else written as text is still refused, and one that is a number
    but not a fitting one says so (1e400 said 'got a string')."""
    path = write(
        tmp_path,
        """\
        budget: {usd: 1e2, tokens: 2e6, per: 1d}
        prices:
          m: {input: 2.5E-1, output: 1e1}
        """,
    )
    roster = load_roster(path, {})
    assert roster.budget is not None
    assert (roster.budget.usd, roster.budget.tokens) == (100.0, 2_000_000)
    assert roster.prices["m"] == ModelPrice(0.25, 10.0, 0.3125, 0.025)
    path = write(
        tmp_path,
        "budget: {usd: x1e2, tokens: 2.5e0}\nprices:\n  m: {input: 1e9, output: 1e400}\n",
    )
    assert problems(path) == [
        f"{path}:2: key 'budget.usd': expected a number (like 2.5) or null for no limit, "
        "got a string ('x1e2')",
        f"{path}:2: key 'budget.tokens': expected a whole number (at least 1), got a number (2.5)",
        f"{path}:4: key 'prices.m.input': must be between 0 and 10,000 dollars per million "
        "tokens, got 1e+09",
        f"{path}:4: key 'prices.m.output': expected dollars per million tokens, a number like "
        "3 or 0.3, got a number too large",
    ]
