"""`reload` says what an edit did even when the file watcher applied it first (review F,
M3). A real team: the real claude CLI against the scripted model, `octy-orchestrate`
subprocesses, the watcher's own poll."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from team_harness import Team, agent_rule

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]


def test_reload_after_the_watcher_applied_the_edit_says_what_it_did(team: TeamFactory) -> None:
    """The watcher polls every second: the operator's `reload` sent right after saving
    found the edit applied and printed "no change" (agents had just been removed). It now
    answers with that reload's changes, who applied them and when. The same file saved
    again (a new version, no change) is "no change" again."""
    t = team([{"agent": agent_rule("a"), "text": "a here"}], {"a": {}, "b": {}})
    t.up()
    t.wait_ready("a", "b")
    t.write_roster({"a": {}})
    t.wait_for(
        lambda: any(e.get("removed") == ["b"] for e in t.log_events("reload")),
        what="the watcher's reload",
    )
    lines = t.octy("reload").stdout.splitlines()
    assert re.fullmatch(
        r"already applied by the file watcher or SIGHUP at \d\d:\d\d:\d\d:", lines[0]
    )
    assert lines[1:] == ["removed: b"]
    answer = json.loads(t.octy("reload", "--json").stdout)
    assert answer["changes"]["removed"] == ["b"]
    assert answer["already_applied"]["by"] == "the file watcher or SIGHUP"

    seen = len(t.log_events("reload"))
    t.write_roster({"a": {}})  # the same agents: a new version of the file, nothing to do
    t.wait_for(
        lambda: len(t.log_events("reload")) > seen, what="the watcher's reload of the new save"
    )
    assert t.octy("reload").stdout.strip() == "no change"
    assert "already_applied" not in json.loads(t.octy("reload", "--json").stdout)
    assert t.ask("a", "there?") == "a here"
