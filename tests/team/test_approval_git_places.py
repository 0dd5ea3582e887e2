"""Where a git command runs, and with which repository and config, decides what git's state
makes it run (tests/team/test_approval_git_state.py). The line may say so only at run
time (``cd "$d"``, ``cd $(mktemp -d)``, ``git -C "$d"``, ``GIT_DIR=$x``): then the hook
cannot read that state and asks, saying why. Where the line says it literally (``cd ~``,
``cd a && cd b``, ``--git-dir=X``, ``env -C X``, ``export GIT_DIR=X``,
``GIT_CONFIG_GLOBAL=F``) the state there is read. Each line is first run for real, with
the agent's HOME, to show that it does run what was planted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer
from gitrepo import git_run as _git

MARK = "touch ran-it"  # what the planted alias runs, where git runs it
PUSH = f"{MARK}; git push -q"


def _repo(path: Path, alias: str | None = None) -> Path:
    _git("init", "-q", str(path), cwd=path.parent)
    _git("commit", "-q", "--allow-empty", "-m", "first", cwd=path)
    if alias is not None:
        _git("config", "alias.st", f"!{alias}", cwd=path)
    return path


def _decide(tmp_path: Path, home: Path, line: str, *, rule: str = RULE) -> list[str]:
    """What the agent's hook asks the approver about ``line`` (its own tools allow
    ``git st``: that exempts none of git's state)."""
    tools = ["Bash", "Bash(git st:*)"]
    return answer(tmp_path / "repo", line, tools, rule=rule, home=home)[0]


def _runs_planted(line: str, cwd: Path, home: Path, **env: str) -> bool:
    """Whether ``line``, run by bash with the agent's HOME, runs the planted alias."""
    for found in (*cwd.parent.rglob("ran-it"), *home.rglob("ran-it")):
        found.unlink()
    full = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **env}
    subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=full, capture_output=True, check=False, timeout=30
    )
    return any(cwd.parent.rglob("ran-it")) or any(home.rglob("ran-it"))


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The call's folder (a clean repository), the agent's HOME, and a repository in it
    whose alias `st` runs the mark and a push."""
    home = tmp_path / "home"
    home.mkdir()
    repo = _repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    other = _repo(home / "other", PUSH)
    return repo, home, other


# (the line, what the approver reads after "git may run in a folder known only at run time")
BUILT = [
    ('d={other}; cd "$d" && git st', "cd $d"),
    ("cd $(echo {other}) && git st", "cd $(…)"),
    ("cd `echo {other}` && git st", "cd `…`"),
    ('cd "$HOME/other" && git st', "cd $HOME/other"),
    ("cd {home}/oth* && git st", "cd {home}/oth*"),
    ('d={other}; git -C "$d" st', "git -C $d"),
    ("d={other}; pushd $d >/dev/null && git st", "cd $d"),
    ("cd - && git st", "cd -"),  # OLDPWD (the agent's shell may hold any)
    ("cd ~- && git st", "cd ~-"),  # OLDPWD again, by tilde (read as a folder named ~-)
    ("git -C ~- st", "git -C ~-"),
    ("CDPATH={home}; cd other && git st", "cd CDPATH other"),
]


@pytest.mark.parametrize(("line", "why"), BUILT)
def test_git_in_a_folder_built_at_run_time_asks(
    line: str, why: str, place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, home, other = place
    line = line.format(other=other, home=home)
    assert _runs_planted(line, repo, home, OLDPWD=str(other))
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: git may run in a folder known only at run time "
        f"({why.format(home=home)}): cannot be read"
    ]


# (the line, the folder whose state is read, a setting git runs with there)
LITERAL = [
    ("cd ~/other && git st", "{other}", ""),
    ("cd ~ && cd other && git st", "{other}", ""),
    ("cd ../home && cd other && git st", "{other}", ""),
    ("git -C ../home -C other st", "{other}", ""),
    ("cd ../home; cd nothere; cd other && git st", "{other}", ""),  # a cd that fails
    ("cd ../home; (cd x); cd other && git st", "{other}", ""),  # a cd in a subshell
    ('cd sub && cd "$(git rev-parse --show-toplevel)/../home/other" && git st', "{other}", ""),
    ("git --git-dir={other}/.git st", "{other}/.git", ""),
    ("env -C {other} git st", "{other}", ""),
    ("env --chdir={other} git st", "{other}", ""),
    ("export GIT_DIR={other}/.git; git st", "{repo}", ", GIT_DIR={other}/.git"),
    ("env GIT_DIR={other}/.git git st", "{repo}", ", GIT_DIR={other}/.git"),
    ("GIT_DIR={other}/.git\ngit st", "{repo}", ", GIT_DIR={other}/.git"),
]


@pytest.mark.parametrize(("line", "folder", "setting"), LITERAL)
def test_git_in_a_folder_the_line_names_reads_the_state_there(
    line: str, folder: str, setting: str, place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Followed before this only as `cd X`, `pushd X`, `git -C X`, `--git-dir X` each
    from the call's folder, with `~` the supervisor's HOME."""
    repo, home, other = place
    line = line.format(other=other)
    # `GIT_DIR=…` on a line of its own reaches git when GIT_DIR was exported already.
    exported = {"GIT_DIR": str(repo / ".git")} if line.startswith("GIT_DIR=") else {}
    assert _runs_planted(line, repo, home, **exported)
    where = folder.format(other=other, repo=repo) + setting.format(other=other)
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: alias.st in git's config ({where}) makes it run git push -q"
    ]


