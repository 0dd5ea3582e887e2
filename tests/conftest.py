"""Shared fixtures: a scripted model and the environment that points the real claude CLI at it.

``scripted_model(script, *, record=None) -> ScriptedModel``
    A started :class:`~orchestrator.scripted_model.ScriptedModel`, stopped at
    teardown. ``script`` is a dict (``{"rules": [...], "default": ...}``), a
    list of rules, a ``Script``, or a path to a YAML file (a bare name is looked
    up in ``tests/scripted/scripts/``). Every request is also written to
    ``tmp_path/scripted-model-N.jsonl`` (or ``record``) for post-mortems.
    Read what the CLI sent with ``model.requests``,
    ``model.requests_matching(text, tool_result=, agent=, tool=)`` and
    ``model.wait_for_request(...)``; helpers ``last_user_text``,
    ``tool_results``, ``tools_offered`` in ``orchestrator.scripted_model``.

``claude_env(model, *, home=None, **overrides) -> dict[str, str]``
    The environment for the CLI: ``model.cli_env()`` (``ANTHROPIC_BASE_URL``,
    a fake ``ANTHROPIC_API_KEY``, ``ENABLE_TOOL_SEARCH=false`` so SDK MCP tools
    are offered directly, the switches that keep the CLI offline and quiet,
    blanks for ambient variables that would send it elsewhere), its own ``HOME``
    (``tmp_path/home`` unless ``home`` is given; the CLI writes ``~/.claude``),
    and one retry at most (``CLAUDE_CODE_MAX_RETRIES=1``: the default is 10 with
    backoff up to ~30 s, ~170 s against a persistent 500). ``overrides`` win
    (``CLAUDE_CODE_MAX_RETRIES="3"``).

``claude_options(model, **options) -> ClaudeAgentOptions``
    Options for ``ClaudeSDKClient`` with ``env=claude_env(model)`` (an ``env``
    option is merged over it) and ``cwd=tmp_path/work`` unless given.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions

from orchestrator.scripted_model import Script, ScriptedModel

# Its helpers assert for the tests that call them: pytest shows what differed there too.
pytest.register_assert_rewrite("approval_lines")


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the CLIs the tests start, as it does from a terminal. A suite started
    as a background job (`pytest &` in a script, `setsid … &`) inherits SIGINT ignored, and
    an ignored signal stays ignored across exec: every CLI a test interrupted with SIGINT
    ran on (`logs -f` until the test's 60 s limit, its pipes then leaking into the next
    test's ResourceWarnings). Python's own handler here becomes the default in a child."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


SCRIPTS = Path(__file__).parent / "scripted" / "scripts"

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
        return {
            **model.cli_env(),  # base URL, fake key, ENABLE_TOOL_SEARCH=false, offline switches
            "HOME": str(home),
            # Set, not inherited: an ambient CLAUDE_CONFIG_DIR would escape the fresh HOME.
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            # The CLI's default is 10 retries with backoff up to ~30 s: ~170 s of
            # retrying a persistent 500 (measured). One retry keeps that ~0.5 s.
            "CLAUDE_CODE_MAX_RETRIES": "1",
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


@pytest.fixture
def team(tmp_path: Path, scripted_model: ModelFactory, claude_env: EnvFactory) -> Iterator[Any]:
    """``team(rules, agents, **team_settings) -> Team``: a roster in tmp_path around a script
    (see tests/team_harness.py); every supervisor it started is stopped at teardown."""
    from team_harness import Team

    made: list[Team] = []

    def make(rules: list[dict[str, Any]], agents: dict[str, dict[str, Any]], **team: Any) -> Team:
        model = scripted_model({"rules": rules})
        made.append(Team(tmp_path, claude_env(model), agents, model=model, **team))
        return made[-1]

    yield make
    for t in made:
        t.stop()
