"""What an agent's commands see of the environment (orchestrator/agent_env.py): the
operator's secrets and the model's key never, what the roster gave the agent yes; an
agent may opt out (inherit_secrets: true)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator import agent_env
from orchestrator.roster import load_roster
from orchestrator.scripted.client_env import FAKE_API_KEY
from orchestrator.scripted_model import tool_results

PREFIX = "CLAUDE_CODE_SHELL_PREFIX"
ENV_DONE = "ENV-DONE"
OPERATOR_SECRET = "operator-shell-secret-value"
DB_PASSWORD = "db-password-value"
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


def test_an_agents_commands_do_not_see_the_operators_secrets(
    tmp_path: Path, scripted_model: Callable[..., Any], claude_env: Callable[..., dict[str, str]]
) -> None:
    """The real CLI, a real Bash `env`: the supervisor's ANTHROPIC_API_KEY, MYSECRET_TOKEN
    and a DATABASE_URL holding a password reach neither a sandboxed agent's commands nor
    an unsandboxed one's, while the CLI still authenticates to a model that refuses any
    other key (the key reaches it through its key helper). The roster's own env reaches
    the commands as written. inherit_secrets: true gives an agent's commands everything,
    as before; the key file is gone once the supervisor has stopped."""
    names = ("boxed", "open", "inherits")
    model = scripted_model({"rules": _rules(*names), "api_key": FAKE_API_KEY})
    roster_env = {"A_PLAIN": ROSTER_PLAIN, "A_ONLY_SECRET": ROSTER_SECRET}
    t = Team(
        tmp_path,
        claude_env(model),
        {
            "boxed": {"tools": ["Bash"], "env": roster_env},
            "open": {"tools": ["Bash"], "sandbox": False, "env": roster_env},
            "inherits": {"tools": ["Bash"], "sandbox": False, "inherit_secrets": True},
        },
        model=model,
    )
    t.env["MYSECRET_TOKEN"] = OPERATOR_SECRET
    t.env["DATABASE_URL"] = f"postgres://app:{DB_PASSWORD}@db.invalid/app"
    try:
        t.up()
        t.wait_ready(*names)
        seen: dict[str, str] = {}
        for name in names:
            assert t.ask(name, "SHOW-ENV", timeout=90) == "done"
            [request] = t.model.requests_matching(tool_result=ENV_DONE, agent=agent_rule(name))
            seen[name] = " ".join(str(r.get("content")) for r in tool_results(request))
    finally:
        t.stop()
    for name in ("boxed", "open"):
        out = seen[name]
        assert ENV_DONE in out
        for secret in (FAKE_API_KEY, OPERATOR_SECRET, DB_PASSWORD):
            assert secret not in out, (name, secret, out)
        assert f"A_PLAIN={ROSTER_PLAIN}" in out
        assert f"A_ONLY_SECRET={ROSTER_SECRET}" in out  # the roster gave it to this agent
        assert f"OCTY_AGENT={name}" in out
    for secret in (FAKE_API_KEY, OPERATOR_SECRET, DB_PASSWORD):
        assert secret in seen["inherits"]
    assert not list((tmp_path / "queue").glob(f"*{agent_env.KEY_FILE_MARK}*"))


ROSTER = """\
name: t
agents:
  a:
    prompt: p
    env: {GIVEN_TOKEN: roster-given}
  b:
    prompt: p
    env: {CLAUDE_CODE_USE_BEDROCK: "1", ANTHROPIC_API_KEY: agent-key}
  c:
    prompt: p
    inherit_secrets: true
