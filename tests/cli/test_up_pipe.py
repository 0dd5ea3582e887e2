"""`up | head -3`: when the pipe's reader leaves, the foreground supervisor stops the team
as `down` does and ends 141, as every verb ends in a pipe whose reader left (it ran on
unseen, its console writes failing quietly, the pipeline hanging until Ctrl-C). A real
`up`, the real claude CLI against the scripted model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from team_harness import Team

pytestmark = [pytest.mark.cli, pytest.mark.slow]

TeamFactory = Callable[..., Team]
WAIT_S = 120.0  # a safety net for a wedged supervisor, not a measurement


def test_up_stops_the_team_when_its_readers_pipe_closes(team: TeamFactory) -> None:
    t = team([{"text": "ok"}], {"a": {}})
    argv = [sys.executable, "-m", "orchestrator.cli", "up", "-f", str(t.roster_path)]
    up = subprocess.Popen(
        argv,
        cwd=t.folder,
        env=t.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t.wait_ready("a")  # then idle: nothing more is written that could fail
        assert up.stdout is not None
        up.stdout.close()  # `head` has its lines and leaves
        _, err = up.communicate(timeout=WAIT_S)
    finally:
        up.kill()
        up.communicate()
    assert up.returncode == 141, err
    assert (
        "octy-orchestrate: standard output's reader left (the pipe was closed); "
        "stopping the team as `down` does"
    ) in err
    assert "Traceback" not in err
    assert t.states()["a"] == "stopped"
    assert json.loads(t.octy("ps", "--json").stdout)["supervisor"]["running"] is False
