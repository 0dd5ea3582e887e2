"""The roster: agents.yaml -> validated objects, and every error a user can make.

Error tests assert the exact text a user reads: file, line, dotted key, the
reason and the fix. The fixtures under tests/roster/rosters/ are copied into tmp_path
so the files (and the prompt files they name) are real.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import RosterError, RosterErrors
from orchestrator.roster import (
    PERMISSION_MODES,
    RESTART_POLICIES,
    AgentSpec,
    Backoff,
    Roster,
    RosterDiff,
    diff_rosters,
    load_roster,
    parse_duration,
    parse_roster,
    parse_size,
)

FIXTURES = Path(__file__).parent / "rosters"
REPO = Path(__file__).parents[2]


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A copy of tests/roster/rosters (YAML files and prompts/) with a work/ folder."""
    folder = tmp_path / "team"
    shutil.copytree(FIXTURES, folder)
    (folder / "work").mkdir()
    return folder


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """The messages a user sees for a roster that must not load."""
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {} if environ is None else environ)
    return [str(e) for e in info.value.errors]


def write(folder: Path, text: str, name: str = "agents.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- every error class, as the user reads it ------------------------------------


def test_yaml_syntax_error_names_line_column_and_fix(team: Path) -> None:
    """Bad YAML stops at once with the parser's line and column and a quoting hint."""
    path = team / "syntax.yaml"
    assert problems(path) == [
        f"{path}:3: invalid YAML at column 21: mapping values are not allowed here; check the "
        "indentation, and quote values that contain YAML punctuation (': ', '{', '[', ' #') "
        "or start with '*', '&', '!', '%', '@' or '`'"
    ]


def test_tab_indentation_is_named(team: Path) -> None:
    """A tab used for indentation gets its own explanation."""
    path = team / "tabs.yaml"
    assert problems(path) == [
        f"{path}:2: invalid YAML at column 1: found character '\\t' that cannot start any token "
        "(while scanning for the next token); indent with spaces, YAML does not allow tabs"
    ]


def test_unknown_keys_suggest_the_nearest_valid_key(team: Path) -> None:
    """A typo gets "did you mean"; a key with no near match gets the list of valid keys."""
    path = team / "unknown_key.yaml"
    agent_keys = (
        "description, prompt, prompt_file, model, fallback_model, tools, disallowed_tools, "
        "permission_mode, cwd, env, max_turns, max_budget_usd, restart, max_restarts, "
        "restart_window, backoff, depends_on, can_message, turn_timeout, connect_timeout, "
        "model_retries, budget, context_window, compact_at, "
        "sandbox, inherit_secrets, workspace, owns, approve, approver, approval_timeout, subagents"
    )
    assert problems(path) == [
        f"{path}:3: key 'defaults.restart_windo': unknown key 'restart_windo'; "
        "did you mean 'restart_window'?",
        f"{path}:7: key 'agents.coder.modle': unknown key 'modle'; did you mean 'model'?",
        f"{path}:8: key 'agents.coder.colour': unknown key 'colour'; valid keys are {agent_keys}",
        f"{path}:9: key 'teams': unknown key 'teams'; valid keys are name, defaults, database, "
        "logs, log_max_bytes, log_backups, agents, budget, prices, queue",
    ]


def test_misplaced_keys_say_where_they_belong(tmp_path: Path) -> None:
    """An agent setting at the top, a team setting or `name` under an agent: say where it goes."""
    path = write(
        tmp_path,
        """\
        model: sonnet
        agents:
          coder:
            name: coder
            prompt: You write code.
            database: q.db
        """,
    )
    assert problems(path) == [
        f"{path}:1: key 'model': unknown key 'model'; 'model' is an agent setting: put it "
        "under 'defaults:' (for every agent) or under one agent",
        f"{path}:4: key 'agents.coder.name': unknown key 'name'; an agent's name is its key "
        "under 'agents:'",
        f"{path}:6: key 'agents.coder.database': unknown key 'database'; 'database' is a team "
        "setting: put it at the top level of the file",
    ]


def test_wrong_types_say_what_was_expected_and_given(team: Path) -> None:
    """Each wrong type names the expected type, the given value, and how to write it."""
    path = team / "wrong_type.yaml"
    assert problems(path) == [
        f"{path}:1: key 'name': expected a string, got a list",
        f"{path}:5: key 'agents.coder.tools': expected a list of names, got a string ('Read'); "
        "write [Read]",
        f"{path}:6: key 'agents.coder.max_turns': expected a whole number (at least 1), "
        "got a string ('five')",
        f"{path}:7: key 'agents.coder.max_budget_usd': expected a number (like 2.5) or null "
        "for no limit, got a boolean (true)",
        f"{path}:9: key 'agents.coder.env.DEBUG': expected a string, got a boolean (true); "
        'quote it: DEBUG: "true"',
        f"{path}:11: key 'agents.coder.backoff': expected a mapping like "
        "{initial: 1s, max: 30s}, got a string ('5s')",
        f"{path}:12: key 'agents.reviewer': expected a mapping of settings, "
        "got a string ('just a string')",
    ]


def test_duplicate_keys_are_caught_at_any_depth(team: Path) -> None:
    """PyYAML keeps the last of two equal keys in silence; we report both places."""
    path = team / "duplicate.yaml"
    assert problems(path) == [
        f"{path}:7: key 'agents.reviewer.model': 'model' is given twice (first on line 6); "
        "YAML would silently keep only the last one, so rename or remove one",
        f"{path}:8: key 'agents.coder': agent 'coder' is defined twice (first on line 2); "
        "YAML would silently keep only the last one, so rename or remove one",
    ]


def test_missing_prompt_file_shows_the_path_looked_at(team: Path) -> None:
    """A prompt file that is not there names the absolute path and the folder it started from."""
    path = team / "missing_prompt_file.yaml"
    assert problems(path) == [
        f"{path}:3: key 'agents.coder.prompt_file': prompt file not found: "
        f"{team}/prompts/nope.md (relative paths start from {team}); create it or fix the path"
    ]


def test_an_agent_needs_exactly_one_of_prompt_and_prompt_file(team: Path) -> None:
    """Neither prompt nor prompt_file is an error; both at once is another."""
    path = team / "prompt_choice.yaml"
    assert problems(path) == [
        f"{path}:2: key 'agents.neither': no prompt: add 'prompt: <text>' or "
        "'prompt_file: <path>' (relative to the roster's folder), here or under 'defaults:'",
        f"{path}:6: key 'agents.both.prompt_file': give either 'prompt' (line 5) or "
        "'prompt_file', not both",
    ]


def test_depends_on_an_unknown_agent(team: Path) -> None:
    """The line is the list item's own line; the nearest agent name is suggested."""
    path = team / "depends_unknown.yaml"
    assert problems(path) == [
        f"{path}:8: key 'agents.reviewer.depends_on': depends on unknown agent 'codr'; "
        "agents in this roster: coder, reviewer; did you mean 'coder'?"
    ]


def test_depends_on_cycles_are_named_in_full(team: Path) -> None:
    """Each cycle is reported once, spelled out a -> b -> a, self-dependency included."""
    path = team / "depends_cycle.yaml"
    assert problems(path) == [
        f"{path}:4: key 'agents.planner.depends_on': dependency cycle: planner -> coder -> "
        "reviewer -> planner; remove one of these depends_on entries",
        f"{path}:13: key 'agents.loner.depends_on': dependency cycle: loner -> loner; "
        "remove one of these depends_on entries",
    ]


def test_can_message_names_must_be_agents_or_user(team: Path) -> None:
    """Unknown names in can_message are refused; 'user' is valid and suggested for a typo."""
    path = team / "can_message_unknown.yaml"
    assert problems(path) == [
        f"{path}:4: key 'agents.coder.can_message': unknown name 'usr' in can_message; use "
        "names of agents in this team (coder, reviewer) or 'user'; did you mean 'user'?",
        f"{path}:4: key 'agents.coder.can_message': unknown name 'supervisor' in can_message; "
        "use names of agents in this team (coder, reviewer) or 'user'",
    ]


def test_bad_values_policy_duration_mode_backoff_count_and_cwd(team: Path) -> None:
    """Restart policies and permission modes are listed; durations show the accepted forms."""
    path = team / "bad_values.yaml"
    assert problems(path) == [
        f"{path}:4: key 'agents.coder.restart': unknown restart policy 'sometimes'; "
        "valid policies: always, on-failure, never",
        f"{path}:5: key 'agents.coder.restart_window': invalid duration '5 minutes'; use "
        "seconds as a number, or a string like '500ms', '30s', '5m', '1h' or '1m30s'",
        f"{path}:6: key 'agents.coder.turn_timeout': must be longer than 0; "
        "write null for no limit",
        f"{path}:7: key 'agents.coder.permission_mode': unknown permission mode 'acceptedits'; "
        "valid modes: default, acceptEdits, plan, bypassPermissions, dontAsk, auto; "
        "did you mean 'acceptEdits'?",
        f"{path}:8: key 'agents.coder.backoff': backoff max (2s) is shorter than initial (10s); "
        "max is the longest delay between restarts",
        f"{path}:9: key 'agents.coder.max_restarts': must be at least 0, got -1",
        f"{path}:10: key 'agents.coder.cwd': working directory does not exist: "
        f"{team}/no/such/folder (relative paths start from {team}); create it or fix the path",
    ]


def test_undefined_variables_are_named(team: Path) -> None:
    """${VAR} with VAR unset names the variable and the two fixes; defaults are fine."""
    path = team / "undefined_var.yaml"
    assert problems(path) == [
        f"{path}:3: key 'agents.coder.prompt': variable ${{PROJECT}} is not set and has no "
        "default; set PROJECT in the environment or write ${PROJECT:-default}",
        f"{path}:6: key 'agents.coder.env.GH_TOKEN': variable ${{GH_TOKEN}} is not set and has "
        "no default; set GH_TOKEN in the environment or write ${GH_TOKEN:-default}",
        f"{path}:7: key 'agents.coder.env.RAW': unclosed '${{' in '${{oops'; write ${{NAME}} "
        "or ${NAME:-default}, or $$ for a literal $",
    ]


def test_missing_or_empty_agents(team: Path, tmp_path: Path) -> None:
    """No agents: section, an empty one, a list instead of a mapping, an empty file."""
    no_agents, empty, as_list = (
        team / "no_agents.yaml",
        team / "empty_agents.yaml",
        team / "agent_list.yaml",
    )
    blank = write(tmp_path, "# nothing yet\n", "blank.yaml")
    scalar = write(tmp_path, "just words\n", "scalar.yaml")
    assert problems(no_agents) == [
        f"{no_agents}: key 'agents': no 'agents:' section; add one that maps each agent's name "
        "to its settings (like compose's services:)"
    ]
    assert problems(empty) == [
        f"{empty}:2: key 'agents': no agents defined; add at least one under 'agents:'"
    ]
    assert problems(as_list) == [
        f"{as_list}:1: key 'agents': expected a mapping of agent name to settings, got a list; "
        "write each agent as 'name:' followed by its settings, not as a list item"
    ]
    assert problems(blank) == [
        f"{blank}: the file is empty; an agents.yaml is a mapping with at least an 'agents:' "
        "section (run `octy-orchestrate init` for a commented example)"
    ]
    assert problems(scalar) == [
        f"{scalar}:1: the file holds a string ('just words'); an agents.yaml is a mapping with "
        "at least an 'agents:' section (run `octy-orchestrate init` for a commented example)"
    ]


def test_agent_names_follow_the_rule_and_avoid_reserved_names(team: Path) -> None:
    """The name rule is stated in the error; 'user' and 'supervisor' are reserved; 63
    characters fit, 64 do not."""
    path = team / "bad_names.yaml"
    rule = (
        "names must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, '-' and '_', "
        "starting with a letter or digit; at most 63 characters)"
    )
    assert problems(path) == [
        f"{path}:2: key 'agents.Coder': invalid agent name 'Coder': {rule}",
        f"{path}:4: key 'agents.user': 'user' is a reserved name (reserved: user, supervisor); "
        "choose another name",
        f"{path}:6: key 'agents.supervisor': 'supervisor' is a reserved name (reserved: user, "
        "supervisor); choose another name",
        f"{path}:10: key 'agents.{'a' * 64}': invalid agent name '{'a' * 64}': {rule}",
    ]


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    """Validation does not stop at the first error: all of them, sorted by line, as data."""
    path = write(
        tmp_path,
        """\
        defaults:
          restart: sometimes
        agents:
          a:
            prompt: x
            depends_on: [b, ghost]
          b:
            prompt: y
            max_turns: 0
            depends_on: [a]
        """,
    )
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    found = [(e.path, e.line, e.key) for e in info.value.errors]
    assert found == [
        (str(path), 2, "defaults.restart"),
        (str(path), 6, "agents.a.depends_on"),
        (str(path), 6, "agents.a.depends_on"),
        (str(path), 9, "agents.b.max_turns"),
    ]
    assert "dependency cycle: a -> b -> a" in info.value.errors[2].reason
    assert all(isinstance(e, RosterError) and e.code == "roster_invalid" for e in info.value.errors)
    assert str(info.value).count("\n") == 3


def test_a_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    """load_roster on a missing file points at `init` and -f."""
    path = tmp_path / "agents.yaml"
    assert problems(path) == [
        f"{path}: file not found; run `octy-orchestrate init` to write a starter roster, "
        "or pass -f FILE"
    ]


# --- what a valid roster resolves to ---------------------------------------------


def test_full_roster_resolves_every_key(team: Path) -> None:
    """Every key lands in its typed field: paths absolute, durations in seconds, sizes in bytes."""
    roster = load_roster(team / "full.yaml", {})
    assert roster.path == team / "full.yaml"
    assert (roster.name, roster.database, roster.logs) == (
        "full-team",
        team / "state" / "q.db",
        team / "var" / "logs",
    )
    assert (roster.log_max_bytes, roster.log_backups) == (2 * 1024 * 1024, 3)
    assert list(roster.agents) == ["coder", "reviewer", "lead"]
    coder = roster.agents["coder"]
    assert coder == AgentSpec(
        name="coder",
        description="Writes code.",
        prompt="You write code.\n",
        prompt_file=team / "prompts" / "coder.md",
        model="sonnet",
        fallback_model="haiku",
        tools=("Read", "Edit", "Write"),
        disallowed_tools=("Bash",),
        permission_mode="acceptEdits",
        cwd=team / "work",
        env={"SHARED": "mine", "API_TOKEN": "t0ps3cret", "EXTRA": "1"},
        max_turns=12,
        max_budget_usd=2.5,
        restart="always",
        max_restarts=2,
        restart_window_s=120.0,
        backoff=Backoff(0.5, 60.0),
        depends_on=(),
        can_message=("reviewer", "user"),
        turn_timeout_s=90.0,
        connect_timeout_s=60.0,
    )
    assert coder.line == 17
    reviewer = roster.agents["reviewer"]
    assert (reviewer.turn_timeout_s, reviewer.depends_on, reviewer.can_message) == (
        None,
        ("coder",),
        None,
    )
    assert reviewer.cwd == team  # the default working folder is the roster's folder


def test_defaults_are_inherited_and_overridden(team: Path) -> None:
    """An agent without a key takes the team default; its own value wins; built-ins fill
    the rest."""
    roster = load_roster(team / "full.yaml", {})
    coder, reviewer, lead = (roster.agents[n] for n in ("coder", "reviewer", "lead"))
    assert reviewer.tools == ("Read", "Grep")  # from defaults
    assert coder.tools == ("Read", "Edit", "Write")  # own value replaces, lists are not merged
    assert (reviewer.turn_timeout_s, lead.turn_timeout_s) == (None, 90.0)
    assert (lead.restart, reviewer.restart, coder.restart) == ("never", "on-failure", "always")
    assert (lead.backoff, lead.max_turns) == (Backoff(1.0, 30.0), None)
    assert (lead.model, lead.permission_mode) == ("sonnet", None)


def test_env_is_merged_key_by_key(team: Path) -> None:
    """Team env and agent env merge; the agent's value wins for a shared key."""
    roster = load_roster(team / "full.yaml", {"TOKEN": "from-env"})
    assert dict(roster.agents["coder"].env) == {
        "SHARED": "mine",
        "API_TOKEN": "from-env",
        "EXTRA": "1",
    }
    assert dict(roster.agents["lead"].env) == {"SHARED": "team", "API_TOKEN": "from-env"}


def test_an_agents_own_prompt_replaces_the_teams(tmp_path: Path) -> None:
    """A prompt under defaults is inherited; an agent's prompt or prompt_file replaces it
    (no 'both' error)."""
    (tmp_path / "own.md").write_text("Own file.", encoding="utf-8")
    path = write(
        tmp_path,
        """\
        defaults:
          prompt: Team prompt.
        agents:
          plain: {}
          inline:
            prompt: Own prompt.
          filed:
            prompt_file: own.md
        """,
    )
    agents = load_roster(path, {}).agents
    assert [(a.prompt, a.prompt_file) for a in agents.values()] == [
        ("Team prompt.", None),
        ("Own prompt.", None),
        ("Own file.", tmp_path / "own.md"),
    ]


def test_interpolation_defaults_escapes_and_types(tmp_path: Path) -> None:
    """${VAR}, ${VAR:-default} (unset or empty), ${VAR-default} (unset), nesting, $$ and lone $."""
    path = write(
        tmp_path,
        """\
        name: ${TEAM}
        agents:
          a:
            prompt: "Costs $$5 or $7; ${GREETING:-hello ${WHO:-world}}; ${EMPTY-kept}"
            model: ${MODEL:-}
            max_turns: ${TURNS}
            max_budget_usd: ${BUDGET:-1.5}
            description: ${EMPTY:-fallback}
        """,
    )
    roster = load_roster(path, {"TEAM": "t1", "TURNS": "7", "EMPTY": ""})
    agent = roster.agents["a"]
    assert roster.name == "t1"
    assert agent.prompt == "Costs $5 or $7; hello world; "
    assert agent.model is None  # an empty substitution means "not set"
    assert (agent.max_turns, agent.max_budget_usd) == (7, 1.5)  # numbers from the environment
    assert agent.description == "fallback"


def test_interpolated_value_that_is_not_a_number(tmp_path: Path) -> None:
    """A variable used where a number goes is checked after substitution, at the key's line."""
    path = write(tmp_path, "agents:\n  a:\n    prompt: x\n    max_turns: ${TURNS}\n")
    assert problems(path, {"TURNS": "many"}) == [
        f"{path}:4: key 'agents.a.max_turns': expected a whole number (at least 1), "
        "got a string ('many')"
    ]


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("45", 45.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (" 2 m ", 120.0),
        (0, 0.0),
    ],
)
def test_durations(given: object, seconds: float) -> None:
    """Durations are seconds, or strings with ms/s/m/h units (combinable)."""
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["5 minutes", "1d", "-3", "m", "", "inf", True, [1]])
def test_bad_durations(given: object) -> None:
    """Anything else is refused with the accepted forms in the message."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(given)


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (4096, 4096),
        ("10MB", 10_000_000),
        ("10MiB", 10 * 2**20),
        ("10M", 10 * 2**20),
        ("512KiB", 512 * 1024),
        ("1gb", 10**9),
        ("2048", 2048),
        ("100 B", 100),
    ],
)
def test_sizes(given: object, size: int) -> None:
    """log_max_bytes accepts bytes or sizes with decimal (MB) or binary (MiB, M) units."""
    assert parse_size(given) == size


@pytest.mark.parametrize("given", ["10 parsecs", "MB", 0, -1, "0KB", 1.5, True])
def test_bad_sizes(given: object) -> None:
    """Unknown units, zero and non-integers are refused."""
    with pytest.raises(ValueError, match="size"):
        parse_size(given)


def test_start_layers_follow_depends_on(tmp_path: Path) -> None:
    """Layers start in parallel after the ones before; `only` pulls in dependencies."""
    path = write(
        tmp_path,
        """\
        defaults: {prompt: x}
        agents:
          app: {depends_on: [api, web]}
          api: {depends_on: [db]}
          web: {depends_on: [db]}
          db: {}
          tool: {}
        """,
    )
    roster = load_roster(path, {})
    assert roster.start_layers() == [["db", "tool"], ["api", "web"], ["app"]]
    assert roster.start_layers(only=["api"]) == [["db"], ["api"]]
    assert roster.dependencies(["app"]) == ("app", "api", "web", "db")
    with pytest.raises(RosterError, match="no agent named 'nope'; agents: app, api, web, db, tool"):
        roster.start_layers(only=["nope"])


# --- hot reload: what changed --------------------------------------------------------

BASE = """\
defaults:
  model: sonnet