"""


def test_which_names_are_withheld(tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    agents = load_roster(tmp_path / "agents.yaml", {}).agents
    environ = {
        "PATH": "/usr/bin",
        "GIT_AUTHOR_NAME": "Op",
        "KEYBOARD": "us",
        "PWD": "/",
        "HTTPS_PROXY": "http://u:p@proxy:3128",
        "CLAUDE_CODE_OAUTH_TOKEN": "sign-in",
        "ANTHROPIC_API_KEY": "sk-op",
        "ANTHROPIC_BASE_URL": "https://api.invalid",
        "GITHUB_TOKEN": "g",
        "GHTOKEN": "g",
        "SSH_AUTH_SOCK": "/run/agent",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "PIP_INDEX_URL": "https://token@pypi.invalid/simple",
        "GIVEN_TOKEN": "operator's",
    }
    assert agent_env.withheld(agents["a"], environ) == [
        "ANTHROPIC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "GHTOKEN",
        "GITHUB_TOKEN",
        "PIP_INDEX_URL",
        "SSH_AUTH_SOCK",
    ]
    # Bedrock signs with AWS credentials: the CLI keeps them. The agent's own key wins.
    assert "AWS_SECRET_ACCESS_KEY" not in agent_env.withheld(agents["b"], environ)
    assert agent_env.model_key(agents["b"], environ) == "agent-key"
    under, over = agent_env.cli_env(agents["b"], environ)
    assert under["GITHUB_TOKEN"] == ""
    assert over == {"ANTHROPIC_API_KEY": ""}  # blanked over the roster's env as well
    assert agent_env.withheld(agents["c"], environ) == []
    assert agent_env.cli_env(agents["c"], environ) == ({}, {})


def test_what_the_cli_needs_to_reach_its_model_is_kept(tmp_path: Path) -> None:
    """Review M2: with CLAUDE_CODE_USE_FOUNDRY the Foundry key, a base URL with a user
    part and the mTLS client key were blanked, and the CLI could not authenticate. The
    gateway's headers are the CLI's too (kept, and a documented gap for commands)."""
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a: {prompt: p}\n"
        "  f: {prompt: p, env: {CLAUDE_CODE_USE_FOUNDRY: '1'}}\n",
        encoding="utf-8",
    )
    agents = load_roster(tmp_path / "agents.yaml", {}).agents
    environ = {
        "ANTHROPIC_FOUNDRY_API_KEY": "foundry-key",
        "ANTHROPIC_FOUNDRY_RESOURCE": "res",
        "ANTHROPIC_BASE_URL": "https://u:p@gateway.invalid/v1",
        "ANTHROPIC_CUSTOM_HEADERS": "x-gateway-key: gw-value",
        "CLAUDE_CODE_CLIENT_CERT": "/etc/c.pem",
        "CLAUDE_CODE_CLIENT_KEY": "/etc/k.pem",
        "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE": "pass-phrase",
        "DB_PASS": "hunter2",
    }
    assert agent_env.withheld(agents["f"], environ) == ["DB_PASS"]
    # Without Foundry switched on its key is an ordinary secret.
    assert agent_env.withheld(agents["a"], environ) == ["ANTHROPIC_FOUNDRY_API_KEY", "DB_PASS"]


def _as_the_cli_runs(prefix: str, command: str) -> str:
    """The command line the bundled CLI (2.1.332) runs for ``command`` under ``prefix``:
    the part before the prefix's last " -" quoted as one word, the rest as written."""
    at = prefix.rfind(" -")
    return f"{shlex.quote(prefix[:at])} {prefix[at + 1 :]} {shlex.quote(command)}"


