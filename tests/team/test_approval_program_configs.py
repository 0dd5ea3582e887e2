"""A program's own config file in its HOME runs commands when the program starts
(`~/.gdbinit`, `~/.tmux.conf`, `~/.screenrc`, `~/.vimrc`, `~/.manpath`): a file an earlier
call may have written. Where it exists, the program asks under `Bash(PROG:*)`
(`approve: ["Bash(git push:*)"]`), as `ssh -F FILE` does, unless the agent's own rule is
exactly the command. The real hook; each line whose program is here is first run for real
(bash, no terminal, the folder its HOME) to show it runs the file's command."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs

from orchestrator import bash_commands

BROAD = ["Bash", "Bash(gdb:*)", "Bash(tmux:*)", "Bash(screen:*)", "Bash(vim:*)", "Bash(man:*)"]


def _man_here() -> bool:
    found = subprocess.run(["man", "-w", "ls"], capture_output=True, check=False)
    return shutil.which("man") is not None and found.returncode == 0


# (the config file, what it says (HOME is the folder), the line, which program must be here)
CONFIGS = [
    (".gdbinit", "shell touch ran-it", "gdb -batch", "gdb"),
    # gdb 11+'s early init files (measured, gdb 13: each ran; they asked for nothing)
    (".gdbearlyinit", "shell touch ran-it", "gdb -batch", "gdb"),
    (".config/gdb/gdbearlyinit", "shell touch ran-it", "gdb -batch", "gdb"),
    (".tmux.conf", "run-shell 'touch ran-it'", "tmux -S {socket} new -d", "tmux"),
    (".screenrc", "screen sh -c 'touch {home}/ran-it'", "screen -D -m true", "screen"),
    (".vimrc", "call writefile([], '{home}/ran-it')", "vim x >/dev/null 2>&1", "vim"),
    (".manpath", "DEFINE troff touch {home}/ran-it", "man -t ls", "man"),
]


@pytest.mark.parametrize(("name", "text", "line", "program"), CONFIGS)
def test_a_config_file_in_the_home_asks(
    name: str, text: str, line: str, program: str, tmp_path: Path
) -> None:
    socket = str(tmp_path / "tmux.sock")  # a server of its own, its socket in the test's folder
    line = line.format(socket=socket)
    tools = [*BROAD, f"Bash({line.split(' >')[0]}:*)"]  # the program's rule, and more
    assert answer(tmp_path, line, tools, home=tmp_path)[0] == []  # no file: nothing asked
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text.format(home=tmp_path) + "\n")
    here = shutil.which(program) is not None and (program != "man" or _man_here())
    try:
        if here:
            assert runs(line, tmp_path)
    finally:
        if program == "tmux":
            subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
    why = f"{program} runs the commands of its config file {tmp_path / name}"
    assert answer(tmp_path, line, tools, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]
    # The agent's own rule that is exactly the command (its output sent away) exempts it.
    exact = f"Bash({line.split(' >')[0]})"
    assert answer(tmp_path, line, [*BROAD, exact], home=tmp_path)[0] == []


def test_options_that_read_no_config_ask_for_nothing(tmp_path: Path) -> None:
    for name in (".gdbinit", ".tmux.conf", ".vimrc", ".manpath"):
        (tmp_path / name).write_text("\n")
    for line in ("gdb -nx -batch", "tmux ls", "tmux kill-server", "man -w ls"):
        assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [], line
    # Ex mode reads no vimrc; it asks for the commands it reads from its input only.
    for line, name in (("vim -e x", "vim"), ("ex x", "ex")):
        why = f"{name} reads from its input (Ex mode)"
        assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
            f"matches {RULE}: runs the editor commands {why}: cannot be read"
        ], line


def test_a_home_set_on_the_line_is_read_there(tmp_path: Path) -> None:
    """`HOME=DIR gdb`: gdb reads DIR's .gdbinit (measured); a HOME the shell builds is
    known only at run time."""
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / ".gdbinit").write_text("shell touch ran-it\n")
    line = "HOME=h gdb -batch"
    if shutil.which("gdb"):
        assert runs(line, tmp_path)
    why = f"gdb runs the commands of its config file {tmp_path / 'h' / '.gdbinit'}"
    assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]
    (asked,) = answer(tmp_path, "d=h; HOME=$d gdb -batch", BROAD, home=tmp_path)[0]
    assert asked == (
        f"matches {RULE}: gdb reads its config in a HOME known only at run time (HOME=$d): "
        "cannot be read"
    )
    assert answer(tmp_path, "HOME=$d ls", BROAD, home=tmp_path)[0] == []


# vim's plugins (`~/.vim/plugin/…`) run whatever the mode: measured, with no terminal,
# each of these ran `~/.vim/plugin/p.vim`'s writefile() (they asked for nothing; `-e`,
# `-es` and `ex` read no vimrc, but load plugins).
PLUGIN_LINES = [
    ("vim x >/dev/null 2>&1", "vim"),
    ("vim -es x </dev/null >/dev/null 2>&1", "vim"),
    ("ex x </dev/null >/dev/null 2>&1", "ex"),
    ("vim -u NORC x >/dev/null 2>&1", "vim"),
]


@pytest.mark.parametrize(("line", "name"), PLUGIN_LINES)
def test_vim_plugins_in_the_home_ask(line: str, name: str, tmp_path: Path) -> None:
    plugin = tmp_path / ".vim" / "plugin" / "p.vim"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(f"call writefile([], '{tmp_path}/ran-it')\n")
    if shutil.which("vim"):
        assert runs(line, tmp_path)
    why = f"{name} runs the commands of the plugins of {tmp_path / '.vim'}"
    assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]
    for quiet in ("vim --noplugin x", "vim --clean x", "vim -u NONE x", "vim -u DEFAULTS x"):
        if shutil.which("vim"):
            assert not runs(quiet + " >/dev/null 2>&1", tmp_path), quiet
        assert answer(tmp_path, quiet, BROAD, home=tmp_path)[0] == [], quiet


# A config file the line itself makes (or fills) before the program runs, or one in a
# folder only the line names (measured: each ran the file's `shell` command; they asked
# for nothing). (the line, what the hook says, made first: (path, a file or a link))
MADE = [
    (
        "echo 'shell touch ran-it' >~/.gdbinit; gdb -batch",
        "gdb reads a config file the line may write (~/.gdbinit)",
        None,
    ),
    (
        "echo 'shell touch ran-it' >x; gdb -batch",
        "gdb runs the commands of its config file {home}/.gdbinit",
        (".gdbinit", "x"),  # a symbolic link to nothing: filled by the line
    ),
    (
        "XDG_CONFIG_HOME=x gdb -batch",
        "gdb runs the commands of its config file {home}/x/gdb/gdbinit",
        ("x/gdb/gdbinit", ""),
    ),
    (
        "cd s && HOME=h gdb -batch",
        "gdb reads its config in a HOME known only at run time (HOME=h)",
        ("s/h/.gdbinit", ""),
    ),
    (
        "env -C s HOME=h gdb -batch",
        "gdb reads its config in a HOME known only at run time (HOME=h)",
        ("s/h/.gdbinit", ""),
    ),
]


@pytest.mark.parametrize(("line", "why", "made"), MADE)
def test_a_config_the_line_makes_or_places_asks(
    line: str, why: str, made: tuple[str, str] | None, tmp_path: Path
) -> None:
    if made is not None:
        path = tmp_path / made[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if made[1]:
            path.symlink_to(made[1])
        else:
            path.write_text(f"shell touch {tmp_path}/ran-it\n")
    if shutil.which("gdb"):
        assert runs(line, tmp_path)
        (tmp_path / ".gdbinit").unlink(missing_ok=True)  # as it was before the line ran
        if made is not None and made[1]:
            (tmp_path / made[0]).symlink_to(made[1])
            (tmp_path / made[1]).unlink()
    assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
        f"matches {RULE}: {why.format(home=tmp_path)}: cannot be read"
    ]


def test_a_line_naming_no_config_file_asks_nothing(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    for line in ("vim plugin.vim", "vim src/x.vim", "cd s && gdb -batch", "tmux ls"):
        assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [], line


# Commands or files of them given by an option or a variable (measured here, each ran its
# command, unasked before: gdb 13's early init options; `screen -D -m` was read as
# attaching, its `-c FILE` unread; SCREENRC, SYSSCREENRC, VIMRUNTIME were no code).
# (the line, a file it reads and what that says ("": none), why it asks)
GIVEN = [
    ("gdb -batch -eiex 'shell touch ran-it'", "", "", "runs the gdb commands given to gdb -eiex"),
    ("gdb -batch -eix f", "f", "shell touch ran-it", "runs the gdb commands given to gdb -eix"),
    (
        "screen -D -m -c f",
        "f",
        "screen sh -c 'touch {home}/ran-it'",
        "gives screen -c, which runs commands",
    ),
    (
        "SCREENRC=f screen -D -m true",
        "f",
        "screen sh -c 'touch {home}/ran-it'",
        "gives SCREENRC code to load or run",
    ),
    (
        "SYSSCREENRC=f screen -D -m true",
        "f",
        "screen sh -c 'touch {home}/ran-it'",
        "gives SYSSCREENRC code to load or run",
    ),
    (
        "VIMRUNTIME=r vim x >/dev/null 2>&1",
        "r/plugin/p.vim",
        "call writefile([], '{home}/ran-it')",
        "gives VIMRUNTIME code to load or run",
    ),
]


@pytest.mark.parametrize(("line", "name", "text", "why"), GIVEN)
def test_commands_given_by_an_option_or_a_variable_ask(
    line: str, name: str, text: str, why: str, tmp_path: Path
) -> None:
    if name:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text.format(home=tmp_path) + "\n")
    program = next(w for w in line.split(" ") if "=" not in w)  # after `VAR=f`
    if shutil.which(program):
        assert runs(line, tmp_path)
    assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]


# A line that writes a config file without naming it, where the program reads it: into a
# HOME (or a folder holding one, or a dot-entry of it, or XDG_CONFIG_HOME), or from a
# folder the line moves to there, or an archive keeping absolute names (measured, the call
# in `work/`, its HOME the folder above: each ran `dots/.gdbinit`'s command, asked nothing
# before). (the line, the word the approver reads: `{home}` the HOME)
WRITTEN = [
    ("cp -r dots/. ~; gdb -batch", "~"),
    ("cp -r dots/. ..; gdb -batch", ".."),
    ("tar x -C ~ -f t.tar; gdb -batch", "~"),
    ("cd ~ && tar xf work/t.tar; gdb -batch", "{home}"),
    ("env -C ~ tar xf work/t.tar; gdb -batch", "{home}"),
    ("tar xPf abs.tar; gdb -batch", "tar xPf"),
    ("mv dots/* dots/.* ~ 2>/dev/null; gdb -batch", "dots/*"),
    ("git clone -q dotsrepo ~/.config/gdb; gdb -batch", "~/.config/gdb"),
    ("unzip -qo z.zip -d ~; gdb -batch", "~"),
    ("rsync -a dots/ ~/; gdb -batch", "~/"),
]


def _dots(home: Path) -> Path:
    """`home/work/dots/` holding a `.gdbinit` and `gdb/gdbinit`, in archives and a
    repository too; the call's folder `home/work`."""
    work = home / "work"
    (work / "dots" / "gdb").mkdir(parents=True)
    text = f"shell touch {home}/ran-it\n"
    (work / "dots" / ".gdbinit").write_text(text)
    (work / "dotsrepo").mkdir()
    (work / "dotsrepo" / "gdbinit").write_text(text)
    (work / "dots" / "gdb" / "gdbinit").write_text(text)
    subprocess.run(["tar", "cf", "../t.tar", ".gdbinit"], cwd=work / "dots", check=True)
    home_init = home / ".gdbinit"
    home_init.write_text(text)  # an archive naming it absolutely, then gone
    subprocess.run(["tar", "cPf", "abs.tar", str(home_init)], cwd=work, check=True)
    home_init.unlink()
    if shutil.which("zip"):
        subprocess.run(["zip", "-q", "../z.zip", ".gdbinit"], cwd=work / "dots", check=True)
    who = ["-c", "user.name=a", "-c", "user.email=a@b"]
    for args in (["init", "-q"], ["add", "."], [*who, "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=work / "dotsrepo", check=True)
    return work


@pytest.mark.parametrize(("line", "word"), WRITTEN)
def test_a_line_writing_where_a_program_reads_its_config_asks(
    line: str, word: str, tmp_path: Path
) -> None:
    work = _dots(tmp_path)
    program = line.split(" ", 1)[0] if not line.startswith(("cd", "env")) else "tar"
    if shutil.which("gdb") and shutil.which(program):
        assert runs(f"cd work && {line}", tmp_path)
    why = f"gdb reads its config where the line may write ({word.format(home=tmp_path)})"
    assert answer(work, line, BROAD, home=tmp_path)[0] == [f"matches {RULE}: {why}: cannot be read"]
    exact = f"Bash({line.rsplit('; ', 1)[-1]})"  # a rule that is exactly the command exempts it
    assert answer(work, line, [*BROAD, exact], home=tmp_path)[0] == []


def test_writing_elsewhere_before_a_program_reading_its_config_asks_nothing(
    tmp_path: Path,
) -> None:
    """Writes outside the HOME's dot-entries and XDG_CONFIG_HOME, reading commands, and
    extractions into the call's folder (not the HOME) leave the config as it was."""
    work = _dots(tmp_path)
    for line in (
        "tar xf t.tar; gdb -batch",
        "cp a b && vim b",
        "cp x ~/project/y; vim x",
        "cd ~/project && cp a b && vim b",
        "cat a > out.txt; vim out.txt",
        "ls ~; echo hi >/dev/null; gdb -batch",
        "sed -i s/a/b/ f && vim f",
        "cpio -id --no-absolute-filenames < a.cpio; gdb -batch",
        "git commit -qam x 2>/dev/null; tmux new -d",
    ):
        assert answer(work, line, BROAD, home=tmp_path)[0] == [], line
    if shutil.which("gdb"):
        assert not runs("cd work && tar xf t.tar; gdb -batch", tmp_path)


# Wrappers and runners that give their command another HOME, whose config files it reads
# (measured with strace, HOME the test's folder: `su -c 'gdb -batch'`, `runuser -u root --
# gdb -batch` looked for root's `~/.config/gdb/gdbinit`, `env -i tmux new -d` for root's
# `~/.tmux.conf` (tmux falls back to the passwd entry), `su -m -c` for the caller's; the
# hook read the caller's only). (the line, the HOME the line's reading gives its command)
HOMES = [
    ("sudo gdb -batch", "~root"),
    ("sudo -u bob gdb -batch", "~bob"),
    ("sudo -iu bob gdb -batch", "~bob"),
    ("sudo --user=bob gdb -batch", "~bob"),
    ("doas -u bob gdb -batch", "~bob"),
    ("su -c 'gdb -batch'", "~root"),
    ("su - bob -c 'gdb -batch'", "~bob"),
    ("runuser -u bob -- gdb -batch", "~bob"),
    ("env -i PATH=/usr/bin tmux new -d", ""),
    ("env -u HOME tmux new -d", ""),
    ("unset HOME; tmux new -d", ""),
]


@pytest.mark.parametrize(("line", "home"), HOMES)
def test_a_wrapper_giving_another_home_is_read_there(line: str, home: str) -> None:
    assert ("HOME", home) in bash_commands.read(line).settings


def test_su_and_runuser_give_the_target_users_home(tmp_path: Path) -> None:
    """Measured for real where it can be (root, util-linux): su and runuser set HOME to the
    target's passwd entry, `su -m` keeps the caller's; the hook reads those homes."""
    root_home = pwd.getpwuid(0).pw_dir
    for line, expected in (
        ("su -c 'echo $HOME >home-was'", root_home),
        ("runuser -u root -- sh -c 'echo $HOME >home-was'", root_home),
        ("su -m -c 'echo $HOME >home-was'", str(tmp_path)),
    ):
        if os.getuid() == 0 and shutil.which(line.split(" ", 1)[0]):
            env = {**os.environ, "HOME": str(tmp_path)}
            subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, check=True)
            assert (tmp_path / "home-was").read_text().strip() == expected, line
    assert ("HOME", "~root") not in bash_commands.read("su -m -c 'gdb -batch'").settings
    # a target user with no passwd entry: its HOME is known only at run time
    line = "sudo -u nosuchuser-appr9 gdb -batch"
    why = "gdb reads its config in a HOME known only at run time (HOME=~nosuchuser-appr9)"
    assert answer(tmp_path, line, BROAD, home=tmp_path)[0] == [
        f"matches {RULE}: {why}: cannot be read"
    ]


@pytest.mark.skipif(shutil.which("wget") is None, reason="wget is not installed")
def test_wget_askpass_from_its_config_or_options_asks(tmp_path: Path) -> None:
    """wget runs a wgetrc's `use_askpass` command before it connects: from ~/.wgetrc, from
    a WGETRC=, `--config=` file and from `-e use_askpass=…` (measured: each ran a.sh,
    unasked under Bash(wget:*); the URL refuses the connection)."""
    work, home = tmp_path / "work", tmp_path / "h"  # apart: a folder holding a HOME asks
    work.mkdir()
    home.mkdir()
    (work / "a.sh").write_text(f"#!/bin/sh\ntouch {work}/ran-it\necho x\n")
    (work / "a.sh").chmod(0o755)
    (work / "w").write_text(f"use_askpass = {work}/a.sh\n")
    url = "-q -O /dev/null -t 1 http://127.0.0.1:9/"
    tools = ["Bash", "Bash(wget:*)"]

    def asked(folder: Path, line: str, home: Path) -> list[str]:
        return answer(folder, line, tools, home=home)[0]

    for line, why in (
        (f"WGETRC=./w wget {url}", "gives WGETRC code to load or run"),
        (
            f"wget --config=w {url}",
            "runs the askpass command the wgetrc w may give (wget --config)",
        ),
        (f"wget -e use_askpass=./a.sh {url}", "runs the file ./a.sh"),
        (f"wget -qe useAskpass=./a.sh {url}", "runs the file ./a.sh"),
    ):
        assert runs(line, work), line
        assert asked(work, line, home) == [f"matches {RULE}: {why}: cannot be read"], line
    for line in (f"wget {url}", f"wget -e robots=off -r {url}"):  # no ~/.wgetrc
        assert asked(work, line, home) == [], line
    line = f"wget {url}"
    (work / ".wgetrc").write_text((work / "w").read_text())
    assert runs(line, work)  # its HOME is the folder there
    (work / "p").mkdir()
    why = f"wget runs the commands of its config file {work / '.wgetrc'}"
    assert asked(work / "p", line, work) == [f"matches {RULE}: {why}: cannot be read"]
    assert asked(work / "p", f"wget --no-config {url}", work) == []
