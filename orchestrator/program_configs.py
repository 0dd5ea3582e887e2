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
of ``~/.manpath``, ``wget URL`` the ``use_askpass`` command of ``~/.wgetrc``.
Not installed here, so from their manuals: emacs (``~/.emacs``, ``~/.emacs.d/init.el``…;
``-q``, ``-Q``, ``--batch`` read none) and nvim (``~/.config/nvim/init.vim``/``init.lua``).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping
from typing import Final

from orchestrator import command_runners, git_places, option_commands, shell_words

# Where each program looks, `~` its HOME and `$XDG/` its XDG_CONFIG_HOME (or ~/.config/).
_FILES: Final[dict[str, tuple[str, ...]]] = {
    # gdb 11+ reads an early init file too (measured, gdb 13: `~/.gdbearlyinit` ran).
    "gdb": ("~/.gdbinit", "$XDG/gdb/gdbinit", "~/.gdbearlyinit", "$XDG/gdb/gdbearlyinit"),
    "tmux": ("~/.tmux.conf", "$XDG/tmux/tmux.conf", "~/.config/tmux/tmux.conf"),
    "screen": ("~/.screenrc",),
    "vim": ("~/.vimrc", "~/.vim/vimrc", "~/.exrc", "$XDG/vim/vimrc"),
    "nvim": ("$XDG/nvim/init.vim", "$XDG/nvim/init.lua"),
    "emacs": (
        *("~/.emacs", "~/.emacs.el", "~/.emacs.d/init.el", "~/.emacs.d/early-init.el"),
        *("$XDG/emacs/init.el", "$XDG/emacs/early-init.el"),
    ),
    "man": ("~/.manpath",),
    # its `use_askpass` command runs before it connects (measured: ~/.wgetrc's ran)
    "wget": ("~/.wgetrc",),
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
    "wget": frozenset({"--no-config", "--config", "--version", "-V", "--help", "-h"}),
}
# Folders of files a program runs whatever its options but these (vim's plugins: measured,
# `~/.vim/plugin/p.vim`, `ftdetect/`, `ftplugin/`, `after/plugin/`, `pack/*/start/` ran
# with `vim x`, `vim -es`, `ex`, `vim -u NORC`; not with `--noplugin`, `--clean`, `-u NONE`
# or `-u DEFAULTS`): any file there may run, so the folder being there asks.
_FOLDERS: Final[dict[str, tuple[str, ...]]] = {
    "vim": ("~/.vim", "$XDG/vim"),
    "nvim": ("$XDG/nvim", "~/.local/share/nvim/site"),
}
_NO_PLUGINS: Final = frozenset({"--noplugin", "--clean", "--version", "--help", "-h"})
# What a word naming a program's config file holds (a line writing one before running it:
# `echo … >~/.gdbinit; gdb -batch`).
_NAMES: Final[dict[str, re.Pattern[str]]] = {
    "gdb": re.compile(r"gdb(early)?init"),
    "tmux": re.compile(r"tmux\.conf"),
    "screen": re.compile(r"screenrc"),
    "vim": re.compile(r"vimrc|exrc|(^|/)\.vim(/|$)|(^|/)vim/"),  # ~/.vim/plugin/p.vim
    "nvim": re.compile(r"(^|/)nvim/"),
    "emacs": re.compile(r"(^|/)\.emacs|(^|/)emacs/|init\.el"),
    "man": re.compile(r"manpath"),
    "wget": re.compile(r"wgetrc"),
}
# The startup files of the interactive shell a program opens with no command given
# (`tmux new -d`'s window: a login bash, measured to run `~/.bash_profile`; `screen -D -m`'s
# ran `~/.bashrc`): a file an earlier call may have written, asking as `~/.tmux.conf` does.
_SHELL_FILES: Final = ("~/.bashrc", "~/.bash_profile", "~/.bash_login", "~/.profile")
_SHELL_NAMES: Final = re.compile(r"bashrc|bash_profile|bash_login|(^|/)\.profile$")
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


def _shell(command: str) -> bool:
    """Whether ``command`` (normalised) opens an interactive shell (``tmux new -d``)."""
    words = command.split(" ")
    if words[0] == "tmux":
        return reads(command) and command_runners.tmux_shell(words[1:])
    return words[0] == "screen" and reads(command) and command_runners.screen_shell(words[1:])


