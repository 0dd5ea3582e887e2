"""Shared fixtures: a scripted model and the environment that points the real claude CLI at it.

``scripted_model(script, *, record=None) -> ScriptedModel``
    A started :class:`~orchestrator.scripted_model.ScriptedModel`, stopped at
    teardown. ``script`` is a dict (``{"rules": [...], "default": ...}``), a
    list of rules, a ``Script``, or a path to a YAML file (a bare name is looked
    up in ``tests/scripts/``). Every request is also written to
    ``tmp_path/scripted-model-N.jsonl`` (or ``record``) for post-mortems.
    Read what the CLI sent with ``model.requests``,
    ``model.requests_matching(text, tool_result=, agent=, tool=)`` and
    ``model.wait_for_request(...)``; helpers ``last_user_text``,
    ``tool_results``, ``tools_offered`` in ``orchestrator.scripted_model``.

``claude_env(model, *, home=None, **overrides) -> dict[str, str]``
    The environment for the CLI: ``ANTHROPIC_BASE_URL`` (the model),
    ``ANTHROPIC_API_KEY`` (a fake key), its own ``HOME`` (``tmp_path/home``
    unless ``home`` is given; the CLI writes ``~/.claude``), ``ENABLE_TOOL_SEARCH=false``
    (SDK MCP tools offered directly, not behind ToolSearch), the switches that
    keep the CLI offline and quiet, one retry at most (``CLAUDE_CODE_MAX_RETRIES=1``:
    the default is 10 with backoff up to ~30 s, about 170 s in all against a
    persistent 500), and blanks for ambient variables that would send it
    elsewhere. ``overrides`` win (``CLAUDE_CODE_MAX_RETRIES="3"``).

``claude_options(model, **options) -> ClaudeAgentOptions``
    Options for ``ClaudeSDKClient`` with ``env=claude_env(model)`` (an ``env``
    option is merged over it) and ``cwd=tmp_path/work`` unless given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions

from orchestrator.scripted_model import Script, ScriptedModel

SCRIPTS = Path(__file__).parent / "scripts"
FAKE_API_KEY = "sk-ant-test-scripted-model-0000"

# What keeps the CLI offline and quiet. Each is read by the bundled CLI 2.1.331
# (found in its source); with them the only connection it opens is to the model
# (checked with strace), without them it looks up telemetry hosts and sends
# side requests (session titles).
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
# Ambient variables that would send the CLI somewhere else or authenticate it
# differently; blanked when present (an empty value reads as unset).
_BLANKED = (
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)

ModelFactory = Callable[..., ScriptedModel]
EnvFactory = Callable[..., dict[str, str]]
OptionsFactory = Callable[..., ClaudeAgentOptions]


@pytest.fixture
def scripted_model(tmp_path: Path) -> Iterator[ModelFactory]:
    started: list[ScriptedModel] = []

    def start(
        script: Mapping[str, Any] | list[Any] | Script | str | Path,
        *,
        record: Path | None = None,
    ) -> ScriptedModel:
        source: Mapping[str, Any] | Script | Path
        if isinstance(script, list):
            source = {"rules": script}
        elif isinstance(script, str | Path):
            path = Path(script)
            source = (
                SCRIPTS / path if not path.is_absolute() and (SCRIPTS / path).exists() else path
            )
        else:
            source = script
        record = record or tmp_path / f"scripted-model-{len(started) + 1}.jsonl"
        model = ScriptedModel(source, record=record)
        started.append(model)
        return model.start()

    yield start
    for model in started:
        model.stop()


@pytest.fixture
def claude_env(tmp_path: Path) -> EnvFactory:
    def env(model: ScriptedModel, *, home: Path | None = None, **overrides: str) -> dict[str, str]:
        home = home or tmp_path / "home"
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        no_proxy = ",".join(
            p for p in ("127.0.0.1", "localhost", os.environ.get("NO_PROXY", "")) if p
        )
        return {
            **{name: "" for name in _BLANKED if name in os.environ},
            "ANTHROPIC_BASE_URL": model.base_url,
            "ANTHROPIC_API_KEY": FAKE_API_KEY,
            "HOME": str(home),
            # Set, not inherited: an ambient CLAUDE_CONFIG_DIR would escape the fresh HOME.
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ENABLE_TOOL_SEARCH": "false",
            "CLAUDE_CODE_MAX_RETRIES": "1",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            **QUIET_ENV,
            **overrides,
        }

    return env


@pytest.fixture
def claude_options(tmp_path: Path, claude_env: EnvFactory) -> OptionsFactory:
    def options(model: ScriptedModel, **kwargs: Any) -> ClaudeAgentOptions:
        env = {**claude_env(model), **kwargs.pop("env", {})}
        cwd = kwargs.pop("cwd", None)
        if cwd is None:
            cwd = tmp_path / "work"
            cwd.mkdir(exist_ok=True)
        return ClaudeAgentOptions(env=env, cwd=cwd, **kwargs)

    return options