def test_a_prefix_of_theirs_runs_after_ours(tmp_path: Path) -> None:
    """An agent whose roster env (or the supervisor's environment) sets its own
    CLAUDE_CODE_SHELL_PREFIX gets ours chained in front: the names are unset, then the
    command runs through theirs as the CLI would run it (a wrapper script given the
    command as its one argument, or a program and its options before a last " -"), its
    exit status the command's, in bash (the Bash tool) and sh (hooks). A blank prefix
    is none."""
    wrapper = tmp_path / "wrap dir" / "wrap.sh"  # a space in the path, and a quote below
    wrapper.parent.mkdir()
    wrapper.write_text('#!/bin/sh\necho "theirs got [$1] K=${K-unset}"\nexec bash -c "$1"\n')
    wrapper.chmod(0o755)
    theirs = {
        "o": str(wrapper),
        # A program and its options before the last " -", quotes and $ in the rest.
        "c": """/bin/sh -c 'export OK=1; eval "$0"'""",
        "b": "  ",
    }
    roster = {"name": "t", "agents": {"a": {"prompt": "p"}}}
    for name, prefix in theirs.items():
        roster["agents"][name] = {"prompt": "p", "env": {PREFIX: prefix}}
    (tmp_path / "agents.yaml").write_text(json.dumps(roster), encoding="utf-8")
    agents = load_roster(tmp_path / "agents.yaml", {}).agents
    environ = {"PATH": os.environ["PATH"], "ANTHROPIC_CUSTOM_HEADERS": "x-k: gw-value"}
    work = tmp_path / "work"
    work.mkdir()
    prefixes = {n: agent_env.prefix_env(agents[n], environ, work)[PREFIX] for n in "aocb"}
    assert prefixes["b"] == prefixes["a"]  # a blank prefix is none
    # The supervisor's environment's prefix is chained as the roster's is.
    supervisors = {**environ, PREFIX: str(wrapper)}
    assert agent_env.prefix_env(agents["a"], supervisors, work)[PREFIX] == prefixes["o"]
    command = 'echo "K=${K-unset} OK=${OK-unset} H=${ANTHROPIC_CUSTOM_HEADERS-unset}"; exit 7'
    for shell in ("bash", "sh"):
        for name, ran in (("o", "theirs got [echo"), ("c", "OK=1")):
            done = subprocess.run(
                [shell, "-c", _as_the_cli_runs(prefixes[name], command)],
                check=False,
                env={**environ, "K": "kept-value"},
                capture_output=True,
                text=True,
            )
            assert done.returncode == 7, (shell, name, done)
            assert "gw-value" not in done.stdout
            assert "H=unset" in done.stdout
            assert ran in done.stdout, (shell, name, done)
            assert "K=kept-value" in done.stdout
    # A project with stdio MCP servers: theirs is used as given.
    (work / ".mcp.json").write_text('{"mcpServers": {}}', encoding="utf-8")
    assert agent_env.prefix_env(agents["o"], environ, work) == {}


