"""Roster checks for the issue-11 keys that need no git or CLI: approve, approver,
workspace values (the git ones are in test_workspaces.py, owns in test_owned_paths.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import RosterErrors
from orchestrator.roster import load_roster


def problems(folder: Path, text: str) -> list[str]:
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    return [str(e).removeprefix(f"{path}:") for e in info.value.errors]


def test_approver_must_be_user_or_another_agent(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        agents:
          a: {prompt: p, approve: [Bash], approver: nobody}
          b: {prompt: p, approve: [Bash], approver: b}
        """,
    ) == [
        "2: key 'agents.a.approver': unknown approver 'nobody'; name 'user' or an agent of "
        "this team (a, b)",
        "3: key 'agents.b.approver': an agent cannot approve its own calls; name 'user' or "
        "another agent",
    ]


def test_approve_rules_and_workspace_values_are_checked(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        agents:
          a:
            prompt: p
            approve: ["Bash(git push:*", Write]
            workspace: worktre
            approval_timeout: soon
        """,
    ) == [
        "4: key 'agents.a.approve': 'Bash(git push:*' is not a permission rule; write Tool or "
        "Tool(specifier), like Bash(git push:*), Write, Edit(src/**) or mcp__server__tool",
        "5: key 'agents.a.workspace': unknown workspace 'worktre'; valid: shared, worktree, "
        "or {type: worktree, base: BRANCH}; did you mean 'worktree'?",
        "6: key 'agents.a.approval_timeout': invalid duration 'soon'; use seconds as a number, "
        "or a string like '500ms', '30s', '5m', '1h' or '1m30s'",
    ]


def test_defaults_and_resolved_values(tmp_path: Path) -> None:
    """Left out: shared workspace, no owns limit, no approvals, user approves, 10 minutes."""
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  a: {prompt: p}\n", encoding="utf-8")
    spec = load_roster(path, {}).agents["a"]
    assert spec.workspace.type == "shared"
    assert (spec.owns, spec.approve, spec.approver, spec.approval_timeout_s) == (
        None,
        (),
        "user",
        600.0,
    )
    assert dict(spec.subagents) == {}


def test_an_owns_pattern_with_many_any_depth_stars_is_an_error_not_a_hang(
    tmp_path: Path,
) -> None:
    """Regression: the overlap check tries each '**/' of an owns pattern matching no folder
    (2**n forms): `owns: ["**/**/…(30)…/x"]` beside another agent's owns hung `config`, `up`
    and the running team's reload. More than four '**' in one pattern is an error at its
    line; four on both sides still checks at once."""
    from orchestrator.errors import RosterErrors
    from orchestrator.roster import load_roster

    path = tmp_path / "agents.yaml"
    deep = "**/" * 30 + "x"
    path.write_text(
        f'agents:\n  a:\n    prompt: A\n    owns: ["{deep}"]\n'
        '  b:\n    prompt: B\n    owns: ["src/"]\n',
        encoding="utf-8",
    )
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    [error] = [str(e) for e in info.value.errors]
    assert error.startswith(f"{path}:4: key 'agents.a.owns'")
    assert "more than 4 '**'" in error
    four = "/".join(f"**/d{i}" for i in range(4)) + "/x"
    other = "/".join(f"**/e{i}" for i in range(3)) + "/**"
    path.write_text(
        f'agents:\n  a:\n    prompt: A\n    owns: ["{four}"]\n'
        f'  b:\n    prompt: B\n    owns: ["{other}"]\n',
        encoding="utf-8",
    )
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    assert "overlaps" in str(info.value.errors[0])


def test_a_missing_cwd_is_one_error_not_a_traceback(tmp_path: Path) -> None:
    """Regression: a worktree agent, or one with owns, whose cwd does not exist crashed
    load_roster with a TypeError (the git and overlap checks read the invalid cwd)."""
    found = problems(
        tmp_path,
        """\
        agents:
          a: {prompt: p, cwd: gone, workspace: worktree}
          b: {prompt: p, cwd: gone, owns: ["src/"]}
          c: {prompt: p, owns: ["src/"]}
        """,
    )
    assert [line.split(":")[0:2] for line in found] == [
        ["2", " key 'agents.a.cwd'"],
        ["3", " key 'agents.b.cwd'"],
    ]


def test_subagent_tools_beyond_its_agents_are_an_error_naming_them(tmp_path: Path) -> None:
    """Review E: `writer: {tools: [Read, Write, Bash]}` under an agent with `tools: [Read]`
    was accepted, and every Write or Bash call of the subagent was then refused. A subset
    (or no `tools`: the agent's own) is fine; a default agent tool counts."""
    assert problems(
        tmp_path,
        """\
        defaults:
          tools: [Grep]
        agents:
          lead:
            prompt: p
            tools: [Read, Grep]
            subagents:
              writer:
                description: writes
                prompt: p
                tools: [Read, Write, Bash]
              reader: {description: reads, prompt: p, tools: [Read]}
              same: {description: same, prompt: p}
          other:
            prompt: p
            subagents:
              scout: {description: s, prompt: p, tools: [Grep, Read]}
        """,
    ) == [
        "11: key 'agents.lead.subagents.writer.tools': subagent 'writer' lists 'Write', "
        "'Bash', which its agent 'lead' does not have (tools: Read, Grep); a subagent works "
        "inside its agent's session and can use only the agent's tools: add them to "
        "agents.lead.tools, or take them out of the subagent's",
        "17: key 'agents.other.subagents.scout.tools': subagent 'scout' lists 'Read', which "
        "its agent 'other' does not have (tools: Grep); a subagent works inside its agent's "
        "session and can use only the agent's tools: add it to agents.other.tools, or take "
        "it out of the subagent's",
    ]
