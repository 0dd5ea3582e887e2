"""A folder reached through a file descriptor the line's shell opened (`exec 3<.git; cd
/dev/fd/3`) or through another process (`/proc/PID/cwd`): only that shell knows where it
is (the hook reading `/dev/fd/3` reads its own descriptor 3). Each line is first run for
real (bash, no terminal, HOME the test's folder) to show git runs the alias it reaches,
then the real hook, the agent holding `Bash(git st:*)` and `approve: [Bash(git push:*)]`,
asks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git st:*)"]
ALIAS = "[alias]\n\tst = !touch {home}/ran-it\n"


def _repos(tmp_path: Path) -> Path:
    """`r`, the call's folder, a repository; `other`, one whose alias `st` leaves ran-it."""
    for name in ("r", "other"):
        _git("init", "-q", str(tmp_path / name), cwd=tmp_path)
    with (tmp_path / "other" / ".git" / "config").open("a") as config:
        config.write(ALIAS.format(home=tmp_path))
    (tmp_path / "r" / "evil").write_text(ALIAS.format(home=tmp_path))
    return tmp_path / "r"


# (the line, the approver's reason) (measured: each ran the alias, unasked, before)
LINES = [
    (
        "exec 3<../other; cd /dev/fd/3; git st",
        "git may run in a folder known only at run time (cd /dev/fd/3)",
    ),
    (
        "exec 3<../other; cd /proc/self/fd/3; git st",
        "git may run in a folder known only at run time (cd /proc/self/fd/3)",
    ),
    (
        "exec 3<../other; git -C /dev/fd/3 st",
        "git may run in a folder known only at run time (git -C /dev/fd/3)",
    ),
    (
        "exec 3<../other; env -C /dev/fd/3 git st",
        "git may run in a folder known only at run time (git -C /dev/fd/3)",
    ),
    (
        "exec 3<../other/.git; GIT_DIR=/dev/fd/3 git st",
        "git may run with GIT_DIR known only at run time (GIT_DIR=/dev/fd/3)",
    ),
    (
        "exec 3<.git; cat evil >> /dev/fd/3/config; git st",
        "git reads its config where the line may write (/dev/fd/3/config)",
    ),
    (
        "exec 3<.git; cd /dev/fd/3; cat ../evil >> config; cd -; git st",
        "git may run in a folder known only at run time (cd /dev/fd/3)",
    ),
]


@pytest.mark.parametrize(("line", "why"), LINES)
def test_a_folder_through_a_descriptor_asks(line: str, why: str, tmp_path: Path) -> None:
    repo = _repos(tmp_path)
    config = (repo / ".git" / "config").read_text()
    ran = runs(line, repo)
    (repo / ".git" / "config").write_text(config)  # as it was before the line ran
    assert ran or (tmp_path / "ran-it").exists()
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_a_config_written_through_a_descriptor_asks(tmp_path: Path) -> None:
    """`exec 3<~/.config; cp -r … /dev/fd/3/gdb`: gdb's config in the HOME, written before
    gdb reads it (measured: gdb ran the file's shell command, unasked)."""
    repo = _repos(tmp_path)
    (repo / "dots" / "gdb").mkdir(parents=True)
    (repo / "dots" / "gdb" / "gdbinit").write_text(f"shell touch {tmp_path}/ran-it\n")
    (tmp_path / ".config").mkdir()
    line = "exec 3<~/.config; cp -r dots/gdb /dev/fd/3/gdb; gdb -batch"
    tools = [*TOOLS, "Bash(gdb:*)"]
    assert answer(repo, "gdb -batch", tools, home=tmp_path)[0] == []  # no file: none asked
    if shutil.which("gdb"):
        assert runs(f"cd r && {line}", tmp_path)  # HOME the test's folder
    shutil.rmtree(tmp_path / ".config" / "gdb", ignore_errors=True)
    why = "gdb reads its config where the line may write (/dev/fd/3/gdb)"
    assert answer(repo, line, tools, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]


def test_everyday_descriptor_words_ask_nothing(tmp_path: Path) -> None:
    repo = _repos(tmp_path)
    for line in (
        "echo hi >/dev/stderr; git st",
        "git st 2>/dev/null >/dev/fd/2",
        "cat /proc/cpuinfo; git st",
        "git st | tee /dev/stderr",
        "echo x > /dev/stdout; gdb -batch",
    ):
        assert answer(repo, line, [*TOOLS, "Bash(gdb:*)"], home=tmp_path)[0] == [], line