def _runtime(name: str) -> str:
    """Whose plugins ``name`` loads (``ex`` and ``rvim`` vim's, as ``vim.basic``)."""
    return "nvim" if name == "nvim" else "vim" if option_commands.is_vim(name) else name


def _plugins(command: str) -> bool:
    """Whether ``command`` (normalised) is vim's or nvim's loading its plugins."""
    words = command.split(" ")
    if _runtime(words[0]) not in _FOLDERS:
        return False
    bare = {"-u NONE", "-u DEFAULTS"} & {" ".join(p) for p in itertools.pairwise(words)}
    return not (bare or _NO_PLUGINS & {w.partition("=")[0] for w in words[1:]})


def may_read(name: str) -> bool:
    """Whether the program ``name`` is one that reads a config file or plugins of its HOME
    with some options (``gdb``, ``vim``, ``ex``…): :func:`reads_any` of no other is true."""
    return _program(name) in _FILES or _runtime(name) in _FOLDERS


def reads_any(command: str) -> bool:
    """Whether ``command`` reads a config file or a plugin of its HOME."""
    return reads(command) or _plugins(command)


def named(command: str, words: list[str]) -> str:
    """A word of the line naming a config file ``command`` reads ("" if none): the line may
    write it before the command runs."""
    if not reads_any(command):
        return ""
    name = command.split(" ", 1)[0]
    marks = [_NAMES[p] for p in dict.fromkeys([_program(name), _runtime(name)]) if p in _NAMES]
    marks += [_SHELL_NAMES] if _shell(command) else []
    return next((w for w in words if any(m.search(w) for m in marks)), "")


def loaded(command: str, home: str, env: Mapping[str, str]) -> list[str]:
    """Why ``command`` runs what a config file says, for each of its files that exists
    (``home``: the HOME it runs with). Anything there counts, a FIFO or a symbolic link
    to nothing too (the program may read it, or the line make it): not read, so a huge
    file or a FIFO costs nothing."""
    name = command.split(" ", 1)[0]
    program = _program(name)
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = _FILES[program] if reads(command) else ()
    shell = _SHELL_FILES if _shell(command) else ()
    patterns = [*files, *shell, *(_FOLDERS[_runtime(name)] if _plugins(command) else ())]
    found = []
    for pattern in patterns:
        path = pattern.replace("$XDG", xdg, 1) if pattern.startswith("$XDG") else pattern
        path = home + path[1:] if path.startswith("~") else path
        if os.path.lexists(path):
            kind = "its config file" if pattern in files else "the plugins of"
            kind = "the startup file of its shell" if pattern in shell else kind
            found.append(f"{name} runs the commands of {kind} {path}")
    return found


# Programs that write no file (but through a redirection, read apart): a line running one
# of them before a program reading its config leaves that config as it was.
_READERS: Final = frozenset(
    {"ls", "cat", "head", "tail", "grep", "egrep", "fgrep", "rg", "echo", "printf", "pwd"}
    | {"true", "false", "test", "[", "[[", "cd", "pushd", "popd", "wc", "diff", "cmp"}
    | {"stat", "file", "which", "type", "date", "sleep", "realpath", "readlink", "basename"}
    | {"dirname", "id", "whoami", "uname", "du", "df", "less", "more", "jq", "tree", "exit"}
    # the shell's own words read as commands (`for i in $(seq 9)`, `case $x in a)`)
    | {"for", "select", "case", "esac", "in", "break", "continue", "return", "shift", "wait"}
    | {":", "seq", "while", "until", "do", "done", "export", "declare", "typeset", "local"}
    | {"readonly", "set", "unset", "alias", "shopt", "umask", "ulimit", "hash"}
    # runners, read as the command they run (`su -c 'cp …'` is read as `cp …` too)
    | {"su", "runuser", "watch", "flock", "setsid", "trap", "parallel", "entr", "sg"}
)
READERS: Final = _READERS  # (approve_rules: these run no command of their words unread)
_REDIRECTS: Final = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})