agents:
  keep:
    prompt: Keep.
  edit:
    prompt: Before.
  drop:
    prompt_file: drop.md
"""


def test_diff_rosters_sorts_agents_by_what_happened(tmp_path: Path) -> None:
    """Added, removed, changed and unchanged agents, each in file order."""
    (tmp_path / "drop.md").write_text("Drop.", encoding="utf-8")
    old = load_roster(write(tmp_path, BASE), {})
    new_text = BASE.replace("Before.", "After.").replace(
        "  drop:\n    prompt_file: drop.md\n", "  fresh:\n    prompt: New.\n"
    )
    new = load_roster(write(tmp_path, new_text), {})
    assert diff_rosters(old, new) == RosterDiff(
        added=("fresh",), removed=("drop",), changed=("edit",), unchanged=("keep",)
    )
    assert diff_rosters(new, new).empty
    assert not diff_rosters(old, new).empty


def test_diff_ignores_edits_on_other_lines(tmp_path: Path) -> None:
    """Comments and new agents above shift line numbers; that alone is not a change."""
    (tmp_path / "drop.md").write_text("Drop.", encoding="utf-8")
    old = load_roster(write(tmp_path, BASE), {})
    shifted = "# a new comment\n\n" + BASE.replace(
        "agents:\n", "agents:\n  first:\n    prompt: F.\n"
    )
    new = load_roster(write(tmp_path, shifted), {})
    assert new.agents["keep"].line != old.agents["keep"].line
    diff = diff_rosters(old, new)
    assert (diff.added, diff.changed, diff.unchanged) == (("first",), (), ("keep", "edit", "drop"))


def test_diff_sees_inherited_and_prompt_file_changes(tmp_path: Path) -> None:
    """A changed team default or prompt file text changes the agents that use it."""
    (tmp_path / "drop.md").write_text("Drop.", encoding="utf-8")
    old = load_roster(write(tmp_path, BASE), {})
    (tmp_path / "drop.md").write_text("Drop, reworded.", encoding="utf-8")
    assert diff_rosters(old, load_roster(tmp_path / "agents.yaml", {})).changed == ("drop",)
    new = load_roster(write(tmp_path, BASE.replace("sonnet", "opus")), {})
    assert diff_rosters(old, new).changed == ("keep", "edit", "drop")
    moved = load_roster(write(tmp_path, "database: elsewhere.db\n" + BASE), {})
    assert diff_rosters(old, moved).team_changed == ("database",)


# --- output for `config`, and the rest of the contract ------------------------------


def test_to_dict_redacts_secret_looking_env(team: Path) -> None:
    """Env values whose name looks secret print as '***', in agents and in defaults."""
    shown = load_roster(team / "full.yaml", {"TOKEN": "sk-live-123"}).to_dict()
    assert shown["agents"]["coder"]["env"] == {"SHARED": "mine", "API_TOKEN": "***", "EXTRA": "1"}
    assert shown["defaults"]["env"] == {"SHARED": "team", "API_TOKEN": "***"}
    assert "sk-live-123" not in repr(shown)
    assert shown["agents"]["coder"]["prompt_file"] == str(team / "prompts" / "coder.md")
    assert shown["agents"]["reviewer"]["turn_timeout"] is None
    assert shown["log_max_bytes"] == 2 * 1024 * 1024


def test_to_dict_loads_back_to_the_same_agents(team: Path) -> None:
    """The resolved output of `config` is itself a valid roster with equal agents."""
    original = load_roster(team / "full.yaml", {"TOKEN": "x"})
    shown = original.to_dict()
    for agent in shown["agents"].values():  # put back what redaction hid
        agent["env"]["API_TOKEN"] = "x"
    shown["defaults"]["env"]["API_TOKEN"] = "x"
    again = parse_roster(yaml.safe_dump(shown), team / "resolved.yaml", {})
    assert again.agents == original.agents
    assert (again.database, again.logs, again.name) == (
        original.database,
        original.logs,
        original.name,
    )


def test_merge_keys_and_extension_fields(team: Path) -> None:
    """x- keys at the top hold YAML anchors; `<<: *anchor` merges and own keys override it."""
    path = write(
        team,
        """\
        x-base: &base
          prompt: Shared.
          restart: always
        agents:
          a:
            <<: *base
            restart: never
        """,
    )
    agent = load_roster(path, {}).agents["a"]
    assert (agent.prompt, agent.restart) == ("Shared.", "never")


def test_the_repos_example_team_loads() -> None:
    """The agents.yaml at the repo root loads cleanly: a coordinator with two helpers."""
    roster = load_roster(REPO / "agents.yaml", {})
    assert list(roster.agents) == ["coordinator", "researcher", "reviewer"]
    assert roster.start_layers() == [["researcher", "reviewer"], ["coordinator"]]
    assert all(spec.description and spec.prompt.strip() for spec in roster.agents.values())
    assert all(
        spec.prompt_file and spec.prompt_file.parent == REPO / "prompts"
        for spec in roster.agents.values()
    )


def test_load_roster_accepts_a_folder(team: Path) -> None:
    """Given a folder, load_roster reads the agents.yaml in it."""
    shutil.copy(team / "full.yaml", team / "agents.yaml")
    assert load_roster(team, {}).path == team / "agents.yaml"


def test_permission_modes_match_the_sdk() -> None:
    """Our copy of the SDK's PermissionMode literal is current.

    Read from the SDK's source rather than imported: importing it takes a second.
    """
    spec = importlib.util.find_spec("claude_agent_sdk")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    source = Path(next(iter(spec.submodule_search_locations)), "types.py").read_text("utf-8")
    literal = next(
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PermissionMode" for t in node.targets)
    )
    assert isinstance(literal, ast.Subscript)
    assert ast.literal_eval(literal.slice) == PERMISSION_MODES
    assert RESTART_POLICIES == ("always", "on-failure", "never")


def test_rosters_are_frozen_and_hashable(team: Path) -> None:
    """Specs can be set members and dict keys; nothing can be reassigned or mutated."""
    roster: Roster = load_roster(team / "full.yaml", {})
    specs = set(roster.agents.values())
    assert len(specs) == 3
    assert hash(roster) == hash(load_roster(team / "full.yaml", {}))
    with pytest.raises(AttributeError):
        roster.agents["coder"].model = "opus"  # type: ignore[misc]
    with pytest.raises(TypeError):
        roster.agents["coder"].env["X"] = "1"  # type: ignore[index]


def test_an_anchor_used_twice_is_interpolated_once(tmp_path: Path) -> None:
    """Regression: an aliased mapping is one object; `$${X}` must stay `${X}`, not become X."""
    path = write(
        tmp_path,
        """\
        x-env: &env {NOTE: "$${HOME} is literal"}
        agents:
          a: {prompt: x, env: *env}
          b: {prompt: y, env: *env}
        """,
    )
    agents = load_roster(path, {"HOME": "/root"}).agents
    assert agents["a"].env["NOTE"] == agents["b"].env["NOTE"] == "${HOME} is literal"


def test_agent_names_equal_in_python_are_each_reported(tmp_path: Path) -> None:
    """Regression (review B.9): `1:` and `true:` (1 == True, 1 == 1.0 in Python) became one
    agent in the dict, reported only as 'true' and as "an integer (1)". Each is named."""
    path = write(tmp_path, "agents:\n  1: {prompt: x}\n  true: {prompt: y}\n  1.0: {prompt: z}\n")
    assert problems(path) == [
        f"{path}:2: key 'agents.1': agent name '1' is read by YAML as an integer (1); put "
        "quotes around it ('1':) or choose a name with letters",
        f"{path}:3: key 'agents.true': agent name 'true' is read by YAML as a boolean (true); "
        "put quotes around it ('true':) or choose a name with letters",
        f"{path}:4: key 'agents.1.0': agent name '1.0' is read by YAML as a number (1); "
        "put quotes around it ('1.0':) or choose a name with letters",
    ]


def test_agent_names_yaml_reads_as_numbers_or_booleans(tmp_path: Path) -> None:
    """`1:` and `on:` are not text to YAML; the error says to quote them."""
    path = write(tmp_path, "agents:\n  7: {prompt: x}\n  on: {prompt: y}\n  '2': {prompt: z}\n")
    assert problems(path) == [
        f"{path}:2: key 'agents.7': agent name '7' is read by YAML as an integer (7); put "
        "quotes around it ('7':) or choose a name with letters",
        f"{path}:3: key 'agents.on': agent name 'on' is read by YAML as a boolean (true); put "
        "quotes around it ('on':) or choose a name with letters",
    ]


def test_repr_of_a_roster_shows_no_secret(team: Path) -> None:
    """A spec or roster that ends up in a log line does not carry secret env values."""
    roster = load_roster(team / "full.yaml", {"TOKEN": "sk-live-123"})
    assert roster.agents["coder"].env["API_TOKEN"] == "sk-live-123"
    assert "sk-live-123" not in repr(roster)
    assert "'API_TOKEN': '***'" in repr(roster.agents["coder"])


def test_paths_of_the_wrong_kind(tmp_path: Path) -> None:
    """A folder where a file goes and the reverse, and an empty prompt file, are named."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "blank.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    path = write(
        tmp_path,
        """\
        database: prompts
        logs: file.txt
        agents:
          a: {prompt_file: prompts}
          b: {prompt_file: blank.md}
          c: {prompt: x, cwd: file.txt}
          d: {prompt: "  "}
        """,
    )
    assert problems(path) == [
        f"{path}:1: key 'database': {tmp_path}/prompts is a folder; 'database' names the "
        "queue's database file, like queue/team.db",
        f"{path}:2: key 'logs': {tmp_path}/file.txt is a file; 'logs' names the folder the "
        "logs are written to",
        f"{path}:4: key 'agents.a.prompt_file': prompt file {tmp_path}/prompts is a folder; "
        "give the path of a text file",
        f"{path}:5: key 'agents.b.prompt_file': prompt file {tmp_path}/blank.md is empty; "
        "write the agent's instructions in it",
        f"{path}:6: key 'agents.c.cwd': working directory {tmp_path}/file.txt is a file, "
        "not a folder",
        f"{path}:7: key 'agents.d.prompt': the prompt is empty; write the agent's instructions",
    ]


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    """Files saved with a UTF-8 BOM load like any other."""
    path = tmp_path / "agents.yaml"
    path.write_bytes(b"\xef\xbb\xbfagents:\n  a: {prompt: x}\n")
    assert list(load_roster(path, {}).agents) == ["a"]


def test_paths_that_are_not_plain_are_quoted_in_file_errors(tmp_path: Path) -> None:
    """Review: paths in the roster's file errors were shown as given, so a path with a
    space at its end, or a newline, could not be told from the message around it. A path
    that is not plain is shown as Python's repr; a plain one as it is."""
    path = write(
        tmp_path,
        """\
        agents:
          coder:
            prompt_file: "notes.md "
            cwd: "a\\nb"
        """,
    )
    assert problems(path) == [
        f"{path}:3: key 'agents.coder.prompt_file': prompt file not found: "
        f"{str(tmp_path / 'notes.md ')!r} (relative paths start from {tmp_path}); "
        "create it or fix the path",
        f"{path}:4: key 'agents.coder.cwd': working directory does not exist: "
        f"{str(tmp_path / 'a') + chr(10) + 'b'!r} (relative paths start from {tmp_path}); "
        "create it or fix the path",
    ]
    with pytest.raises(RosterErrors) as info:
        load_roster(tmp_path / " spaced.yaml ")
    [error] = info.value.errors
    assert str(error).startswith(f"{str(tmp_path / ' spaced.yaml ')!r}: file not found;")
