"""What an agent's commands see of the environment (orchestrator/agent_env.py): the
operator's secrets never, the roster's plain variables yes; an agent may opt out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator import agent_env
from orchestrator.roster import load_roster
from orchestrator.scripted.client_env import FAKE_API_KEY
from orchestrator.scripted_model import tool_results

ENV_DONE = "ENV-DONE"
OPERATOR_SECRET = "operator-shell-secret-value"
ROSTER_SECRET = "roster-secret-value"
ROSTER_PLAIN = "roster-plain-value"


def _rules(*agents: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for name in agents:
        me = agent_rule(name)
        rules += [
            {"agent": me, "tool_result": ENV_DONE, "text": "done"},
            {
                "agent": me,
                "match": "SHOW-ENV",
                "tool_use": {"name": "Bash", "input": {"command": f"env; echo {ENV_DONE}"}},
            },
        ]
    return rules


def test_an_agents_commands_do_not_see_the_operators_secrets(team: Any) -> None:
    """The real CLI, a real Bash: the supervisor's ANTHROPIC_API_KEY and MYSECRET_TOKEN
    reach neither a sandboxed agent's `env` nor an unsandboxed one's, though the CLI
    itself still talks to the model; the roster's plain variable does reach them. An
    agent whose env says CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: "0" sees everything."""
    roster_env = {"A_PLAIN": ROSTER_PLAIN, "A_ONLY_SECRET": ROSTER_SECRET}
    t: Team = team(
        _rules("boxed", "open", "optout"),
        {
            "boxed": {"tools": ["Bash"], "env": roster_env},
            "open": {"tools": ["Bash"], "sandbox": False, "env": roster_env},
            "optout": {
                "tools": ["Bash"],
                "sandbox": False,
                "env": {**roster_env, agent_env.SCRUB_ENV: "0"},
            },
        },
    )
    t.env["MYSECRET_TOKEN"] = OPERATOR_SECRET
    t.up()
    t.wait_ready("boxed", "open", "optout")
    seen: dict[str, str] = {}
    for name in ("boxed", "open", "optout"):
        assert t.ask(name, "SHOW-ENV", timeout=90) == "done"
        [request] = t.model.requests_matching(tool_result=ENV_DONE, agent=agent_rule(name))
        seen[name] = " ".join(str(r.get("content")) for r in tool_results(request))
    for name in ("boxed", "open"):
        out = seen[name]
        assert ENV_DONE in out
        assert FAKE_API_KEY not in out, out
        assert OPERATOR_SECRET not in out, out
        # The CLI's heuristic goes by the name: a roster variable that looks secret is
        # kept from commands too (documented), a plain one is not.
        assert ROSTER_SECRET not in out, out
        assert f"A_PLAIN={ROSTER_PLAIN}" in out
        assert f"OCTY_AGENT={name}" in out
    assert FAKE_API_KEY in seen["optout"]
    assert OPERATOR_SECRET in seen["optout"]
    assert ROSTER_SECRET in seen["optout"]


ROSTER = """\
name: t
agents:
  shell:
    prompt: p
    tools: [Bash]
    sandbox: false
  optout:
    prompt: p
    sandbox: false
    env: {CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: "off"}
  talker:
    prompt: p
    disallowed_tools: [Bash]
"""


def test_scrub_is_on_for_agents_that_can_run_commands(tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    roster = load_roster(tmp_path / "agents.yaml", {})
    assert agent_env.cli_env(roster.agents["shell"]) == {agent_env.SCRUB_ENV: "1"}
    assert agent_env.cli_env(roster.agents["optout"]) == {}
    assert agent_env.cli_env(roster.agents["talker"]) == {}


def test_up_refuses_scrubbed_agents_without_bubblewrap(tmp_path: Path) -> None:
    """The CLI will not start scrubbed without bwrap: `up` says so first, with the fix."""
    (tmp_path / "agents.yaml").write_text(textwrap.dedent(ROSTER), encoding="utf-8")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "up", "--json"],
        cwd=tmp_path,
        env={**os.environ, "PATH": str(empty), "ANTHROPIC_API_KEY": "sk-ant-fake"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "sandbox_unavailable"
    assert "agents shell run commands (Bash)" in report["message"]
    assert 'CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: "0"' in report["message"]
    assert "optout" not in report["message"]
    assert "talker" not in report["message"]
    assert not (tmp_path / "queue").exists()


@pytest.mark.parametrize("value", ["0", "false", " OFF ", "no"])
def test_the_opt_out_reads_like_the_cli_does(tmp_path: Path, value: str) -> None:
    text = ROSTER.replace('"off"', json.dumps(value))
    (tmp_path / "agents.yaml").write_text(text, encoding="utf-8")
    assert not agent_env.scrubbed(load_roster(tmp_path / "agents.yaml", {}).agents["optout"])
