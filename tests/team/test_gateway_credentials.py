"""What of a gateway's credentials an agent's commands see (README, "Secrets and agents'
commands"), measured with the real CLI, a real Bash `env` and the scripted model: the
supervisor's shell prefix unsets them (orchestrator/agent_env.py), except for an agent
whose project may start stdio MCP servers; and why the CLI's own
CLAUDE_CODE_SUBPROCESS_ENV_SCRUB is not switched on for agents. Both pin behaviour of the
bundled CLI (2.1.332): a CLI that changes it fails here, and the README's paragraph is to
be measured again."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from team_harness import Team, agent_rule

from orchestrator.scripted.client_env import FAKE_API_KEY
from orchestrator.scripted_model import tool_results

pytestmark = [
    pytest.mark.cli,
    pytest.mark.skipif(shutil.which("socat") is None, reason="the CLI's sandbox needs socat"),
]

DONE = "GATEWAY-DONE"
HEADER = "gw-header-value-5150"
URL_PASSWORD = "gw-url-password-5150"
PASSPHRASE = "client-key-passphrase-5150"
OTEL = "otel-collector-token-5150"
OAUTH = "oauth-sign-in-token-5150"
REFRESH = "oauth-refresh-token-5150"
PACKAGE = '{"name": "theirs"}\n'
# The last two: an attempt to change the program the prefix runs (the shell itself), and a
# signal that ends the command's shell.
# And whether the command can reach its CLI's own inbox (CLAUDE_CODE_MESSAGING_SOCKET, a
# Unix socket; with CLAUDE_CODE_MESSAGING_TOKEN a process posts into the agent's session).
INBOX = (
    'python3 -c "import os, socket; socket.socket(socket.AF_UNIX)'
    ".connect(os.environ['CLAUDE_CODE_MESSAGING_SOCKET'])\" 2>/dev/null"
    " && echo inbox=reached || echo inbox=refused"
)
COMMAND = (
    f"env; echo '{{}}' > package.json; echo write=$?; echo {DONE}; {INBOX}; "
    ": >> /proc/self/exe; echo exe=$?; kill -TERM $$"
)
MCP_MARK = "mcp-started"
# What the CLI's scrub makes in an agent's working folder, measured (there are more).
SCRUB_STUBS = (".npmrc", ".env", ".env.local", "yarn.lock", "pnpm-lock.yaml", "bunfig.toml")


def test_a_gateways_credentials_leave_commands_and_the_clis_own_scrub(
    tmp_path: Path, scripted_model: Callable[..., Any], claude_env: Callable[..., dict[str, str]]
) -> None:
    """A team behind a gateway: its header in ANTHROPIC_CUSTOM_HEADERS, a password in
    ANTHROPIC_BASE_URL, an mTLS key's passphrase, an OpenTelemetry collector's token. Every
    CLI holds them all (read from /proc) and sends the header. They used to reach every
    agent's Bash `env` too (the CLI reads them from its environment only); now the Bash
    `env` of `boxed` (sandboxed) and `open` (sandbox: false) shows none of them (the
    supervisor's shell prefix), nor a hook's, with the command's own exit status; `open` cannot
    change the program the prefix runs. `mcp`, whose project has a stdio MCP server, gets
    no prefix (the CLI would spawn the prefix as the server): its server starts, its
    sandboxed `env` shows none of them (the sandbox's credentials.envVars), but its
    server's and its hook's environment still hold them, as does the `env` of `inherits`
    (inherit_secrets: true, sandbox: false). `openmcp` (sandbox: false, an MCP server
    too) runs everything through a sealed program of the supervisor's: its command, hook
    and server see none of them, and the server starts. `chained` sets its own
    CLAUDE_CODE_SHELL_PREFIX (a wrapper script): ours runs in front of it, so its command
    and its hook see none of them, and theirs still ran. Never OTEL's headers (the CLI
    keeps every OTEL_* from its commands), nor the sign-in token (the CLI keeps it from
    commands, hooks and MCP servers itself; not its refresh token). Every command holds
    the CLI's own inbox token, but only the unsandboxed ones can reach the inbox.
    `scrubbed` sets CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1 in its roster env: its `env` shows
    none of them and the CLI still sends the header, but the CLI has put empty
    package-manager and .env files in its working folder and its commands cannot write the
    project's own package.json."""
    names = ("boxed", "open", "mcp", "inherits", "scrubbed", "chained", "openmcp")
    rules: list[dict[str, Any]] = []
    for name in names:
        me = agent_rule(name)
        rules += [
            {"agent": me, "tool_result": DONE, "text": "done"},
            {
                "agent": me,
                "match": "GO",
                "tool_use": {"name": "Bash", "input": {"command": COMMAND}},
            },
        ]
    model = scripted_model({"rules": rules, "api_key": FAKE_API_KEY})
    env = claude_env(
        model,
        ANTHROPIC_BASE_URL=model.base_url.replace("://", f"://gw:{URL_PASSWORD}@", 1),
        ANTHROPIC_CUSTOM_HEADERS=f"x-gateway-key: {HEADER}",
        CLAUDE_CODE_CLIENT_KEY_PASSPHRASE=PASSPHRASE,
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer {OTEL}",
        CLAUDE_CODE_OAUTH_TOKEN=OAUTH,
        CLAUDE_CODE_OAUTH_REFRESH_TOKEN=REFRESH,
    )
    folders = {name: tmp_path / name for name in names}
    for folder in folders.values():
        folder.mkdir()
        (folder / "package.json").write_text(PACKAGE)
    # mcp (sandboxed) and openmcp (sandbox: false) each have a stdio MCP server and a hook.
    marks = {n: tmp_path / f"{MCP_MARK}-{n}" for n in ("mcp", "openmcp")}
    server_envs = {n: tmp_path / f"mcp-server-env-{n}" for n in marks}
    for name, mark in marks.items():
        command = f'env > "{server_envs[name]}"; echo started > "{mark}"; exec cat'
        server = {"command": "/bin/sh", "args": ["-c", command]}
        (folders[name] / ".mcp.json").write_text(json.dumps({"mcpServers": {"probe": server}}))
        (folders[name] / ".claude").mkdir()
        mcp_hook = {"type": "command", "command": f'env > "{tmp_path / f"hook-env-{name}"}"'}
        (folders[name] / ".claude" / "settings.json").write_text(
            json.dumps(
                {
                    "enableAllProjectMcpServers": True,
                    "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [mcp_hook]}]},
                }
            )
        )
    server_env = server_envs["mcp"]
    # A hook of boxed's project: the CLI runs it outside the sandbox, through the prefix.
    hook = {"type": "command", "command": f'env > "{tmp_path / "hook-env"}"'}
    (folders["boxed"] / ".claude").mkdir()
    (folders["boxed"] / ".claude" / "settings.json").write_text(
        json.dumps({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [hook]}]}})
    )
    agents: dict[str, dict[str, Any]] = {
        name: {"tools": ["Bash"], "cwd": str(folders[name])} for name in names
    }
    agents["open"]["sandbox"] = False
    agents["openmcp"]["sandbox"] = False
    agents["inherits"].update(sandbox=False, inherit_secrets=True)
    agents["scrubbed"]["env"] = {"CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "1"}
    # chained has a prefix of its own, a wrapper script (and a hook that runs through it):
    # ours runs first, then theirs.
    wrapper = tmp_path / "wrap.sh"
    wrapper.write_text('#!/bin/sh\nexport THEIRS_RAN=yes\nexec bash -c "$1"\n')
    wrapper.chmod(0o755)
    agents["chained"]["env"] = {"CLAUDE_CODE_SHELL_PREFIX": str(wrapper)}
    chained_hook = {"type": "command", "command": f'env > "{tmp_path / "hook-env-chained"}"'}
    (folders["chained"] / ".claude").mkdir()
    (folders["chained"] / ".claude" / "settings.json").write_text(
        json.dumps({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [chained_hook]}]}})
    )
    t = Team(tmp_path, env, agents, model=model)
    stray = Path("/tmp/inline-comments-buffer.jsonl")  # the scrub makes it too (measured)
    stray_before = stray.exists()
    printed: dict[str, str] = {}
    cli_environ: dict[str, bytes] = {}
    try:
        t.up()  # its model check too sends the URL's user part as the CLI does
        t.wait_ready(*agents)
        for name in agents:
            pid = t.agent_pid(name)
            assert pid is not None
            cli_environ[name] = Path(f"/proc/{pid}/environ").read_bytes()
            assert t.ask(name, "GO", timeout=120) == "done"
            [request] = t.model.requests_matching(tool_result=DONE, agent=agent_rule(name))
            printed[name] = " ".join(str(r.get("content")) for r in tool_results(request))
            headers = request.get("headers", {})
            assert headers.get("x-gateway-key") == HEADER, (name, headers)
    finally:
        t.stop()
        if not stray_before and stray.exists() and stray.stat().st_size == 0:
            stray.unlink()
    for name in agents:
        # The CLI held every one of them (so it was the CLI that kept OTEL's from commands).
        for secret in (HEADER, URL_PASSWORD, PASSPHRASE, OTEL, OAUTH, REFRESH):
            assert secret.encode() in cli_environ[name], (name, secret)
        assert DONE in printed[name]
        assert OTEL not in printed[name]
        assert "exe=1" in printed[name]  # no command can change its own shell
    print({name: text.splitlines()[0] for name, text in printed.items()})
    for name in ("boxed", "open", "chained"):
        for secret in (HEADER, URL_PASSWORD, PASSPHRASE):
            assert secret not in printed[name], (name, secret)
        assert f"OCTY_AGENT={name}" in printed[name]  # the rest of its environment is there
        assert "write=0" in printed[name]
        assert not any((folders[name] / stub).exists() for stub in SCRUB_STUBS)
    for hook, name in (("hook-env", "boxed"), ("hook-env-chained", "chained")):
        hook_env = (tmp_path / hook).read_text()
        assert f"OCTY_AGENT={name}" in hook_env
        for secret in (HEADER, URL_PASSWORD, PASSPHRASE):
            assert secret not in hook_env, (name, secret)
    # chained's own prefix ran too, for its command and its hook, after ours.
    assert "THEIRS_RAN=yes" in printed["chained"]
    assert "THEIRS_RAN=yes" in (tmp_path / "hook-env-chained").read_text()
    assert "THEIRS_RAN" not in printed["boxed"]
    assert "Text file busy" in printed["open"]  # not a read-only sandbox: the file itself
    # The command's own exit status (its shell ended by SIGTERM), as without the prefix.
    assert printed["boxed"].splitlines()[0] == printed["mcp"].splitlines()[0]
    assert printed["open"].splitlines()[0] == printed["inherits"].splitlines()[0]
    assert printed["open"].startswith("Exit code ")  # 144 as the CLI reports SIGTERM
    assert f"ANTHROPIC_CUSTOM_HEADERS=x-gateway-key: {HEADER}" in printed["inherits"]
    # mcp's commands run in the sandbox, which unsets them (its credentials.envVars), but
    # its MCP server and its hook run outside it, with no prefix: they still see them.
    for text in (
        printed["inherits"],
        (tmp_path / "hook-env-mcp").read_text(),
        server_env.read_text(),
    ):
        assert URL_PASSWORD in text
        assert f"CLAUDE_CODE_CLIENT_KEY_PASSPHRASE={PASSPHRASE}" in text
    for secret in (HEADER, URL_PASSWORD, PASSPHRASE):
        assert secret not in printed["mcp"], secret
    assert "OCTY_AGENT=mcp" in printed["mcp"]
    assert marks["mcp"].read_text() == "started\n"  # mcp's stdio server did start
    # openmcp, unsandboxed, runs everything through a sealed program of the supervisor's
    # (/proc/<pid>/fd/<n>): its command, its hook and its MCP server see none of them, the
    # server starts, the command keeps its own exit status.
    assert marks["openmcp"].read_text() == "started\n"
    assert re.search(rb"CLAUDE_CODE_SHELL_PREFIX=/proc/\d+/fd/\d+\0", cli_environ["openmcp"])
    for text in (
        printed["openmcp"],
        (tmp_path / "hook-env-openmcp").read_text(),
        server_envs["openmcp"].read_text(),
    ):
        assert "OCTY_AGENT=openmcp" in text
        for secret in (HEADER, URL_PASSWORD, PASSPHRASE, REFRESH):
            assert secret not in text, secret
    assert printed["openmcp"].splitlines()[0] == printed["open"].splitlines()[0]
    assert "write=0" in printed["openmcp"]
    scrubbed = printed["scrubbed"]
    for secret in (HEADER, URL_PASSWORD, PASSPHRASE):
        assert secret not in scrubbed, secret
    assert "package.json: Read-only file system" in scrubbed
    assert "write=1" in scrubbed
    assert (folders["scrubbed"] / "package.json").read_text() == PACKAGE
    for stub in SCRUB_STUBS:
        assert (folders["scrubbed"] / stub).read_bytes() == b"", stub
    # The CLI's inbox token reaches every command (the CLI sets it for its children), but
    # a sandboxed command cannot reach the inbox (no Unix sockets in the sandbox): only an
    # agent with sandbox: false can post into its own session, which it could do anyway
    # (its CLI's /proc environ holds the token). So it is left alone (README).
    for name in agents:
        assert "CLAUDE_CODE_MESSAGING_TOKEN=" in printed[name] or name == "scrubbed", name
    for name in ("boxed", "mcp", "chained", "scrubbed"):
        assert "inbox=refused" in printed[name], name
    for name in ("open", "inherits", "openmcp"):
        assert "inbox=reached" in printed[name], name
    # The sign-in token: the CLI keeps it from every command and hook itself (mcp and
    # inherits have no prefix), so the prefix leaves it alone. Not its refresh token: that
    # reaches them (inherits' commands, mcp's hook), so the prefix and the sandbox unset it.
    no_prefix_hook = (tmp_path / "hook-env-mcp").read_text()
    assert OAUTH not in no_prefix_hook
    assert OAUTH not in server_env.read_text()  # nor the MCP server's
    assert REFRESH in no_prefix_hook
    for name in agents:
        assert OAUTH not in printed[name], name
    assert f"CLAUDE_CODE_OAUTH_REFRESH_TOKEN={REFRESH}" in printed["inherits"]
    for name in ("boxed", "open", "chained", "mcp"):
        assert REFRESH not in printed[name]
