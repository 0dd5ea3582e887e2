"""The console of `up` on a terminal whose encoding cannot show every character (review
B.2): an event holding such text is escaped (``\\u2192``), not dropped or a failure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

pytestmark = [pytest.mark.cli, pytest.mark.slow]


def test_up_console_escapes_what_an_ascii_terminal_cannot_show(
    team: Callable[..., Team],
) -> None:
    t = team([{"agent": agent_rule("a"), "text": "ok"}], {"a": {}})
    t.env["PYTHONIOENCODING"] = "ascii"
    t.up()
    t.wait_ready("a")
    with t.mailbox() as mb:
        mb.send("user", "a", "café → ✓")
    # Before, the console's write failed on 'é' and the line was lost (the error swallowed
    # so that a full disk under supervisor.out could not stop the team).
    t.wait_for(lambda: "caf\\xe9 \\u2192 \\u2713" in t.output(), what="the escaped notice")
    assert "Traceback" not in t.output()
