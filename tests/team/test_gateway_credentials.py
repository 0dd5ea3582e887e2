"""What of a gateway's credentials an agent's commands see (README, "Secrets and agents'
commands", the known gap), measured with the real CLI, a real Bash `env` and the scripted
model; and why the CLI's own CLAUDE_CODE_SUBPROCESS_ENV_SCRUB is not switched on for
agents (orchestrator/agent_env.py). Both pin behaviour of the bundled CLI (2.1.332): a
CLI that changes it fails here, and the README's paragraph is to be measured again."""

from __future__ import annotations

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
PACKAGE = '{"name": "theirs"}\n'
COMMAND = f"env; echo '{{}}' > package.json; echo write=$?; echo {DONE}"
# What the CLI's scrub makes in an agent's working folder, measured (there are more).
SCRUB_STUBS = (".npmrc", ".env", ".env.local", "yarn.lock", "pnpm-lock.yaml", "bunfig.toml")


def test_a_gateways_credentials_and_the_clis_own_scrub(
    tmp_path: Path, scripted_model: Callable[..., Any], claude_env: Callable[..., dict[str, str]]
) -> None:
    """A team behind a gateway: its header in ANTHROPIC_CUSTOM_HEADERS, a password in
    ANTHROPIC_BASE_URL, an mTLS key's passphrase, an OpenTelemetry collector's token.
    `plain` is any agent: the CLI sends the header and its Bash `env` shows the header, the
    URL's password and the passphrase (the known gap), never OTEL's headers (the CLI keeps
    every OTEL_* from its commands, though it holds them: read from /proc). `scrubbed`
    sets CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1 in its roster env: its `env` shows none of
    them and the CLI still sends the header, but the CLI has put empty package-manager and
    .env files in its working folder and its commands cannot write the project's own
    package.json."""
    rules: list[dict[str, Any]] = []
    for name in ("plain", "scrubbed"):
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
    )
    folders = {name: tmp_path / name for name in ("plain", "scrubbed")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "package.json").write_text(PACKAGE)
    agents = {
        "plain": {"tools": ["Bash"], "cwd": str(folders["plain"])},
        "scrubbed": {
            "tools": ["Bash"],
            "cwd": str(folders["scrubbed"]),
            "env": {"CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "1"},
        },
    }
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
        for secret in (HEADER, URL_PASSWORD, PASSPHRASE, OTEL):
            assert secret.encode() in cli_environ[name], (name, secret)
        assert DONE in printed[name]
        assert OTEL not in printed[name]
    plain = printed["plain"]
    assert f"ANTHROPIC_CUSTOM_HEADERS=x-gateway-key: {HEADER}" in plain
    assert URL_PASSWORD in plain
    assert f"CLAUDE_CODE_CLIENT_KEY_PASSPHRASE={PASSPHRASE}" in plain
    assert "write=0" in plain
    assert not any((folders["plain"] / stub).exists() for stub in SCRUB_STUBS)
    scrubbed = printed["scrubbed"]
    for secret in (HEADER, URL_PASSWORD, PASSPHRASE):
        assert secret not in scrubbed, secret
    assert "package.json: Read-only file system" in scrubbed
    assert "write=1" in scrubbed
    assert (folders["scrubbed"] / "package.json").read_text() == PACKAGE
    for stub in SCRUB_STUBS:
        assert (folders["scrubbed"] / stub).read_bytes() == b"", stub