def test_the_shell_prefix_unsets_what_the_cli_keeps(tmp_path: Path) -> None:
    """The CLI keeps a gateway's credentials for itself; the prefix it runs every command
    through unsets them (names only: what the roster's env gives, and proxies, stay), in
    the very shell that runs the command: its exit status, signal and stdin are its own."""
    (tmp_path / "agents.yaml").write_text(
        "name: t\nagents:\n  a: {prompt: p}\n"
        "  g: {prompt: p, env: {ANTHROPIC_CUSTOM_HEADERS: 'x-mine: given'}}\n"
        "  i: {prompt: p, inherit_secrets: true}\n"
        "  o: {prompt: p, env: {CLAUDE_CODE_SHELL_PREFIX: /opt/mine}}\n",
        encoding="utf-8",
    )
    agents = load_roster(tmp_path / "agents.yaml", {}).agents
    environ = {
        "PATH": os.environ["PATH"],
        "HTTPS_PROXY": "http://u:p@proxy:3128",
        "ANTHROPIC_BASE_URL": "https://u:p@gateway.invalid/v1",
        "ANTHROPIC_CUSTOM_HEADERS": "x-gateway-key: gw-value",
        "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE": "pass-phrase",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer otel",
        "DB_PASS": "hunter2",  # blanked for the CLI already: not the prefix's
        "BAD.NAME_TOKEN": "x",  # no shell can unset it
    }
    kept = agent_env.kept_from_commands(agents["a"], environ)
    assert kept == [
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ]
    assert "ANTHROPIC_CUSTOM_HEADERS" not in agent_env.kept_from_commands(agents["g"], environ)
    assert agent_env.kept_from_commands(agents["i"], environ) == []
    # A sign-in token alone needs no prefix: the CLI keeps it from its commands itself;
    # its refresh token it does not (tests/team/test_gateway_credentials.py measures both).
    signed_in = {"PATH": "/usr/bin", "CLAUDE_CODE_OAUTH_TOKEN": "sign-in"}
    assert agent_env.kept_from_commands(agents["a"], signed_in) == []
    assert agent_env.prefix_env(agents["a"], signed_in, tmp_path) == {}
    refresh = {**signed_in, "CLAUDE_CODE_OAUTH_REFRESH_TOKEN": "refresh"}
    assert agent_env.kept_from_commands(agents["a"], refresh) == ["CLAUDE_CODE_OAUTH_REFRESH_TOKEN"]
    work = tmp_path / "work"
    work.mkdir()
    [(name, prefix)] = agent_env.prefix_env(agents["a"], environ, work).items()
    assert name == "CLAUDE_CODE_SHELL_PREFIX"
    assert agent_env.prefix_env(agents["i"], environ, work) == {}
    assert PREFIX in agent_env.prefix_env(agents["o"], environ, work)  # theirs, chained
    run_env = {**environ, "KEPT_PLAIN": "plain"}
    for shell in ("bash", "sh"):  # the Bash tool's shell, and the hooks' /bin/sh
        line = _as_the_cli_runs(prefix, 'env; read -r line; echo "read=$line"; exit 7')
        done = subprocess.run(
            [shell, "-c", line],
            check=False,
            env=run_env,
            input="fed\n",
            capture_output=True,
            text=True,
        )
        assert done.returncode == 7, done
        for value in ("gw-value", "u:p@gateway", "pass-phrase", "otel"):
            assert value not in done.stdout, (shell, value)
        assert "KEPT_PLAIN=plain" in done.stdout
        assert "HTTPS_PROXY=http://u:p@proxy:3128" in done.stdout
        assert "read=fed" in done.stdout
        killed = subprocess.run(
            [shell, "-c", _as_the_cli_runs(prefix, "kill -TERM $$")], check=False
        )
        assert killed.returncode == -signal.SIGTERM
    # A project that may start stdio MCP servers gets none: the CLI would spawn the whole
    # prefix as the server's program.
    (work / ".mcp.json").write_text('{"mcpServers": {}}', encoding="utf-8")
    assert agent_env.prefix_env(agents["a"], environ, work) == {}
    (work / ".mcp.json").write_text("", encoding="utf-8")  # the sandbox's empty stand-in
    assert agent_env.prefix_env(agents["a"], environ, work) != {}
    (work / ".claude").mkdir()
    (work / ".claude/settings.json").write_text('{"enabledPlugins": {"p@m": true}}')
    assert agent_env.prefix_env(agents["a"], environ, work) == {}
    # Unless none of its commands runs in the sandbox: then a sealed program of this
    # process's, the CLI's shell pinned, serves commands, hooks and MCP servers alike.
    sealed = agent_env.prefix_env(agents["a"], environ, work, sandboxed=False)
    program = sealed[PREFIX]
    assert re.fullmatch(rf"/proc/{os.getpid()}/fd/\d+", program)
    assert sealed["CLAUDE_CODE_SHELL"] == agent_env.cli_shell(environ)
    with pytest.raises(OSError, match=r"not permitted|denied"):
        Path(program).write_text("echo mine")  # sealed: nobody can change it
    # The same names, the same program.
    assert agent_env.prefix_env(agents["a"], environ, work, sandboxed=False) == sealed
    for line in (
        f"{shlex.quote(program)} {shlex.quote('env; exit 7')}",  # a command, a hook
        f"exec {program} " + shlex.quote(shlex.join(["sh", "-c", "env; exit 7"])),  # MCP
    ):
        done = subprocess.run(
            ["sh", "-c", line], check=False, env=run_env, capture_output=True, text=True
        )
        assert done.returncode == 7, done
        assert "KEPT_PLAIN=plain" in done.stdout
        for value in ("gw-value", "u:p@gateway", "pass-phrase"):
            assert value not in done.stdout, value
    # A prefix of theirs is then used as given.
    assert agent_env.prefix_env(agents["o"], environ, work, sandboxed=False) == {}


def test_the_shell_the_cli_would_run(tmp_path: Path) -> None:
    """The CLI's choice (2.1.332, its code): CLAUDE_CODE_SHELL or SHELL when an executable
    bash or zsh, else bash on PATH (zsh first when SHELL is not bash)."""
    bash = shutil.which("bash")
    assert bash is not None
    path = os.environ["PATH"]
    assert agent_env.cli_shell({"PATH": path, "SHELL": bash}) == bash
    assert agent_env.cli_shell({"PATH": path, "SHELL": "/bin/fish"}) == bash  # no zsh here
    assert agent_env.cli_shell({"PATH": path, "CLAUDE_CODE_SHELL": "/nowhere/bash"}) == bash
    assert agent_env.cli_shell({"PATH": str(tmp_path)}) is None
