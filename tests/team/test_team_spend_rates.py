"""A turn the runner prices itself (a model the CLI does not know, or one `prices:` names)
is priced as the CLI prices its own: 1-hour cache writes at their rate, and a request
served in the US at 1.1 times (real claude CLI, scripted model whose rules set the
usage, the API's `cache_creation` split and `inference_geo`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule, scout_rules

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
# Of 100,000 tokens written to the cache, 40,000 for 1 hour.
CACHED = {
    "input_tokens": 1000,
    "output_tokens": 100,
    "cache_creation_input_tokens": 100_000,
    "cache_creation_1h_input_tokens": 40_000,
}


def _usd(input_rate: float, output: float, write_5m: float, write_1h: float) -> float:
    return (1000 * input_rate + 100 * output + 60_000 * write_5m + 40_000 * write_1h) / 1e6


def test_a_repriced_turn_charges_1_hour_cache_writes_and_us_inference(
    team: TeamFactory,
) -> None:
    """A gateway model priced by `prices:` {input: 15, output: 75} (5-minute writes 1.25x
    input, 1-hour writes 2x): the turn served in the US costs 1.1 times its tokens at
    those rates, the next one (served elsewhere) its tokens. Before: every cache write at
    the 5-minute rate and no US multiplier ($1.8975 for both, not $2.58225 and $2.3475)."""
    a = agent_rule("a")
    t = team(
        [
            {
                "agent": a,
                "match": "first",
                "text": "one",
                "usage": {**CACHED, "inference_geo": "us"},
            },
            {"agent": a, "match": "second", "text": "two", "usage": CACHED},
        ],
        {"a": {"model": "gw-priced"}},
        prices={"gw-priced": {"input": 15, "output": 75}},
    )
    t.up()
    t.wait_ready("a")
    assert t.ask("a", "first") == "one"
    assert t.ask("a", "second") == "two"
    first, second = t.wait_for(lambda: len(e := t.log_events("turn", "a")) == 2 and e, 30, "turns")
    assert first["cost_usd"] == pytest.approx(1.1 * _usd(15, 75, 18.75, 30))
    assert second["cost_usd"] == pytest.approx(_usd(15, 75, 18.75, 30))
    assert (first["cache_creation_input_tokens"], second["cache_creation_input_tokens"]) == (
        100_000,
        100_000,
    )


def test_a_gateway_lead_with_a_catalog_subagent_charges_its_part_so_too(
    team: TeamFactory,
) -> None:
    """A session of two models (a haiku subagent of a `prices:` gateway lead): the lead's
    part (its two requests, served in the US, each with 40,000 of 100,000 cache-write
    tokens kept for 1 hour) at the 1-hour rate and 1.1 times; the haiku part keeps the
    CLI's own figure (which prices the split and the place itself). Before: the lead's
    part at the 5-minute rate without the multiplier. A second turn (the per-model
    baseline moved on) is priced the same way."""
    lead = agent_rule("lead")
    usage = {**CACHED, "inference_geo": "us"}
    t = team(
        [
            *scout_rules(usage),
            {"agent": lead, "match": "again", "text": "again done", "usage": usage},
        ],
        {
            "lead": {
                "model": "gw-priced",
                "tools": ["Read"],
                "subagents": {
                    "scout": {
                        "description": "finds",
                        "prompt": "You scout.",
                        "tools": ["Read"],
                        "model": "claude-haiku-4-5",
                    }
                },
            }
        },
        prices={"gw-priced": {"input": 15, "output": 75}},
    )
    t.up()
    t.wait_ready("lead")
    assert t.ask("lead", "go") == "lead done"
    assert t.ask("lead", "again") == "again done"
    turns = t.wait_for(lambda: len(e := t.log_events("turn", "lead")) == 2 and e, 30, "turns")
    lead_request = 1.1 * _usd(15, 75, 18.75, 30)
    scout_request = 1.1 * _usd(1, 5, 1.25, 2)  # haiku 4.5, as the CLI prices it
    assert [e["cost_usd"] for e in turns] == pytest.approx(
        [2 * lead_request + scout_request, lead_request]
    )
