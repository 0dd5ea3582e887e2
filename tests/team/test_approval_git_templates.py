"""git's template folder: `git clone` and `git init` copy its `hooks/` into the new
repository, and `git clone` then runs `post-checkout` there. A template folder named on the
line (`GIT_TEMPLATE_DIR=t`, `--template=t`, `-c init.templateDir=t`) or in git's config
(`init.templateDir`, an earlier call's `~/.gitconfig`) ran its hook unasked under
`Bash(git clone:*)` (measured, git 2.39): each now asks. The real hook; each line is first
run for real (bash, no terminal, the test's folder its HOME) to show that it runs the hook."""

from __future__ import annotations

from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git clone:*)", "Bash(git init:*)", "Bash(git commit:*)"]


def _setup(tmp_path: Path) -> None:
    """A repository `src` to clone and a template folder `t` whose post-checkout and
    pre-commit hooks leave `ran-it` in the test's folder."""
    _git("init", "-q", str(tmp_path / "src"), cwd=tmp_path)
    (tmp_path / "src" / "a").write_text("a\n")
    _git("add", "a", cwd=tmp_path / "src")
    _git("commit", "-qm", "a", cwd=tmp_path / "src")
    (tmp_path / "t" / "hooks").mkdir(parents=True)
    for name in ("post-checkout", "pre-commit"):
        hook = tmp_path / "t" / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-it\n")
        hook.chmod(0o755)


# (the line, why the hook asks)
ON_THE_LINE = [
    ("GIT_TEMPLATE_DIR=t git clone -q src c", "gives GIT_TEMPLATE_DIR code to load or run"),
    ("export GIT_TEMPLATE_DIR=t; git clone -q src c", "gives GIT_TEMPLATE_DIR code to load or run"),
    (
        "git clone -q --template=t src c",
        "gives git --template a folder whose hooks git installs and runs",
    ),
    (
        "git clone -q --template t src c",
        "gives git --template a folder whose hooks git installs and runs",
    ),
    ("git -c init.templateDir=t clone -q src c", "gives git init.templateDir, which runs files"),
    # a hooks folder given with -c: `Bash(git clone:*)` exempted it (a file the rule named)
    (
        "git -c core.hooksPath={here}/t/hooks clone -q src c",
        "gives git core.hooksPath, which runs files",
    ),
]


@pytest.mark.parametrize(("line", "why"), ON_THE_LINE)
def test_a_template_folder_named_on_the_line_asks(line: str, why: str, tmp_path: Path) -> None:
    _setup(tmp_path)
    line = line.format(here=tmp_path)  # a relative hooksPath is the new clone's
    assert runs(line, tmp_path)
    assert answer(tmp_path, line, TOOLS, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]
    # a rule naming the option that gives it exempts it, as for other code on the line
    if line.startswith("git -c"):
        assert answer(tmp_path, line, [*TOOLS, "Bash(git -c:*)"], home=tmp_path)[0] == []


def test_git_init_with_a_template_asks_before_its_hooks_run(tmp_path: Path) -> None:
    """`git init --template=t c` runs no hook itself, but the repository it makes has them:
    the commit after it on the same line is read before the repository exists."""
    _setup(tmp_path)
    line = "git init -q --template=t c && cd c && git commit -q --allow-empty -m x"
    who = "export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a"
    who += " GIT_COMMITTER_EMAIL=a@b"
    assert runs(f"{who}; {line}", tmp_path)
    (asked,) = answer(tmp_path, line.replace(" c ", " d ").replace("cd c", "cd d"), TOOLS)[0]
    assert asked == (
        f"matches {RULE}: gives git --template a folder whose hooks git installs and runs: "
        "cannot be read"
    )


def test_a_template_folder_in_git_config_asks(tmp_path: Path) -> None:
    """An earlier call's `~/.gitconfig` naming a template folder with hooks: each
    `git clone` ran its post-checkout; a template with only `.sample` hooks asks nothing."""
    _setup(tmp_path)
    line = "git clone -q src c"
    assert answer(tmp_path, line, TOOLS, home=tmp_path)[0] == []
    (tmp_path / ".gitconfig").write_text("[init]\n\ttemplateDir = ~/t\n")
    assert runs(line, tmp_path)
    why = f"git clone may install and run the hooks post-checkout, pre-commit of {tmp_path}/t/hooks"
    for written in (line, "git submodule update --init", "git init -q e"):
        sub = written.split(" ")[1]
        assert answer(tmp_path, written, TOOLS, home=tmp_path)[0] == [
            f"matches {RULE}: {why.replace('git clone', f'git {sub}')}: cannot be read"
        ], written
    assert answer(tmp_path, "git log -1", TOOLS, home=tmp_path)[0] == []
    for hook in (tmp_path / "t" / "hooks").iterdir():
        hook.rename(hook.with_name(hook.name + ".sample"))
    assert answer(tmp_path, line, TOOLS, home=tmp_path)[0] == []
