"""A program the hook does not know as a wrapper may run the rest of its words as a
command (`setpriv git st`, `setarch x86_64 gdb -batch`): the git or config-reading command
there is read as well, git's state and the config in the HOME asked about as if it began
the line. Each line is first run for real (bash, no terminal, HOME the test's folder)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs
from gitrepo import git_run as _git

TOOLS = ["Bash", "Bash(git st:*)", "Bash(gdb:*)"]
# util-linux's: each runs its command (setpriv with no option, setarch with the machine's)
WRAPPED = ["setpriv {}", "setarch {arch} {}", "setpriv --reuid=0 {}"]


def _arch() -> str:
    return subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("form", WRAPPED)
def test_git_run_by_an_unknown_wrapper_reads_gits_state(form: str, tmp_path: Path) -> None:
    """alias.st = push: `setpriv git st` pushed, unasked (its alias was never read)."""
    _git("init", "-q", "--bare", str(tmp_path / "remote.git"), cwd=tmp_path)
    repo = tmp_path / "r"
    _git("init", "-q", str(repo), cwd=tmp_path)
    _git("-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x", cwd=tmp_path)
    _git("-C", str(repo), "remote", "add", "origin", str(tmp_path / "remote.git"), cwd=tmp_path)
    _git(
        "-C", str(repo), "config", "alias.st", "push -q origin HEAD:refs/heads/pushed", cwd=tmp_path
    )
    line = form.format("git st", arch=_arch().strip())
    if shutil.which(line.split(" ")[0]):
        subprocess.run(["bash", "-c", line], cwd=repo, capture_output=True, check=False)
        refs = _git("-C", str(tmp_path / "remote.git"), "for-each-ref", cwd=tmp_path)
        assert "refs/heads/pushed" in refs
    why = "alias.st in git's config ({}) makes it run git push -q origin HEAD:refs/heads/pushed"
    assert answer(repo, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why.format(repo)}"]
    assert answer(repo, form.format("git status", arch="x"), TOOLS, home=tmp_path)[0] == []


@pytest.mark.parametrize("form", WRAPPED)
def test_a_config_read_by_an_unknown_wrappers_command_asks(form: str, tmp_path: Path) -> None:
    line = form.format("gdb -batch", arch=_arch().strip())
    work = tmp_path / "work"  # not the HOME: a program unknown there may write at a HOME
    work.mkdir()
    assert answer(work, line, TOOLS, home=tmp_path)[0] == []  # no ~/.gdbinit: none asked
    (tmp_path / ".gdbinit").write_text("shell touch ran-it\n")
    if shutil.which("gdb") and shutil.which(line.split(" ")[0]):
        assert runs(line, tmp_path)
    why = f"gdb runs the commands of its config file {tmp_path / '.gdbinit'}"
    assert answer(work, line, TOOLS, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