def _reaches(path: str, homes: list[str], xdgs: list[str]) -> bool:
    """Whether writing at ``path`` (absolute) may place a config file a program reads: it
    is a HOME, an XDG_CONFIG_HOME or a folder holding one, or a dot-entry of a HOME
    (``~/.gdbinit``, ``~/.config/…``, ``~/.vim/…``), or under an XDG_CONFIG_HOME."""
    if git_places.through_descriptor(path):  # `exec 3<~; cp x /dev/fd/3/.gdbinit`
        return True
    for top in [*homes, *xdgs]:
        if path == top or top.startswith(path.rstrip("/") + "/"):
            return True
        inside = os.path.relpath(path, top)
        outside = inside == ".." or inside.startswith("../")
        if not outside and (top in xdgs or inside.startswith(".")):
            return True
    return False


def _anywhere(program: str, args: list[str]) -> str:
    """An archive extraction that keeps absolute member names ("" if not): tar's ``-P``
    (measured: `tar xPf t.tar` wrote `/…/h/.gdbinit`; `tar xf` strips the `/`), and cpio's
    extraction, which keeps them unless `--no-absolute-filenames` (its manual; no cpio here)."""
    if program in ("tar", "gtar", "bsdtar"):
        first = args[0] if args else ""
        for arg in args:
            cluster = arg[1:] if arg.startswith("-") and not arg.startswith("--") else ""
            if arg == "--absolute-names" or "P" in cluster or (arg is first and "P" in arg):
                return f"{program} {arg}"
    extracts = any(a == "--extract" or (a[:2] != "--" and a[:1] == "-" and "i" in a) for a in args)
    if program == "cpio" and extracts and "--no-absolute-filenames" not in args:
        return f"{program} -i"
    return ""


def written_home(  # noqa: PLR0917 (the line's reading, then the places it may reach)
    found: list[str],
    words: list[str],
    folders: list[str],
    where: Callable[[str], str],
    homes: list[str],
    xdgs: list[str],
    unknown: str,
) -> str:
    """A word of the line by which another command may write where a program reads its
    config ("" if none): ``cp -r dots/. ~``, ``tar x -C ~ -f t.tar``, ``rsync -a d/ ~/``,
    a redirection there, or any writing command run in such a folder (``cd ~ && tar xf
    t.tar``; ``folders``: the call's and those the line moves to). A word or a folder the
    shell builds may be one. ``where``: a word made absolute (``~`` a HOME)."""
    homes = [os.path.normpath(h) for h in homes if h]
    xdgs = [os.path.normpath(x) for x in xdgs if x] or [os.path.join(h, ".config") for h in homes]

    def reaches(word: str, bases: list[str]) -> bool:
        if unknown in word:
            return True
        if word.startswith("~") or os.path.isabs(word):
            return _reaches(where(word), homes, xdgs)
        return any(_reaches(os.path.normpath(os.path.join(b, word)), homes, xdgs) for b in bases)

    bases = [where(f) for f in folders if unknown not in f]
    moved_to_unknown = any(unknown in f for f in folders)
    at_home = moved_to_unknown or any(_reaches(b, homes, xdgs) for b in bases)
    for command in found:
        program, *args = command.split(" ")
        if program in _READERS or _runtime(program) in _FILES:  # `tmux ls` writes nothing
            continue
        if at_home:  # it may write where it runs (`tar xf t.tar`, `unzip z.zip`)
            folder = next(f for f in folders if unknown in f or _reaches(where(f), homes, xdgs))
            return folder if unknown in folder else where(folder)
        if anywhere := _anywhere(program, args):
            return anywhere
        for arg in args:
            # `-C ~`, `--directory=~`, `of=~/x` (dd)
            for value in dict.fromkeys([arg.partition("=")[2], "" if arg[:1] == "-" else arg]):
                if value and reaches(value, bases):
                    return value
    for word, target in itertools.pairwise(words):
        if (word in _REDIRECTS or word.endswith(">")) and reaches(target, bases):
            return target
    return ""


# (patch writes the files its patch names: measured, `patch -p1 < e.patch; git st` wrote
# .git/config and ran the alias it holds, unasked)
_EXTRACTORS: Final = frozenset({"unzip", "cpio", "7z", "7za", "bsdtar", "rsync", "patch"})
_GIT_NAMED = re.compile(
    r"(^|[/\s'\"(=])\.git([/\s'\")]|$)|--(absolute-)?git-(dir|common-dir|path)\b"
)
_HOME_VARIABLE = re.compile(shell_words.UNKNOWN + r"\$(HOME|\{HOME\})(?=/)")
_TARS: Final = frozenset({"tar", "gtar", "bsdtar"})


