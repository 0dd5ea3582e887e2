"""Owned paths (`owns:`): the roster's checks, the glob rules, and a real claude session
whose file-tool writes outside its globs are denied with the owner's name (issue 11)."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from team_harness import Team, agent_rule

from orchestrator import globs
from orchestrator.errors import RosterErrors
from orchestrator.roster import load_roster

TeamFactory = Callable[..., Team]


def roster_problems(folder: Path, text: str) -> list[str]:
    path = folder / "agents.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(RosterErrors) as info:
        load_roster(path, {})
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/r/src/**", "/r/src/app.py", True),
        ("/r/src/*.py", "/r/src/**/test_*.py", True),
        ("/r/src/*.py", "/r/docs/**", False),
        ("/r/*.md", "/r/src/*.md", False),  # '*' stays inside one folder
        ("/r/**/*.md", "/r/src/a.md", True),
        ("/r/a?c", "/r/abc", True),
        ("/r/a?c", "/r/a/c", False),
        ("/r/src/**", "/r/srcx/**", False),
    ],
)
def test_glob_overlap_is_exact(a: str, b: str, expected: bool) -> None:
    """Two patterns overlap exactly when some path matches both (both directions)."""
    assert globs.overlap(a, b) is expected
    assert globs.overlap(b, a) is expected


def test_folder_pattern_means_everything_under_it() -> None:
    """`docs/` owns docs/a and docs/x/y but not docsy/a."""
    pattern = globs.absolute_pattern("docs/", "/r")
    assert globs.matches(pattern, "/r/docs/a")
    assert globs.matches(pattern, "/r/docs/x/y")
    assert not globs.matches(pattern, "/r/docsy/a")


def test_overlapping_owns_in_a_shared_workspace_is_an_error_naming_both(tmp_path: Path) -> None:
    """Two agents in one folder owning one path: file, line and key, both agents named."""
    problems = roster_problems(
        tmp_path,
        """\
        agents:
          a:
            prompt: p
            owns: [src/**]
          b:
            prompt: p
            owns: ["docs/", "src/*.py"]
        """,
    )
    assert problems == [
        f"{tmp_path / 'agents.yaml'}:7: key 'agents.b.owns': owns 'src/*.py' of agent 'b' "
        "overlaps owns 'src/**' of agent 'a' in the same shared workspace; two agents must "
        "not own one path (narrow one pattern, or give one of them 'workspace: worktree')"
    ]


def test_owns_pattern_with_dotdot_is_refused(tmp_path: Path) -> None:
    problems = roster_problems(
        tmp_path, "agents:\n  a:\n    prompt: p\n    owns: [../elsewhere/**]\n"
    )
    assert len(problems) == 1
    assert "may not contain '..'" in problems[0]
    assert ":4: key 'agents.a.owns'" in problems[0]


def write_rule(agent: str, path: str) -> dict[str, object]:
    return {
        "agent": agent_rule(agent),
        "match": f"please write {re.escape(path)}\\n",
        "tool_use": {"name": "Write", "input": {"file_path": path, "content": "new text\n"}},
    }


@pytest.mark.cli
def test_writes_outside_owns_are_denied_with_the_owner_even_through_tricks(
    team: TeamFactory, tmp_path: Path
) -> None:
    """alpha owns src/; beta owns docs/. alpha writing docs/ (directly, through `..`, or
    through a symlink in src/ that points into docs/) is denied naming beta; a path nobody
    owns is denied saying so; a write inside src/ is made."""
    (tmp_path / "src").mkdir()
    (tmp_path / "docs").mkdir()
    os.symlink(tmp_path / "docs", tmp_path / "src" / "link")
    paths = ["src/ok.py", "docs/a.md", "src/../docs/b.md", "src/link/c.md", "notes/d.md"]
    rules = [
        {"agent": agent_rule("alpha"), "tool_result": r"(?s)^(.*)$", "text": "RESULT {1}"},
        *(write_rule("alpha", p) for p in paths),
    ]
    t = team(
        rules,
        {
            "alpha": {"tools": ["Write"], "owns": ["src/"]},
            "beta": {"owns": ["docs/"]},
        },
    )
    t.up()
    t.wait_ready("alpha", "beta")
    answers = {p: t.ask("alpha", f"please write {p}") for p in paths}

    assert (tmp_path / "src" / "ok.py").read_text() == "new text\n"
    assert not any((tmp_path / "docs").iterdir())  # nothing reached docs/, by any route
    assert not (tmp_path / "notes").exists()
    for p in ("docs/a.md", "src/../docs/b.md", "src/link/c.md"):
        assert "owned by 'beta'" in answers[p], answers[p]
        assert "outside the paths this agent may write" in answers[p]
    assert str(tmp_path / "docs") in answers["src/link/c.md"]  # the resolved path is shown
    assert "nobody owns it" in answers["notes/d.md"]
    assert "owned by" not in answers["src/ok.py"]


@pytest.mark.cli
def test_an_agent_without_owns_cannot_write_what_another_agent_owns(
    team: TeamFactory, tmp_path: Path
) -> None:
    """Review E: `a` (no owns) and `b` (owns src/) in one folder; a's Write of src/owned.py
    went through. Now it is denied naming b; a still writes the rest of its folder."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "owned.py").write_text("b's\n")
    paths = ["src/owned.py", "src/../src/new.py", "notes.txt"]
    rules = [
        {"agent": agent_rule("a"), "tool_result": r"(?s)^(.*)$", "text": "RESULT {1}"},
        *(write_rule("a", p) for p in paths),
    ]
    t = team(rules, {"a": {"tools": ["Write"]}, "b": {"tools": ["Write"], "owns": ["src/"]}})
    t.up()
    t.wait_ready("a", "b")
    answers = {p: t.ask("a", f"please write {p}") for p in paths}
    assert (tmp_path / "src" / "owned.py").read_text() == "b's\n"
    assert not (tmp_path / "src" / "new.py").exists()
    for p in ("src/owned.py", "src/../src/new.py"):
        assert "is owned by 'b': ask it to make the change" in answers[p], answers[p]
    assert (tmp_path / "notes.txt").read_text() == "new text\n"
    assert "owned" not in answers["notes.txt"]
