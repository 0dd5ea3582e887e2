"""A shell a program starts for a terminal is interactive, and an interactive bash runs
``PROMPT_COMMAND`` before each prompt: ``PROMPT_COMMAND=LINE tmux new -d`` (or
``screen -D -m``) runs LINE in the new window, with no terminal of the caller's. The
variable holds a shell line, read as such (as ``GIT_SSH_COMMAND=`` is), so a rule on the
program (``Bash(tmux:*)``) exempts nothing of it. The real hook; the tmux line is first run
for real (bash, no terminal) to show it pushes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer, git, pushable, runs

TOOLS = ["Bash", "Bash(tmux:*)", "Bash(screen:*)", "Bash(export:*)"]
PUSHED = "matches Bash(git push:*): the command is on the line"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_prompt_command_pushes_from_a_new_tmux_window(tmp_path: Path) -> None:
    (remote, repo), home = pushable(tmp_path), tmp_path / "home"
    home.mkdir()
    socket = tmp_path / "s"
    line = f"PROMPT_COMMAND='git push -q origin main; touch ran-it; exit' tmux -S {socket} new -d"
    # the window's shell starts in the call's folder; its first prompt comes after startup
    wait = "; for i in $(seq 100); do [ -e ran-it ] && break; sleep 0.1; done"
    try:
        assert runs(line + wait, repo)
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False)
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")  # it pushed
    assert answer(repo, line, TOOLS, home=home)[0] == [PUSHED]


def test_prompt_command_is_read_as_a_shell_line(tmp_path: Path) -> None:
    home = tmp_path / "home"  # with no startup file a new window's shell would run
    home.mkdir()
    work = tmp_path / "w"  # a folder apart from it (a command run above a HOME may write it)
    work.mkdir()
    for line in (
        "PROMPT_COMMAND='git push -q' tmux new -d",
        "export PROMPT_COMMAND='git push -q'; tmux new -d",
        "PROMPT_COMMAND='git push' screen -D -m",
        "PROMPT_COMMAND[1]='git push' tmux new -d",
    ):
        assert answer(work, line, TOOLS, home=home)[0] == [PUSHED], line
    why = "runs code given to python3 -c: cannot be read"
    line = """PROMPT_COMMAND="python3 -c 'import os; os.system(1)'" tmux new -d"""
    assert answer(work, line, TOOLS, home=home)[0] == [f"matches {RULE}: {why}"]
    # an everyday prompt setting, or none, asks for nothing
    assert answer(work, "PROMPT_COMMAND='history -a' tmux new -d", TOOLS, home=home)[0] == []
    assert answer(work, "tmux new -d", TOOLS, home=home)[0] == []


# (the startup file, the line opening a shell with no command) measured: a tmux window's
# shell is a login bash (~/.bash_profile ran), screen's an interactive one (~/.bashrc ran)
STARTS = [(".bash_profile", "tmux -S {socket} new -d"), (".bashrc", "screen -D -m")]


@pytest.mark.parametrize(("name", "line"), STARTS)
def test_the_startup_file_of_a_new_windows_shell_asks(name: str, line: str, tmp_path: Path) -> None:
    program = line.split(" ", maxsplit=1)[0]
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")
    remote, repo = pushable(tmp_path)
    socket = tmp_path / "s"
    line = line.format(socket=socket)
    tools = [*TOOLS, f"Bash({line}:*)"]
    assert answer(repo, line, tools, home=repo)[0] == []  # no file: nothing asked
    # written by an earlier call (the HOME is the agent's to write); it ends the shell
    (repo / name).write_text("git push -q origin main; touch ran-it; exit\n")
    wait = "; for i in $(seq 100); do [ -e ran-it ] && break; sleep 0.1; done"
    try:
        assert runs(line + wait, repo)  # with HOME the repository
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False)
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")  # it pushed
    why = f"{program} runs the commands of the startup file of its shell {repo / name}"
    assert answer(repo, line, tools, home=repo)[0] == [f"matches {RULE}: {why}: cannot be read"]
    # given a command, the shell tmux runs it with is not interactive: it reads no file
    assert answer(repo, f"{line} 'sleep 1'", tools, home=repo)[0] == []
    # a line writing such a file first asks as well
    written = f"cp x ~/{name}; {line}"
    assert answer(repo, written, tools, home=tmp_path)[0] == [
        f"matches {RULE}: {program} reads a config file the line may write (~/{name}): "
        "cannot be read"
    ]
