"""What `ps` prints of a budget (orchestrator/cli/budget_verbs.py), at the edges a roster
allows: a budget of any size is a valid one."""

from __future__ import annotations

import pytest

from orchestrator.cli.budget_verbs import budget_cell


def _cell(usd: float, limit: float) -> str:
    figures = {"usd": usd, "usd_limit": limit, "tokens": 0, "tokens_limit": None, "share": 0}
    return budget_cell({"budget": {"agent": figures}})


@pytest.mark.parametrize(
    ("limit", "shown"),
    [
        (5, "$0.0120/$5.0000 (0%)"),  # as before: spend is read to the hundredth of a cent
        (25_000, "$0.0120/$25,000 (0%)"),
        (1e20, "$0.0120/$1e+20 (0%)"),
        (1e23, "$0.0120/$1e+23 (0%)"),  # printed in full: 99999999999999991611392.0000
        (1e300, "$0.0120/$1e+300 (0%)"),
    ],
)
def test_a_huge_budget_is_shown_without_float_noise(limit: float, shown: str) -> None:
    """Regression: `usd: 1e20` showed $100000000000000000000.0000, and 1e23 digits that
    are not its own."""
    assert _cell(0.012, limit) == shown


def test_ps_columns_are_padded_in_terminal_cells() -> None:
    """Regression: widths by len() made a row whose name holds wide characters (two
    cells each) push every column after it two cells a character to the right."""
    from rich.cells import cell_len

    from orchestrator.cli.ps_view import render

    lines = render(
        ["NAME", "STATE", "PID"],
        [["漢字漢字", "ready", "12"], ["alpha", "stale", "-"]],
        colour=False,
    )
    starts = {
        cell_len(line[: line.index(word)])
        for line, word in zip(lines, ("STATE", "ready", "stale"), strict=True)
    }
    assert len(starts) == 1, lines
    assert lines[1] == "漢字漢字  ready  12"


def test_every_agent_state_has_a_colour_in_ps_and_top() -> None:
    """A state the lifecycle can record is coloured in `ps` and `top` like its kin (a new
    one, `waiting`, was drawn plain beside the yellow `starting`)."""
    from orchestrator.cli.ps_view import _STATE_COLOURS
    from orchestrator.lifecycle import AgentState
    from orchestrator.tui.widgets import STATE_STYLES

    assert [s.value for s in AgentState if s.value not in _STATE_COLOURS] == []
    assert [s.value for s in AgentState if s.value not in STATE_STYLES] == []
    assert _STATE_COLOURS["waiting"] == _STATE_COLOURS["starting"]
