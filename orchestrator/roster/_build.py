"""The YAML tree -> :class:`Roster`, collecting every problem on the way.

Nothing stops at the first error: each section is checked, values that fail
are marked INVALID (and reported once, where they were written), and the
roster is only built when the list of problems is empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import RosterError, RosterErrors
from orchestrator.names import MAX_NAME_LEN
from orchestrator.roster import _coerce as c
from orchestrator.roster._budget import budget as budget_setting
from orchestrator.roster._files import file_path, folder_path
from orchestrator.roster._interpolate import interpolate_tree
from orchestrator.roster._limits import (
    MAX_AGENTS,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_LOG_BACKUPS,
    MAX_ROSTER_BYTES,
    shown_path,
)
from orchestrator.roster._prices import prices as prices_setting
from orchestrator.roster._queue import queue_setting
from orchestrator.roster._refs import NameRefs, check_names, report_cycles
from orchestrator.roster._schema import (
    AGENT_FIELDS,
    AGENT_KEYS,
    PROMPT_KEYS,
    TOP_KEYS,
    make_spec,
    merge,
    misplaced,
)
from orchestrator.roster._work import check_work
from orchestrator.roster._yaml import (
    YamlSyntaxError,
    YMap,
    join,
    load_tree,
    walk_duplicates,
    walk_strings,
)
from orchestrator.roster.model import (
    AGENT_NAME_RE,
    RESERVED_NAMES,
    AgentSpec,
    FrozenDict,
    Roster,
    freeze,
)


def _is_text(key: str) -> bool:
    """Whether the setting at ``key`` is text for the model, not a path or an environment
    value: a prompt, a description, the team's name. A byte from a ``${VAR}`` (0xff, held
    as "\\udcff"), or YAML's "\\uDCFF", passes as a path's byte; in a prompt it made each
    start of the agent's session fail writing its system prompt (UnicodeEncodeError, six
    times, then `failed`), measured with `prompt: "A\\uDCFF."` reloaded into a team."""
    parts = key.split(".")
    if parts == ["name"]:
        return True
    texts = ("prompt", "description")
    return (len(parts) == 3 and parts[0] == "agents" and parts[2] in texts) or (
        len(parts) == 2 and parts[0] == "defaults" and parts[1] in texts
    )


class _Builder:
    def __init__(self, shown_path: str, path: Path, environ: Mapping[str, str]) -> None:
        self.shown_path = shown_path
        self.path = path
        self.folder = path.parent
        self.environ = environ
        self.errors: list[RosterError] = []

    def report(self, line: int | None, key: str, reason: str) -> None:
        self.errors.append(RosterError(self.shown_path, line, key or None, reason))

    def where(self, key: str, line: int | None) -> c.Where:
        return c.Where(key, line, self.report, self.folder)

    def fail(self) -> RosterErrors:
        unique = {(e.line, e.key, e.reason): e for e in self.errors}
        listed = sorted(unique.values(), key=lambda e: e.line or 0)
        if len(listed) > MAX_ERRORS:  # a generated file can hold thousands of the same mistake
            more = len(listed) - MAX_ERRORS
            listed = listed[:MAX_ERRORS]
            listed.append(
                RosterError(self.shown_path, None, None, f"... and {more} more problem(s)")
            )
        return RosterErrors(listed)

    # --- the file ----------------------------------------------------------

    def build(self, text: str) -> Roster:
        try:
            tree = load_tree(text)
        except YamlSyntaxError as exc:
            self.report(exc.line, exc.key, exc.reason)
            raise self.fail() from None
        if not isinstance(tree, YMap):
            what = "the file is empty" if tree is None else f"the file holds {c.describe(tree)}"
            self.report(
                None if tree is None else 1,
                "",
                f"{what}; an agents.yaml is a mapping with at least an 'agents:' section "
                "(run `octy-orchestrate init` for a commented example)",
            )
            raise self.fail()
        self._duplicates(tree)
        interpolate_tree(
            tree, self.environ, lambda key, line, reason: self.report(line, key, reason)
        )
        self._nul_characters(tree)
        if self._unencodable_characters(tree):
            raise self.fail()  # read on, each such path was also "not found"
        roster = self._roster(tree)
        if self.errors or roster is None:
            raise self.fail()
        return roster

    def _duplicates(self, tree: YMap) -> None:
        for path, dup in walk_duplicates(tree):
            if path == "agents":
                reason = f"agent '{dup.key}' is defined twice (first on line {dup.first_line})"
            else:
                reason = f"'{dup.key}' is given twice (first on line {dup.first_line})"
            self.report(
                dup.line,
                join(path, dup.key),
                reason + "; YAML would silently keep only the last one, so rename or remove one",
            )

    def _nul_characters(self, tree: YMap) -> None:
        """A NUL (YAML's "\\0", or one from a ${VAR}) fits no file name, argument or
        environment value: `logs: "a\\0b"` ended `up` in a traceback, and one in an agent's
        `env` or `model` made it fail six times at launch ("embedded null byte")."""
        for key, line, text in walk_strings(tree):
            if "\0" in text and not key.startswith("x-"):
                self.report(
                    line,
                    key,
                    "contains a NUL character (\\0), which no path, command-line argument "
                    "or environment value can hold; remove it",
                )

    def _unencodable_characters(self, tree: YMap) -> bool:
        """A lone surrogate that stands for no byte (YAML's "\\uD800"): no path, argument,
        environment value or UTF-8 file can hold it. `database: "\\uD800/x.db"` ended
        `config` and `up` in a traceback (UnicodeEncodeError resolving the folders the
        sandbox hides), and in a TLS file's path it was said as "file not found". A byte
        from a ``${VAR}`` (0xff, held as "\\udcff") is one a path can hold: it passes here
        (where one is refused, and why: cli/common.undecodable_paths). True if any."""
        found = False
        for key, line, text in walk_strings(tree):
            if key.startswith("x-"):
                continue
            try:
                text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as exc:
                bad = ascii(text[exc.start])[1:-1]
                self.report(
                    line,
                    key,
                    f"contains the character {bad}, a lone surrogate, which no path, "
                    "command-line argument or environment value can hold; remove it",
                )
                found = True
                continue
            if _is_text(key):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    byte = f"\\x{ord(text[exc.start]) - 0xDC00:02x}"
                    self.report(
                        line,
                        key,
                        f"contains the byte {byte}, which is not UTF-8 text (a prompt, a "
                        "description and the team's name are written to the model as text); "
                        "remove it",
                    )
                    found = True
        return found

    def _roster(self, tree: YMap) -> Roster | None:
        self._unknown_keys(tree, TOP_KEYS, "", allow_extensions=True)
        get = _Getter(tree, self)
        name = get("name", c.text, self.folder.name)
        if name == "":
            self.report(tree.line_of("name"), "name", "the team name must not be empty")
        database = get("database", file_path, self.folder / "queue" / "team.db")
        logs = get("logs", folder_path, self.folder / "logs")
        log_max_bytes = get("log_max_bytes", c.size, 10 * 1024 * 1024)
        log_backups = get(
            "log_backups",
            c.integer(0, maximum=MAX_LOG_BACKUPS, why=" (each rotation renames every backup)"),
            5,
        )
        team_budget = get("budget", budget_setting, None)
        team_prices = get("prices", prices_setting, FrozenDict())
        raw_defaults = tree.get("defaults")
        defaults: dict[str, Any] = {}
        if raw_defaults is not None:
            if isinstance(raw_defaults, YMap):
                defaults = self._settings(raw_defaults, "defaults")
            else:
                c.wrong_type(
                    "a mapping of agent settings",
                    raw_defaults,
                    self.where("defaults", tree.line_of("defaults")),
                )
        agents = self._agents(tree, defaults)
        queue = queue_setting(tree.get("queue"), self.where("queue", tree.line_of("queue")), name)
        if self.errors:
            return None
        return Roster(
            path=self.path,
            name=name,
            database=database,
            logs=logs,
            log_max_bytes=log_max_bytes,
            log_backups=log_backups,
            defaults=freeze(raw_defaults or {}),
            agents=FrozenDict(agents),
            queue=queue,
            budget=team_budget,
            prices=team_prices,
        )

    def _unknown_keys(
        self, raw: YMap, allowed: tuple[str, ...], prefix: str, *, allow_extensions: bool = False
    ) -> None:
        for key in raw:
            written = raw.key_text.get(key, str(key))
            if key in allowed or (allow_extensions and written.startswith("x-")):
                continue
            hint = c.did_you_mean(written, allowed) or misplaced(key, prefix)
            hint = hint or f"; valid keys are {', '.join(allowed)}"
            self.report(raw.line_of(key), join(prefix, written), f"unknown key '{written}'{hint}")

    def _settings(self, raw: YMap, prefix: str) -> dict[str, Any]:
        """Agent settings (under an agent or ``defaults``), each coerced where it is written."""
        self._unknown_keys(raw, AGENT_KEYS, prefix)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in AGENT_FIELDS:
                where = self.where(join(prefix, key), raw.line_of(key))
                values[key] = AGENT_FIELDS[key](value, where)
        if all(k in raw for k in PROMPT_KEYS):
            self.report(
                raw.line_of("prompt_file"),
                join(prefix, "prompt_file"),
                f"give either 'prompt' (line {raw.line_of('prompt')}) or 'prompt_file', not both",
            )
        if isinstance(values.get("prompt"), str) and not values["prompt"].strip():
            self.report(
                raw.line_of("prompt"),
                join(prefix, "prompt"),
                "the prompt is empty; write the agent's instructions",
            )
        return values

    # --- agents --------------------------------------------------------------

    def _agents(self, tree: YMap, defaults: dict[str, Any]) -> dict[str, AgentSpec]:
        raw_agents = tree.get("agents")
        if "agents" not in tree:
            self.report(
                None,
                "agents",
                "no 'agents:' section; add one that maps each agent's "
                "name to its settings (like compose's services:)",
            )
            return {}
        line = tree.line_of("agents")
        if raw_agents is None or raw_agents == {}:
            self.report(line, "agents", "no agents defined; add at least one under 'agents:'")
            return {}
        if not isinstance(raw_agents, YMap):
            hint = (
                "; write each agent as 'name:' followed by its settings, not as a list item"
                if isinstance(raw_agents, list)
                else ""
            )
            c.wrong_type(
                "a mapping of agent name to settings", raw_agents, self.where("agents", line), hint
            )
            return {}
        if len(raw_agents) > MAX_AGENTS:  # checked first: not 10,000 agents' worth of errors
            self.report(
                line,
                "agents",
                f"{len(raw_agents)} agents defined; a roster holds at most {MAX_AGENTS} (each "
                "runs its own claude process, ~200 MiB of memory, and every agent's prompt "
                "lists the whole team); split it into several teams, each with its own roster",
            )
            return {}
        # Names YAML reads as numbers or booleans, each as written: in the dict `1:` and
        # `true:` had become one agent, reported only as the last one.
        for value, written, at in raw_agents.non_text_keys:
            self._valid_name(value, written, at)
        merged: dict[str, dict[str, Any]] = {}
        for name, raw in raw_agents.items():
            if not isinstance(name, str) and raw_agents.non_text_keys:
                continue  # reported above
            line = raw_agents.line_of(name)
            if self._valid_name(name, raw_agents.key_text.get(name), line):
                merged[name] = self._agent(name, raw, line, defaults)
        self._cross_check(merged)
        if self.errors:
            return {}
        return {
            name: make_spec(name, values, raw_agents.line_of(name), self.folder)
            for name, values in merged.items()
        }

    def _valid_name(self, name: Any, written: str | None, line: int) -> bool:
        key = f"agents.{written or name}"
        if not isinstance(name, str):  # `1:` or `on:` read by YAML as a number or a boolean
            self.report(
                line,
                key,
                f"agent name '{written}' is read by YAML as {c.describe(name)}; "
                f"put quotes around it ('{written}':) or choose a name with letters",
            )
            return False
        if not AGENT_NAME_RE.fullmatch(name):
            self.report(
                line,
                key,
                f"invalid agent name '{name}': names must match "
                "[a-z0-9][a-z0-9_-]* (lowercase letters, digits, '-' and '_', "
                f"starting with a letter or digit; at most {MAX_NAME_LEN} characters)",
            )
            return False
        if name in RESERVED_NAMES:
            self.report(
                line,
                key,
                f"'{name}' is a reserved name (reserved: "
                f"{', '.join(RESERVED_NAMES)}); choose another name",
            )
            return False
        return True

    def _agent(self, name: str, raw: Any, line: int, defaults: dict[str, Any]) -> dict[str, Any]:
        key = f"agents.{name}"
        if raw is None:  # `coder:` with nothing under it: everything from defaults
            raw = YMap(line)
        if not isinstance(raw, YMap):
            c.wrong_type("a mapping of settings", raw, self.where(key, line))
            return dict.fromkeys(PROMPT_KEYS, c.INVALID)
        own = self._settings(raw, key)
        values = merge(defaults, own)
        if not any(k in values for k in PROMPT_KEYS) and not any(
            k in defaults for k in PROMPT_KEYS
        ):
            self.report(
                line,
                key,
                "no prompt: add 'prompt: <text>' or 'prompt_file: <path>' "
                "(relative to the roster's folder), here or under 'defaults:'",
            )
        return values

    def _cross_check(self, merged: dict[str, dict[str, Any]]) -> None:
        known = list(merged)
        deps: dict[str, NameRefs] = {}
        for values in merged.values():
            refs = values.get("depends_on")
            if isinstance(refs, NameRefs):
                check_names(refs, known, self.report, field="depends_on")
            talk = values.get("can_message")
            if isinstance(talk, NameRefs):
                check_names(talk, known, self.report, field="can_message", extra=("user",))
        for name, values in merged.items():
            refs = values.get("depends_on")
            if isinstance(refs, NameRefs):
                deps[name] = refs
        report_cycles(deps, known, self.report)
        check_work(merged, self.folder, self.report)  # issue 11: workspaces, owns, approver


class _Getter:
    """Read one top-level setting: coerce it where written, or use the default."""

    def __init__(self, tree: YMap, builder: _Builder) -> None:
        self.tree = tree
        self.builder = builder

    def __call__(self, key: str, coerce: c.Coercer, default: Any) -> Any:
        if key not in self.tree:
            return default
        return coerce(self.tree[key], self.builder.where(key, self.tree.line_of(key)))


def parse_roster(
    text: str,
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> Roster:
    """Validate roster text as if read from ``path`` (its folder anchors relative paths).

    Raises RosterErrors listing every problem found, each with file, line, key and fix.
    """
    absolute = Path(os.path.abspath(path))
    builder = _Builder(shown_path(path), absolute, os.environ if environ is None else environ)
    if len(text) > MAX_ROSTER_BYTES:
        builder.report(None, "", f"the roster is over the limit of {MAX_ROSTER_BYTES // 1024} KiB")
        raise builder.fail()
    try:
        return builder.build(text)
    except RecursionError:  # the limits above should make this unreachable; never a traceback
        builder.report(None, "", f"the file is nested too deeply to read (limit {MAX_DEPTH})")
        raise builder.fail() from None
