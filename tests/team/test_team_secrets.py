"""Secrets a model types, or an agent's commands print, never reach a log or a screen
(orchestrator/secret_rules.py, orchestrator/redact.py): the real CLI, a real sandboxed
Bash, the scripted model, the real `up` console and `logs` verb (review H1, H2, M2)."""

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

DONE = "CMD-DONE"
DB_PASS = "hunter2-db-pass-value"
GITLAB_PAT = "gl-roster-pat-value-77"
HEADER = "gw-secret-header-value-42"


def _everything_people_read(t: Team, agent: str) -> dict[str, str]:
    """Every log file, the console of `up` and `octy-orchestrate logs AGENT`."""
    seen = {f.name: f.read_text(errors="replace") for f in (t.folder / "logs").glob("*.jsonl")}
    seen["up console"] = t.output()
    seen["logs verb"] = t.octy("logs", agent, check=False).stdout
    return seen


def test_what_an_agents_commands_hold_never_reaches_logs_or_console(
    tmp_path: Path, scripted_model: Callable[..., Any], claude_env: Callable[..., dict[str, str]]
) -> None:
    """Review H2 and M2. The roster gives an agent `env: {DB_PASS: ${DB_PASS}, GITLAB_PAT:
    ...}` and the team runs behind a gateway whose credential is in
    ANTHROPIC_CUSTOM_HEADERS. The model's command echoes the values and runs `env`, and the
    model repeats the password in its answer: no log, console line or `logs` output holds
    any of them (DB_PASS and GITLAB_PAT were logged in clear: the log redactor did not
    know the names agent_env blanks). The CLI still sends the gateway's header."""
    me = agent_rule("dep")
    command = f"echo {DB_PASS} {GITLAB_PAT}; env; echo {DONE}"
    rules = [
        {"agent": me, "tool_result": DONE, "text": f"deployed with password {DB_PASS}"},
        {"agent": me, "match": "GO", "tool_use": {"name": "Bash", "input": {"command": command}}},
    ]
    model = scripted_model({"rules": rules, "api_key": FAKE_API_KEY})
    env = claude_env(model, ANTHROPIC_CUSTOM_HEADERS=f"x-gateway-key: {HEADER}")
    agents = {
        "dep": {"tools": ["Bash"], "env": {"DB_PASS": "${DB_PASS}", "GITLAB_PAT": GITLAB_PAT}}
    }
    t = Team(tmp_path, env, agents, model=model)
    t.env["DB_PASS"] = DB_PASS
    try:
        t.up()
        t.wait_ready("dep")
        assert t.ask("dep", "GO", timeout=120) == f"deployed with password {DB_PASS}"
        [request] = t.model.requests_matching(tool_result=DONE, agent=me)
        printed = " ".join(str(r.get("content")) for r in tool_results(request))
        seen = _everything_people_read(t, "dep")
    finally:
        t.stop()
    assert f"DB_PASS={DB_PASS}" in printed  # the command did hold them
    assert any(HEADER in str(r.get("headers", {})) for r in t.model.requests)
    assert "dep.jsonl" in seen
    for where, text in seen.items():
        for secret in (DB_PASS, GITLAB_PAT, HEADER):
            assert secret not in text, (where, secret)


PEM_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
PEM = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
DOTENV_PASSWORD = "hunter2-in-dotenv"
STRIPE = "sk_live_51H8abcdefghijklmnopqrstu"
BASIC = "YWxhZGRpbjpvcGVuc2VzYW1lLXNlY3JldA=="
URL_TOKEN = "tokenInTheUrl0123456789"
QUERY_KEY = "queryApiKey0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"
SHAPED = [PEM_BODY, DOTENV_PASSWORD, STRIPE, BASIC, URL_TOKEN, QUERY_KEY, JWT]


def test_secret_shapes_in_a_models_tool_input_never_reach_logs_or_console(
    tmp_path: Path, scripted_model: Callable[..., Any], claude_env: Callable[..., dict[str, str]]
) -> None:
    """Review H1. One turn writes a deploy key and a .env file and runs curl with Basic
    credentials, a token in the URL, a key in the query and a JWT: tool_used logged each
    input whole, and the console and `logs` showed them."""
    me = agent_rule("dev")
    work = tmp_path / "work"
    work.mkdir()
    curl = (
        f"echo curl -H 'Authorization: Basic {BASIC}' -H 'x-session: {JWT}' "
        f"https://{URL_TOKEN}@ci.invalid/api?api_key={QUERY_KEY}; echo {DONE}"
    )
    dotenv = f"DB_PASSWORD={DOTENV_PASSWORD}\nSTRIPE_SECRET_KEY={STRIPE}\n"
    calls = [
        {"name": "Write", "input": {"file_path": str(work / "id_deploy"), "content": PEM}},
        {"name": "Write", "input": {"file_path": str(work / ".env"), "content": dotenv}},
        {"name": "Bash", "input": {"command": curl}},
    ]
    rules = [
        {"agent": me, "tool_result": DONE, "text": "written"},
        {"agent": me, "match": "KEYS", "tool_use": calls},
    ]
    model = scripted_model({"rules": rules, "api_key": FAKE_API_KEY})
    agents = {"dev": {"tools": ["Write", "Bash"], "cwd": str(work)}}
    t = Team(tmp_path, claude_env(model), agents, model=model)
    try:
        t.up()
        t.wait_ready("dev")
        assert t.ask("dev", "KEYS", timeout=120) == "written"
        seen = _everything_people_read(t, "dev")
    finally:
        t.stop()
    assert (work / ".env").read_text() == dotenv  # the tools ran with the real values
    assert "tool_used" in seen["dev.jsonl"]
    for where, text in seen.items():
        for secret in SHAPED:
            assert secret not in text, (where, secret)
