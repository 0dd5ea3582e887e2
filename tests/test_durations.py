"""One check for a time in seconds (orchestrator/durations.py), used by the CLI's options,
the roster's durations, an agent's `ask` timeout and `down`'s grace: what each refusal
says (what, the value, the range allowed)."""

from __future__ import annotations

import argparse

import pytest

from orchestrator import errors
from orchestrator.cli.common import seconds
from orchestrator.durations import MAX_SECONDS, finite_seconds
from orchestrator.roster._coerce import parse_duration


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), ("2.5", 2.5), (MAX_SECONDS, MAX_SECONDS)]
)
def test_a_finite_time_in_range_is_accepted(value: object, expected: float) -> None:
    assert finite_seconds(value, "timeout_s") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "must be a finite, non-negative time (got nan)"),
        ("inf", "must be a finite, non-negative time (got inf)"),
        (-1, "must be a finite, non-negative time (got -1)"),
        (1e300, "is longer than ten years (got 1e+300)"),
        (10**400, "is longer than ten years (got 1000"),  # past a float: not an OverflowError
        ("soon", "is not a number of seconds (got soon)"),
        (True, "is not a number of seconds (got True)"),
        (None, "is not a number of seconds (got None)"),
    ],
)
def test_a_refusal_says_what_the_value_and_the_range(value: object, reason: str) -> None:
    with pytest.raises(errors.InvalidSeconds) as caught:
        finite_seconds(value, "timeout_s")
    message = str(caught.value)
    assert message.startswith(f"timeout_s {reason}")
    assert message.endswith("use a number of seconds from 0 to 315360000 (ten years)")
    assert caught.value.code == "usage"


def test_a_narrower_range_is_named() -> None:
    with pytest.raises(errors.InvalidSeconds, match=r"from 0\.1 to 3600$"):
        finite_seconds("0.05", "--interval", least=0.1, most=3600)


def test_the_cli_and_the_roster_say_the_same() -> None:
    """The CLI's option type and the roster's durations give the shared check's words (the
    roster adds where null means no limit); argparse and the roster name where."""
    with pytest.raises(argparse.ArgumentTypeError, match="must be a finite, non-negative time"):
        seconds("nan")
    with pytest.raises(ValueError, match=r"longer than ten years \(got 1000000000s\).*null means"):
        parse_duration("1000000000s")
