"""A line that writes git's config (or hooks) and then runs git: git's state is read
before the line runs, so the alias the line installs was unread (measured, git 2.39: each
line below ran the alias `st` of the config it wrote, and asked for nothing under
`approve: ["Bash(git push:*)"]`). Now it asks: `git reads its config where the line may
write (WORD)`, exempt only by a rule that is exactly the git command. The real hook; each
line is first run for real (bash, no terminal, the test's folder its HOME)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git st:*)"]


def _repo(tmp_path: Path) -> Path:
    """`r`, a repository, holding `evil` (a git config whose alias `st` leaves `ran-it`),
    `t.tar` (evil as `.git/config`) and `tpl/` (a tree whose `.git/config` is evil)."""
    repo = tmp_path / "r"
    _git("init", "-q", str(repo), cwd=tmp_path)
    text = f"[core]\n\trepositoryformatversion = 0\n[alias]\n\tst = !touch {tmp_path}/ran-it\n"
    (repo / "evil").write_text(text)
    _git("-C", str(repo), "config", "core.bare", "false", cwd=tmp_path)
    (repo / "tpl" / ".git").mkdir(parents=True)
    (repo / "tpl" / ".git" / "config").write_text(text)
    return repo


# (the line, the word the approver reads: `{repo}` the repository's folder)
WRITTEN = [
    ("cp evil .git/config; git st", ".git/config"),
    ("cat evil > .git/config; git st", ".git/config"),
    ("cp evil ~/.gitconfig; git st", "~/.gitconfig"),
    ("cp -r tpl/. .; git st", "."),
    ("tar xf t.tar; git st", "tar in {repo}"),
]


@pytest.mark.parametrize(("line", "word"), WRITTEN)
def test_a_line_writing_gits_config_before_git_asks(line: str, word: str, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    transform = ["--transform", "s,evil,.git/config,"]  # the archive: evil as .git/config
    subprocess.run(["tar", "cf", "t.tar", *transform, "evil"], cwd=repo, check=True)
    config = (repo / ".git" / "config").read_text()
    assert runs(f"cd r && {line}", tmp_path)
    (repo / ".git" / "config").write_text(config)  # as it was before the line ran
    (tmp_path / ".gitconfig").unlink(missing_ok=True)
    why = f"git reads its config where the line may write ({word.format(repo=repo)})"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
    assert answer(repo, line, [*TOOLS, "Bash(git st)"], home=tmp_path)[0] == []


def test_everyday_writes_before_git_ask_nothing(tmp_path: Path) -> None:
    """Writes that reach no `.git`, no HOME dot-entry, no tree over the repository; words
    the shell builds are not guessed (`sed -i … "$f"; git add -A` is everyday)."""
    repo = _repo(tmp_path)
    for line in (
        "cp a b && git add b",
        'sed -i s/a/b/ "$f"; git add -A',
        "cp src/x.py . && git add x.py",
        "cp -r src dst && git add dst",
        "tar xf t.tar -C out; git status",
        "echo x > out.txt; git add out.txt",
        "git commit -m x 2>&1 | tail -3",
    ):
        assert answer(repo, line, TOOLS, home=tmp_path)[0] == [], line


# A line that moves into the `.git` folder (or the HOME) and writes there by a relative
# word: each ran the alias `st` of the config it wrote, unasked (measured, git 2.39).
# (the line, the word the approver reads: `{git}` the repository's .git folder)
MOVED = [
    ("cd .git && cp ../evil config && cd .. && git st", "cp in {git}"),
    ("cd .git && cat ../evil > config; cd ..; git st", "config in {git}"),
    ("pushd .git && cp ../evil config && popd && git st", "cp in {git}"),
    ("(cd .git; cp ../evil config); git st", "cp in {git}"),
    ("env -C .git cp ../evil config; git st", "cp in {git}"),
    ("cd ~ && cp r/evil .gitconfig; cd r; git st", ".gitconfig"),
    ("cd .. && cp r/evil .gitconfig; cd r; git st", ".gitconfig"),
]


@pytest.mark.parametrize(("line", "word"), MOVED)
def test_a_line_writing_where_it_moved_before_git_asks(
    line: str, word: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    config = (repo / ".git" / "config").read_text()
    assert runs(f"cd r && {line}", tmp_path)
    (repo / ".git" / "config").write_text(config)
    (tmp_path / ".gitconfig").unlink(missing_ok=True)
    why = f"git reads its config where the line may write ({word.format(git=repo / '.git')})"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_everyday_moves_before_git_ask_nothing(tmp_path: Path) -> None:
    """A move elsewhere, or into `.git` only to read, asks nothing."""
    repo = _repo(tmp_path)
    (repo / "src").mkdir()
    for line in (
        "cd src && cp a b && cd .. && git add -A",
        "cd .git && cat config; cd ..; git status",
        "cd src && echo x > out.txt 2>&1; git status",
    ):
        assert answer(repo, line, TOOLS, home=tmp_path)[0] == [], line


# A line that makes a repository where it then runs git (copied, moved, linked or
# extracted there): git's state was read there before the line ran, no repository yet;
# each ran the alias `st` of `e`'s config, unasked (measured, git 2.39).
MADE = [
    ("cp -r ../e q && cd q && git st", "q"),
    ("cp -r ../e q && git -C q st", "q"),
    ("mv ../e q && cd q && git st", "q"),
    ("ln -s ../e q && cd q && git st", "q"),
    ("tar xf ../e.tar && cd e && git st", "tar in {w}"),
]


@pytest.mark.parametrize(("line", "word"), MADE)
def test_a_line_making_a_repository_where_git_runs_asks(
    line: str, word: str, tmp_path: Path
) -> None:
    e = tmp_path / "e"  # a repository whose config holds the alias
    _git("init", "-q", str(e), cwd=tmp_path)
    _git("config", "alias.st", f"!touch {tmp_path}/ran-it", cwd=e)
    subprocess.run(["tar", "cf", "e.tar", "e"], cwd=tmp_path, check=True)
    w = tmp_path / "w"  # the call's folder: no repository
    for folder in (w, tmp_path / "run" / "w"):
        folder.mkdir(parents=True)
    (tmp_path / "run" / "e").symlink_to(e)  # the line run there, e left as it was
    (tmp_path / "run" / "e.tar").symlink_to(tmp_path / "e.tar")
    assert runs(f"cd run/w && {line}", tmp_path)
    why = f"git reads its config where the line may write ({word.format(w=w)})"
    assert answer(w, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_everyday_trees_before_git_elsewhere_ask_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "src").mkdir()
    for line in (
        "cp -r src/. out && git add -A",
        "cd src && git status && cd .. && mv a b",
        "mv a.txt src/b.txt && cd src && git add b.txt",
    ):
        assert answer(repo, line, TOOLS, home=tmp_path)[0] == [], line


# A patch naming .git/config, and words the shell builds around a literal `.git` or after
# `$HOME/`: each ran the alias `st` of the config written, unasked (measured, git 2.39).
OTHER_WRITERS = [
    ("patch -p1 < e.patch; git st", "patch in {repo}"),
    ("patch -p1 -i e.patch; git st", "patch in {repo}"),
    ("cp evil $PWD/.git/config; git st", "$PWD/.git/config"),
    ('cp evil "$(pwd)/.git/config"; git st', "$(pwd)/.git/config"),
    ("cat evil > ${PWD}/.git/config; git st", "${PWD}/.git/config"),
    ('cp evil "$HOME/.gitconfig"; git st', "$HOME/.gitconfig"),
    ("cp evil $(printf .git)/config; git st", "$(printf .git)/config"),
    ('cp evil "$(git rev-parse --git-dir)/config"; git st', "$(git rev-parse --git-dir)/config"),
    (
        'cat evil > "$(git rev-parse --git-dir)/config"; git st',
        "a word the shell builds, naming git's folder",
    ),
    ("d=.git; cp evil $d/config; git st", "a word the shell builds, the line naming git's folder"),
    (
        "f=.git/config; sed -i '$r evil' \"$f\"; git st",
        "a word the shell builds, the line naming git's folder",
    ),
]


@pytest.mark.parametrize(("line", "word"), OTHER_WRITERS)
def test_other_writers_of_gits_config_ask(line: str, word: str, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    config = (repo / ".git" / "config").read_text()
    (tmp_path / "old").write_text(config)
    evil = (repo / "evil").read_text()
    (tmp_path / "new").write_text(config + evil[evil.index("[alias]") :])
    diff = subprocess.run(
        ["diff", "-u", "old", "new"], cwd=tmp_path, capture_output=True, check=False
    )
    body = diff.stdout.decode().splitlines()[2:]
    patch = ["--- a/.git/config", "+++ b/.git/config", *body, ""]
    (repo / "e.patch").write_text("\n".join(patch))
    assert runs(f"cd r && {line}", tmp_path)
    (repo / ".git" / "config").write_text(config)
    (tmp_path / ".gitconfig").unlink(missing_ok=True)
    why = f"git reads its config where the line may write ({word.replace('{repo}', str(repo))})"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_built_words_elsewhere_ask_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    for line in (
        "cp a $d/x; git add -A",
        "echo x > $OUT/log.txt; git status",
        "patch -p1 < p",
        'cp a "$(git rev-parse --show-toplevel)/b"; git add -A',
        "sed -i 's/[.]git$//' \"$f\"; git add -A",
        'for f in *.py; do sed -i s/a/b/ "$f"; done; git add -A',
    ):
        assert answer(repo, line, TOOLS, home=tmp_path)[0] == [], line


def test_writing_the_agents_xdg_config_home_before_git_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git reads `$XDG_CONFIG_HOME/git/config`: one outside the HOME was not looked at
    (measured: the line below ran the alias `st` it wrote, unasked)."""
    repo = _repo(tmp_path)
    xdg = tmp_path / "xdg"
    (xdg / "git").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))  # the agent's, as the supervisor's
    line = f"cp evil {xdg}/git/config; git st"
    assert runs(f"cd r && {line}", tmp_path)
    (xdg / "git" / "config").unlink()
    why = f"git reads its config where the line may write ({xdg}/git/config)"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
    assert answer(repo, f"cp evil {tmp_path}/out; git st", TOOLS, home=tmp_path)[0] == []


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("cp hk .githooks/pre-commit && git st", ".githooks/pre-commit"),
        ("cd .githooks && cp ../hk pre-commit && cd .. && git st", "cp in {repo}/.githooks"),
    ],
)
def test_writing_a_hooks_path_folder_before_git_asks(line: str, word: str, tmp_path: Path) -> None:
    """A `core.hooksPath` outside `.git` (husky's `.husky`, `.githooks`): a hook written
    there ran at the git command after it (measured: `cp hk .githooks/pre-commit && git
    commit` ran hk, unasked; here `st` is `commit`, the alias that runs it)."""
    repo = _repo(tmp_path)
    _git("config", "core.hooksPath", ".githooks", cwd=repo)
    _git("config", "alias.st", "commit -q --allow-empty -m x", cwd=repo)
    for key, value in (("user.name", "a"), ("user.email", "a@b.c")):
        _git("config", key, value, cwd=repo)
    (repo / ".githooks").mkdir()
    (repo / "hk").write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-it\n")
    (repo / "hk").chmod(0o755)
    assert runs(f"cd r && {line}", tmp_path)
    (repo / ".githooks" / "pre-commit").unlink()
    why = f"git reads its config where the line may write ({word.replace('{repo}', str(repo))})"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
    assert answer(repo, "cp hk src/x && git st", TOOLS, home=tmp_path)[0] == []