# Programs that run their command in a folder they are given (measured: `nsenter
# -w/DIR pwd` printed DIR; `tmux new -c DIR` ran its command there, and `neww` without
# -c in the client's folder): git's state is read there, as for `env -C DIR`.
WORKING_FOLDERS = [
    "nsenter -w{other} git st",
    "nsenter --wd={other} git st",
    "nsenter -W {other} git st",
    "bwrap --dev-bind / / --chdir {other} git st",
    "gdb -q -batch --cd={other} -ex run --args git st",
    "tmux -S {socket} new -d -c {other} 'git st; tmux -S {socket} wait -S w' \\; wait w",
]


@pytest.mark.parametrize("line", WORKING_FOLDERS)
def test_git_in_a_working_folder_a_program_is_given_reads_the_state_there(
    line: str, place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, home, other = place
    socket = str(tmp_path / "tmux.sock")  # a server of its own, its socket in the test's folder
    line = line.format(other=other, socket=socket)
    program = line.split(" ")[0]
    try:
        if shutil.which(program):
            assert _runs_planted(line, repo, home)
    finally:
        if program == "tmux":
            subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
    asked = _decide(tmp_path, home, line)
    if program == "gdb":  # `-ex run` is gdb code on the line: asked about first
        assert asked == [f"matches {RULE}: runs the gdb commands given to gdb -ex: cannot be read"]
        line = line.replace(" -ex run", "")
        asked = _decide(tmp_path, home, line)
    assert asked == [f"matches {RULE}: alias.st in git's config ({other}) makes it run git push -q"]


# (the line, what the approver reads after "git may run in a folder known only at run time")
RUN_TIME_FOLDERS = [
    # a bind shows another folder's files here (run for real: it runs other's alias)
    ("bwrap --dev-bind / / --bind {other} {repo} git st", "cd bwrap --bind {other} {repo}"),
    ("nsenter -t 1 -m git st", "git -C nsenter -m"),  # `/` of PID 1's mount namespace
    ("nsenter -t 1 -w git st", "git -C nsenter -w"),  # the folder PID 1 works in
    ("tmux respawnp -k 'git st'", "cd (the pane's folder)"),
    ("tmux new -d -c '#{{pane_current_path}}' 'git st'", "cd #{{pane_current_path}}"),
    ("tmux new -d -c \"$d\" 'git st'", "cd $d"),
]


@pytest.mark.parametrize(("line", "why"), RUN_TIME_FOLDERS)
def test_git_in_a_working_folder_known_at_run_time_asks(
    line: str, why: str, place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, home, other = place
    line = line.format(other=other, repo=repo)
    if line.startswith("bwrap") and shutil.which("bwrap"):
        assert _runs_planted(line, repo, home)
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: git may run in a folder known only at run time "
        f"({why.format(other=other, repo=repo)}): cannot be read"
    ]


def test_git_run_by_find_execdir_asks(place: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`-execdir` runs its command in each found file's folder: a repository below, with
    its own alias, is known only when find runs (measured: the alias ran, unasked)."""
    repo, home, _ = place
    below = _repo(repo / "below", PUSH)
    (below / "m").write_text("")
    line = "find . -name m -execdir git st \\;"
    assert _runs_planted(line, repo, home)
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: git may run in a folder known only at run time "
        "(cd (each folder of find -execdir)): cannot be read"
    ]
    assert _decide(tmp_path, home, "find . -name m -exec git st \\;") == []


def test_a_config_file_named_on_the_line_is_read(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`GIT_CONFIG_GLOBAL=F git st`: the alias in F runs. It asked for a rule on git
    before (an alias may name any subcommand), never for a rule on what the alias runs."""
    repo, home, _ = place
    config = tmp_path / "extra.cfg"
    config.write_text(f'[alias]\n\tst = "!{MARK}"\n')
    line = f"GIT_CONFIG_GLOBAL={config} git st"
    assert _runs_planted(line, repo, home)
    assert _decide(tmp_path, home, line, rule="Bash(touch:*)") == [
        f"matches Bash(touch:*): alias.st in git's config ({repo}, GIT_CONFIG_GLOBAL={config}) "
        f"makes it run {MARK}"
    ]
    assert _decide(tmp_path, home, "git st", rule="Bash(touch:*)") == []


SETTINGS = [
    ('GIT_DIR="$x" git st', "GIT_DIR=$x"),
    ("export GIT_DIR=$(mktemp -d); git st", "GIT_DIR=$(…)"),
    ("env GIT_CONFIG_GLOBAL=$f git st", "GIT_CONFIG_GLOBAL=$f"),
    ("read GIT_DIR <<< x; export GIT_DIR; git st", "GIT_DIR=(set by read)"),
    ("export GIT_DIR; git st", "GIT_DIR=…"),
]


@pytest.mark.parametrize(("line", "why"), SETTINGS)
def test_a_git_setting_built_at_run_time_asks(
    line: str, why: str, place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """(Under a rule on what an alias may run: a `GIT_CONFIG*` on the line asked already
    for every rule on git.)"""
    _, home, _ = place
    assert _decide(tmp_path, home, line, rule="Bash(touch:*)") == [
        f"matches Bash(touch:*): git may run with {why.partition('=')[0]} known only at run time "
        f"({why}): cannot be read"
    ]


def test_everyday_lines_still_ask_for_nothing(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Folders the line names literally, and run-time folders on lines without git."""
    _, home, _ = place
    (tmp_path / "repo" / "src").mkdir()
    for line in (
        'cd "$(git rev-parse --show-toplevel)" && git status',
        'ls "$(git rev-parse --show-toplevel)/src"',  # `/src`: no command (it asked)
        'cd src && cd "$(git rev-parse --show-toplevel)/src" && git diff',
        "cd src && ls && cd .. && cd src && ls && cd .. && git status",
        "cd src && git status",
        "cd src && cd .. && git diff",
        "GIT_DIR=.git git log -1",
        'cd "$(mktemp -d)" && ls',
        "export GIT_DIR=.git; export GIT_DIR; git status",
        "git status && echo $HOME",
    ):
        assert _decide(tmp_path, home, line) == [], line


def test_hostile_settings_ask_rather_than_break_the_hook(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A NUL in a setting (no environment can hold it) and thousands of settings or `cd`s
    (two git processes each) ask, saying why, instead of failing the check (a refusal)
    or running git thousands of times."""
    _, home, _ = place
    for line, why in (
        ("GIT_DIR=a\0b git status", "git could not be run: embedded null byte"),
        (" ".join(f"GIT_DIR=x{i}" for i in range(3000)) + " git st", "git in more than 8"),
        ("; ".join(f"cd d{i}" for i in range(3000)) + "; git st", "git in more than 8"),
    ):
        (asked,) = _decide(tmp_path, home, line)
        assert asked.startswith(f"matches {RULE}: {why}"), asked
        assert asked.endswith(": what git runs is unknown: cannot be read"), asked


def test_a_trap_runs_its_line_when_the_shell_ends_and_it_is_read(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`trap 'LINE' EXIT` runs LINE as the shell ends, in the folder it ended in: the
    line was never read (neither `git st` after the `cd`, nor a script it runs)."""
    repo, home, other = place
    line = f"trap 'git st' EXIT; cd {other}"
    assert _runs_planted(line, repo, home)
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: alias.st in git's config ({other}) makes it run git push -q"
    ]
    (asked,) = _decide(tmp_path, home, "trap -- './push.sh' INT EXIT")
    assert asked == f"matches {RULE}: runs the file ./push.sh: cannot be read", asked
    assert _decide(tmp_path, home, "trap - EXIT; trap -p; trap -l") == []


def test_git_exec_path_on_the_line_asks_as_git_exec_path_does(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`git --exec-path=DIR st` runs DIR/git-st (a program git finds there before any
    alias), as GIT_EXEC_PATH=DIR does, which asked; the option asked for nothing."""
    repo, home, _ = place
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / "git-st").write_text(f"#!/bin/sh\n{MARK}\n")
    (programs / "git-st").chmod(0o755)
    line = f"git --exec-path={programs} st"
    assert _runs_planted(line, repo, home)
    (asked,) = _decide(tmp_path, home, line)
    assert asked.startswith(f"matches {RULE}: gives git --exec-path"), asked
    assert asked.endswith(": cannot be read"), asked
    assert _decide(tmp_path, home, "git --exec-path") == []  # prints it, runs nothing


def test_a_git_setting_from_the_home_by_tilde_is_read_there(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`GIT_DIR=~/other/.git git st`: the shell expands `~` in an assignment (and in
    env's and export's), so git reads the HOME's repository and its alias ran unasked:
    the setting was read as a folder named `~` in the call's folder."""
    repo, home, other = place
    for line in (
        "GIT_DIR=~/other/.git git st",
        "env GIT_DIR=~/other/.git git st",
        "export GIT_DIR=~/other/.git; git st",
    ):
        assert _runs_planted(line, repo, home), line
        assert _decide(tmp_path, home, line) == [
            f"matches {RULE}: alias.st in git's config ({repo}, GIT_DIR={other}/.git) "
            "makes it run git push -q"
        ], line


def test_git_run_by_an_alias_is_read_where_the_alias_runs_it(
    place: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A `!` alias's line was read for the rule's command, but the git it runs again was
    not: `alias.st = !git st2` (st2 pushing) or `!cd OTHER && git st` (OTHER's st
    pushing) ran the push unasked. Its git commands are read in turn, in its folder."""
    repo, home, other = place
    chain = _repo(tmp_path / "chain", "git st2")
    _git("config", "alias.st2", f"!{PUSH}", cwd=chain)
    line = f"git -C {chain} st"
    assert _runs_planted(line, repo, home)
    assert _decide(tmp_path, home, line) == [
        f"matches {RULE}: alias.st in git's config ({chain}): alias.st2 in git's config "
        f"({chain}) makes it run git push -q"
    ]
    # The `cd` may fail (git st then runs st here again, a loop): read until it asks.
    moving = _repo(tmp_path / "moving", f"cd {other} && git st")
    line = f"cd {moving} && git st"
    assert _runs_planted(line, repo, home)
    (asked,) = _decide(tmp_path, home, line)
    assert asked.startswith(f"matches {RULE}: alias.st in git's config ({moving}): "), asked
    # An alias that runs itself (git would loop) asks once the reading goes deep enough.
    looping = _repo(tmp_path / "looping", "git st")
    (asked,) = _decide(tmp_path, home, f"git -C {looping} st")
    assert asked.endswith("runs git through more than 4 aliases: cannot be read"), asked


def test_odd_lines_are_answered_not_raised_on(tmp_path: Path) -> None:
    """The hook answers each line, raising on none (a raise refuses the call): `nsenter`
    with no option (its folder options were read by a zip() that raised on none) and a
    `~` holding a NUL in a HOME or XDG_CONFIG_HOME (`pwd` raised on it), found by
    feeding the reader random pieces of lines."""
    (tmp_path / "repo").mkdir()
    for line in (
        "nsenter git status",
        "nsenter ls",
        "HOME=~\0a gdb -batch",
        "XDG_CONFIG_HOME=~\0a gdb -batch",
    ):
        asked, out = answer(tmp_path / "repo", line, ["Bash"], home=tmp_path)
        assert (asked, out) == ([], {}), line
