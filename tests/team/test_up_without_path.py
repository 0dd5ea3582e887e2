"""`up` from an environment with no PATH at all (`env -i HOME=… /path/to/octy-orchestrate
up -d`, a bare exec from a service manager): the agents find the programs their sandbox
needs. The real CLI against the scripted model; the agent has Bash, so its claude
requires the sandbox (bubblewrap) and looks for it on PATH."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from team_harness import Team

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


def test_agents_with_tools_start_when_up_had_no_path(team: Callable[..., Team]) -> None:
    """Regression: `up -d` with PATH unset said the team started (its sandbox check, through
    shutil.which, searched /bin:/usr/bin by itself), then every agent's claude refused to
    start ("sandbox required but unavailable: … bubblewrap (bwrap) not installed") and the
    agent crash-looped to `failed`. Now the supervisor gives its claudes the standard PATH."""
    t = team([{"text": "pong"}], {"a": {"tools": ["Bash"]}})
    t.env = {k: v for k, v in t.env.items() if k != "PATH"}
    t.octy("up", "-d", "--no-model-check", check=True)
    # A claude that cannot start goes to backoff at once; a healthy one never does.
    t.wait_for(lambda: t.states().get("a") in ("ready", "backoff", "failed"), 90, "a settled")
    assert t.states()["a"] == "ready", t.octy("logs", "-n", "5", "a").stdout
    assert t.ask("a", "ping") == "pong"
    t.octy("down", check=True)