def _recursive(program: str, args: list[str]) -> bool:
    """Whether the command may write a whole tree (a `.git/config` in it): a recursive
    copy, an archive's extraction, rsync."""
    if program in _EXTRACTORS:
        return True
    if program in _TARS:
        first = args[0] if args else ""
        return "x" in first.lstrip("-") or any(a in ("-x", "--extract", "--get") for a in args)
    short = [a for a in args if a[:1] == "-" and a[1:2] != "-"]
    recursive = any(a in ("--recursive", "--archive") for a in args)
    return program == "cp" and (recursive or any(c in "rRa" for a in short for c in a[1:]))


def written_git(  # noqa: PLR0917 (the line's reading, then the places it may reach)
    found: list[str],
    words: list[str],
    where: Callable[[str], str],
    homes: list[str],
    git_dirs: Callable[[], list[str]],
    moves: list[str],
    *,
    xdg: bool = False,
    hooks: list[str] | None = None,
) -> str:
    """A word of the line by which another command may write git's config or hooks before
    the line's git command runs ("" if none): a path through a ``.git`` folder (``cp x
    .git/config``), the HOME's dot-entries (``cp x ~/.gitconfig``), a tree written over a
    repository's (``cp -r tpl/. .``, ``tar xf t.tar`` in it; ``git_dirs``: its ``.git``
    folders, asked of git only then). git's state is read before
    the line runs. Words the shell builds are not guessed here: ``sed -i … "$f"; git add``
    is everyday. ``moves``: the folders the line moves to (``cd .git``, ``env -C ~``), as
    written: a writing command run in one inside a ``.git`` or at a HOME's dot-entries
    writes there (measured: `cd .git && cp ../evil config && cd .. && git st` and `cd ~ &&
    cp r/evil .gitconfig; cd r; git st` ran the alias evil holds, unasked). ``xdg``:
    ``homes`` are XDG_CONFIG_HOMEs (git reads ``git/config`` there: measured, `cp evil
    $XDG_CONFIG_HOME/git/config; git st` ran the alias, unasked, that folder outside the
    HOME). ``hooks``: git's hooks folders (a ``core.hooksPath`` outside ``.git``: measured,
    `cp hk .githooks/pre-commit && git commit` ran hk, unasked)."""
    hooks = [os.path.normpath(h) for h in hooks or []]
    homes = [os.path.normpath(h) for h in homes if h]
    xdgs = homes if xdg else [os.path.join(h, ".config") for h in homes]
    homes = [] if xdg else homes

    def reaches(word: str) -> bool:
        path = where(word)
        hooked = any(path == h or path.startswith(h + "/") for h in hooks)
        through = git_places.through_descriptor(path)  # `exec 3<.git; cp x /dev/fd/3/config`
        return hooked or through or ".git" in path.split("/") or _reaches(path, homes, xdgs)

    def holds_a_home(path: str) -> bool:  # a HOME or a folder above it (`cd ..`)
        return any(h == path or h.startswith(path.rstrip("/") + "/") for h in homes)

    # Inside a `.git` (as written too: `cd r; cd .git` is read as two moves from the call's
    # folder) or a HOME's dot-entry: any write there may be git's. At a HOME (or above it),
    # a word through a dot-entry (`cd ~ && cp x .gitconfig`) or a tree written there.
    into = next(
        (
            m
            for m in moves
            if ".git" in m.split("/")
            or (reaches(m) and not holds_a_home(os.path.normpath(where(m))))
        ),
        None,
    )
    above = [p for m in moves if holds_a_home(p := os.path.normpath(where(m)))]

    def reached(word: str) -> bool:  # from the call's folder, or one the line moves to
        relative = not word.startswith(("/", "~"))
        return reaches(word) or (relative and any(reaches(os.path.join(a, word)) for a in above))

    runs_at = [os.path.normpath(where(m)) for m in moves]

    def made_there(path: str, *, below: bool = False) -> bool:  # a folder the line moves to
        top = path.rstrip("/") + "/"  # (or one above it, where git may find its `.git`)
        return any(f.startswith(top) or (f == path and not below) for f in runs_at)

    def over_a_repository(word: str) -> bool:
        path = where(word).rstrip("/") + "/"
        return any(g.startswith(path) or g + "/" == path for g in git_dirs())

    # a word of the line naming git's folder, which a word the shell builds may then be
    # (measured: `d=.git; cp evil $d/config; git st` ran the alias, unasked)
    names_git = any(_GIT_NAMED.search(w) for w in words)
    for command in found:
        program, *args = command.split(" ")
        if program in _READERS or _runtime(program) in _FILES or program == "git":
            continue
        if into is not None:  # it may write where it runs (`cp ../evil config`)
            return f"{program} in {where(into)}"
        values = [v for a in args for v in (a.partition("=")[2], "" if a[:1] == "-" else a) if v]
        literal = [v for v in values if shell_words.UNKNOWN not in v]
        if found_word := next((v for v in literal if reached(v)), ""):
            return found_word
        if found_word := next((v for v in values if _built_git_path(v, reaches)), ""):
            return found_word.replace(shell_words.UNKNOWN, "")
        # (the words of a `$(…)` are split at its blanks here: `$(printf .git)/config`)
        joined = " ".join(args)
        built = joined.find(shell_words.UNKNOWN)
        if built >= 0 and _GIT_NAMED.search(joined, built):
            return joined[built:].replace(shell_words.UNKNOWN, "")
        if built >= 0 and names_git:  # `d=.git; cp evil $d/config`, `f=.git/config; sed -i`
            return "a word the shell builds, the line naming git's folder"
        if _recursive(program, args) and above:  # `cd ~ && tar xf t.tar`
            return f"{program} in {above[0]}"
        given = {"-C", "--directory", "-d"} & {a.partition("=")[0] for a in args}
        if (_recursive(program, args) or program in ("mv", "ln")) and moves:
            # a tree written where the line then runs git: its own `.git` (measured: `cp
            # -r ../e q && cd q && git st`, `mv`, `ln -s`, `git -C q st`, `tar xf e.tar &&
            # cd e && git st` ran the alias of e's config, unasked: q was no repository)
            if found_word := next((v for v in literal if made_there(where(v))), ""):
                return found_word
            call = where(".")
            if program not in ("cp", "mv", "ln") and not given and made_there(call, below=True):
                return f"{program} in {call}"
        if _recursive(program, args):
            if found_word := next((v for v in literal if over_a_repository(v)), ""):
                return found_word
            if program != "cp" and not given and over_a_repository("."):
                return f"{program} in {where('.')}"
    for i, (word, target) in enumerate(itertools.pairwise(words)):
        redirect = word in _REDIRECTS or word.endswith(">")
        if redirect and shell_words.UNKNOWN not in target and reached(target):
            return target
        if redirect and _built_git_path(target, reaches):
            return target.replace(shell_words.UNKNOWN, "")
        if redirect and shell_words.UNKNOWN in target:  # `> "$(git rev-parse --git-dir)/x"`,
            after = " ".join(words[i + 2 : i + 8])  # its words split at its blanks here
            if _GIT_NAMED.search(after):
                return "a word the shell builds, naming git's folder"
        if redirect and into is not None and not target.startswith(("/", "~", "&")):
            return f"{target} in {where(into)}"  # `cd .git && cat x > config`
    return ""


def _built_git_path(word: str, reaches: Callable[[str], bool]) -> bool:
    """Whether a word the shell builds writes into a ``.git`` folder or a HOME's dot-entry
    all the same (measured: `cp evil $PWD/.git/config; git st` and `cp evil
    "$(pwd)/.git/config"` ran the alias, unasked): a ``.git`` or git's folder named in it
    (``$(printf .git)/config``, ``$(git rev-parse --git-dir)/config``), or ``$HOME/``
    before a literal rest (``sed -i "$f"`` is not guessed)."""
    if shell_words.UNKNOWN not in word:
        return False
    if _GIT_NAMED.search(word):  # `$PWD/.git/config`, `$(git rev-parse --git-dir)/hooks`
        return True
    home = _HOME_VARIABLE.match(word)
    rest = word[home.end() :] if home else ""
    return home is not None and shell_words.UNKNOWN not in rest and reaches("~" + rest)
