"""Config files a program reads when it starts, from its HOME, that run commands.

A line such as ``gdb -batch ./a.out core`` shows no code, but gdb first runs the commands
of ``~/.gdbinit``, a file an earlier call may have written (the agent's HOME is its own to
write). So, as git's config is (:mod:`orchestrator.git_state`), the files each program
would load are looked up where the call runs, with the agent's environment, and one that
exists is an unread hand-off: the approver is asked, unless the agent's own rule is
exactly the command (a rule naming the program allows running it, not what its config
says).

Measured without a terminal, as the CLI's Bash runs commands: ``gdb -batch`` ran the
``shell`` command of ``~/.gdbinit`` (``./.gdbinit`` was not loaded: gdb's auto-load
safe-path), ``tmux new -d`` the ``run-shell`` of ``~/.tmux.conf``, ``screen -dm`` the
``screen CMD`` of ``~/.screenrc``, ``vim x`` and ``vim +q x`` the ``writefile()`` of
``~/.vimrc`` (``vim -e``, ``vim -es``, ``ex`` read none), ``man -t`` the ``DEFINE troff``
of ``~/.manpath``.
Not installed here, so from their manuals: emacs (``~/.emacs``, ``~/.emacs.d/init.el``…;
``-q``, ``-Q``, ``--batch`` read none) and nvim (``~/.config/nvim/init.vim``/``init.lua``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from orchestrator import command_runners, option_commands

# Where each program looks, `~` its HOME and `$XDG/` its XDG_CONFIG_HOME (or ~/.config/).
_FILES: Final[dict[str, tuple[str, ...]]] = {
    "gdb": ("~/.gdbinit", "$XDG/gdb/gdbinit"),
    "tmux": ("~/.tmux.conf", "$XDG/tmux/tmux.conf", "~/.config/tmux/tmux.conf"),
    "screen": ("~/.screenrc",),
    "vim": ("~/.vimrc", "~/.vim/vimrc", "~/.exrc", "$XDG/vim/vimrc"),
    "nvim": ("$XDG/nvim/init.vim", "$XDG/nvim/init.lua"),
    "emacs": (
        *("~/.emacs", "~/.emacs.el", "~/.emacs.d/init.el", "~/.emacs.d/early-init.el"),
        *("$XDG/emacs/init.el", "$XDG/emacs/early-init.el"),
    ),
    "man": ("~/.manpath",),
}
# Options with which it reads none of them (or names its own file: asked about apart).
_NONE: Final[dict[str, frozenset[str]]] = {
    "gdb": frozenset({"-nx", "--nx", "-n", "-nh", "--nh"}),
    "tmux": frozenset({"-f", "-V"}),
    "screen": frozenset({"-c", "-ls", "-list", "-v", "-r", "-x", "-wipe"}),
    # Ex mode with no terminal is silent (measured: `vim -e x`, `ex x` read no vimrc).
    "vim": frozenset({"-e", "-E", "-es", "-Es", "--clean", "-u", "--version", "--help", "-h"}),
    "nvim": frozenset({"-e", "-E", "-es", "-Es", "--clean", "-u", "--version", "--help"}),
    "emacs": frozenset({"-q", "--no-init-file", "-Q", "--quick", "--batch", "-batch"})
    | frozenset({"--script", "-script", "--version", "--help"}),
    "man": frozenset({"-C", "--config-file", "-w", "--where", "--path", "-k", "-f"})
    | frozenset({"--version", "--help", "-h", "-V"}),
}
CODE: Final = "its config file"  # Unread.code: no rule's word (it holds a space)


def _program(name: str) -> str:
    if option_commands.is_vim(name) and name != "ex":
        return "nvim" if name == "nvim" else "vim"
    return name


def reads(command: str) -> bool:
    """Whether ``command`` (normalised: ``gdb -batch x``) reads a config file of its HOME."""
    words = command.split(" ")
    program = _program(words[0])
    if program not in _FILES:
        return False
    args = words[1:]
    options = {a.partition("=")[0] for a in args if a.startswith("-")}
    return not (
        options & _NONE[program] or (program == "tmux" and command_runners.tmux_quiet(args))
    )


def loaded(command: str, home: str, env: Mapping[str, str]) -> list[str]:
    """Why ``command`` runs what a config file says, for each of its files that exists
    (``home``: the HOME it runs with)."""
    if not reads(command):
        return []
    name = command.split(" ", 1)[0]
    program = _program(name)
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    found = []
    for pattern in _FILES[program]:
        path = pattern.replace("$XDG", xdg, 1) if pattern.startswith("$XDG") else pattern
        path = home + path[1:] if path.startswith("~") else path
        if os.path.isfile(path):
            found.append(f"{name} runs the commands of its config file {path}")
    return found
