"""What git's configuration and hooks, left by an earlier call, make a git command run.

A line is read as written (:mod:`orchestrator.bash_commands`), but git reads more than the
line: an earlier call may have written ``alias.st = push`` or ``core.fsmonitor = ./x.sh``
into ``.git/config`` (or an included file, or the user's global config), or installed a
hook, and then ``git st`` pushes, ``git status`` runs ``./x.sh``. Measured on git 2.39,
with no terminal (as the CLI's Bash runs): an alias of the written subcommand runs
(``!cmd`` as a shell line, else as git's subcommand; one named like a built-in is ignored
by git), ``help.autocorrect`` runs a mistyped subcommand's nearest match (an alias too),
``core.fsmonitor`` runs on ``git status``/``git diff``, ``diff.external`` on ``git diff``,
``core.editor`` on ``git commit``, ``core.sshCommand`` on any ssh remote, an included file
(``include.path``, ``includeIf``) counts as the config itself, and hooks run on more than
commit: ``git status`` ran ``post-index-change``, ``git branch x`` ``reference-transaction``
(``git log``, ``git diff``, ``git show`` ran none). The pager is not run without a terminal.

So, for each git command on a line, the hook reads the effective configuration where the
command runs (``git config --list``, under a timeout, with the agent's environment) and
reads it as if it were written on the line: the alias of the subcommand is expanded, a
key that names a program is read as ``git -c key=value`` would be
(:func:`orchestrator.handoffs.of`), an autocorrected subcommand is unknown, and installed
hooks are an unread hand-off for any subcommand but those measured to run none.

Where the command runs is what the line says: the call's folder, the folders of ``cd``,
``pushd``, ``git -C``, ``--git-dir``, ``env -C`` (:func:`folders`), with the ``GIT_DIR``,
``GIT_CONFIG_GLOBAL``… the line sets (:func:`variants`). A folder or a setting the shell
builds when it runs (``cd "$d"``, ``GIT_DIR=$x``) cannot be read beforehand: the command
is an unread hand-off (:func:`run_time`), the approver told why. Not
``-c`` overrides that neutralise them: an alias or an include cannot be turned off that
way, and a project's own hooks (``pre-commit``) would silently stop running.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from orchestrator import command_wrappers, git_places, gitcmd, handoffs, option_commands

TIMEOUT_S: Final = 5.0
MAX_FOLDERS: Final = git_places.MAX_FOLDERS
# Subcommands that ran no hook with every hook installed (measured, git 2.39), and that
# only read: the rest may write the index or a ref, or commit, and run a hook.
READ_ONLY: Final = frozenset(
    {"log", "show", "diff", "blame", "grep", "ls-files", "ls-tree", "rev-parse", "rev-list"}
    | {"cat-file", "describe", "shortlog", "help", "version", "--version", "--help"}
    | {"show-ref", "for-each-ref", "merge-base", "name-rev", "var", "check-ignore"}
    | {"count-objects", "diff-tree", "ls-remote", "whatchanged"}
)
# Subcommands that write only the index: the hooks they may run (measured: git status ran
# post-index-change). Any other subcommand may run any hook.
INDEX_ONLY: Final = frozenset({"status", "add"})
INDEX_HOOKS: Final = frozenset({"post-index-change"})
# Subcommands that use no remote's URL (an ext:: URL runs a command only where git
# connects to one: fetch, pull, push, clone, ls-remote, submodule…; in a partial clone any
# may fetch). With protocol.ext.allow set, every other subcommand asks.
OFFLINE: Final = (
    (READ_ONLY - {"ls-remote"})
    | INDEX_ONLY
    | {"commit", "branch", "checkout", "switch", "restore", "reset", "stash", "tag", "rm"}
    | {"mv", "merge", "rebase", "cherry-pick", "revert", "config", "notes", "worktree"}
    | {"clean", "apply", "am", "format-patch", "reflog", "fsck", "init", "bisect", "range-diff"}
)
# Subcommands that make a repository from the template folder (`submodule` clones).
TEMPLATED: Final = frozenset({"clone", "init", "submodule"})
_QUIET = frozenset({"", "0", "false", "off", "no", "show", "never"})  # help.autocorrect
# Read by git itself (includes are followed by `git config --list`), or handled apart.
_SKIPPED = ("alias.", "include.", "includeif.", "core.hookspath", "init.templatedir")


@dataclass(frozen=True)
class State:
    """What git's configuration in one folder makes its commands run."""

    aliases: dict[str, str] = field(default_factory=dict)
    programs: list[tuple[str, str]] = field(default_factory=list)  # keys that run a command
    autocorrect: bool = False
    known: frozenset[str] = frozenset()  # git's commands, read only when autocorrect is on
    hooks: tuple[str, ...] = ()  # installed hooks, by name
    hooks_dir: str = ""
    # hooks of the template folder (init.templateDir, GIT_TEMPLATE_DIR) a new repository
    # gets: `git clone` runs its post-checkout (measured), `git init`'s run later
    template_hooks: tuple[str, ...] = ()
    template_dir: str = ""
    # protocol.ext.allow/protocol.allow (but never): an ext:: URL git finds outside its
    # config (`.gitmodules`, `.git/remotes/NAME`: measured, `git fetch o` ran one) runs
    ext_allowed: str = ""
    partial: bool = False  # a partial clone: any command may fetch missing objects
    error: str | None = None  # the configuration could not be read: everything asks


class Lookup:
    """Reads each folder's state once per tool call (a line may name several git commands)."""

    def __init__(self, cwd: str | Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = str(cwd)
        self.env = dict(os.environ if env is None else env)
        self._seen: dict[tuple[str, tuple[tuple[str, str], ...]], State] = {}
        self._tops: dict[str, str | None] = {}

    def at(self, folder: str | None = None, settings: Mapping[str, str] | None = None) -> State:
        """The state git reads in ``folder`` (from the call's folder; ``~`` the agent's
        HOME), with ``settings`` (``GIT_DIR``…) added to the agent's environment."""
        place = self.where(folder or ".")
        key = (place, tuple(sorted((settings or {}).items())))
        if key not in self._seen:
            if len(self._seen) >= MAX_FOLDERS:  # two git processes each: a bound, and ask
                return State(error=f"git in more than {MAX_FOLDERS} folders on one line")
            self._seen[key] = _read(place, {**self.env, **(settings or {})})
        return self._seen[key]

    def hooks_dirs(self) -> list[str]:
        """The hooks folders of the states read so far (``core.hooksPath``'s, if set)."""
        return list(dict.fromkeys(s.hooks_dir for s in self._seen.values() if s.hooks_dir))

    def from_folder(self, folder: str) -> Lookup:
        """The same lookup for commands run in ``folder`` (a `!` alias's line): its reads
        shared, and so their bound (:data:`MAX_FOLDERS` a call)."""
        other = Lookup(folder, self.env)
        other._seen, other._tops = self._seen, self._tops
        return other

    def toplevel(self, folder: str) -> str | None:
        """The top of the repository ``folder`` is in (``git rev-parse --show-toplevel``,
        as the agent's shell would get it), or None (not in one: ``cd ""`` stays)."""
        place = self.where(folder)
        if place not in self._tops:
            try:
                found = _git(place, self.env, "rev-parse", "--show-toplevel")
                top = found.stdout.decode(errors="replace").strip()
                self._tops[place] = top if found.returncode == 0 and top else None
            except (OSError, subprocess.SubprocessError, ValueError):
                self._tops[place] = None
        return self._tops[place]

    def where(self, folder: str) -> str:
        """``folder`` made absolute: from the call's folder, ``~`` and ``~/…`` the HOME of
        the agent's commands (the supervisor's own is another), ``~user`` that user's."""
        if folder == "~" or folder.startswith("~/"):
            home = self.env.get("HOME") or os.path.expanduser("~")
            folder = home + folder[1:]
        elif folder.startswith("~") and "\0" not in folder:  # a NUL: no user (pwd raised)
            folder = os.path.expanduser(folder)
        return os.path.normpath(os.path.join(self.cwd, folder))


def _git(folder: str, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    # By its absolute path (gitcmd.find_git): ``folder`` is the agent's to write, and an
    # empty PATH entry would run a ``git`` planted there, as the supervisor.
    binary = gitcmd.find_git(env.get("PATH", os.defpath))
    if binary is None:
        raise FileNotFoundError("no git program on PATH (its absolute folders)")
    return subprocess.run(
        [binary, *args],
        cwd=folder,
        env={**env, "GIT_TERMINAL_PROMPT": "0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _read(folder: str, env: Mapping[str, str]) -> State:
    if not os.path.isdir(folder):
        return State()  # the command fails there (or the line makes the folder first)
    try:
        listed = _git(folder, env, "config", "-z", "--list")
        if listed.returncode != 0:
            why = listed.stderr.decode(errors="replace").strip().splitlines()[:1]
            return State(error=f"git config failed: {why[0] if why else listed.returncode}")
        aliases: dict[str, str] = {}
        programs: list[tuple[str, str]] = []
        autocorrect = False
        template = env.get("GIT_TEMPLATE_DIR") or ""
        allowed, partial = "", False
        for entry in listed.stdout.decode(errors="replace").split("\0"):
            key, _, value = entry.partition("\n")
            key = key.lower()
            if key.startswith("alias."):
                aliases[key[6:]] = value
            elif option_commands.git_ext_allowed(key, value):
                allowed = f"{key}={value}"
            elif key == "extensions.partialclone" or key.endswith(".promisor"):
                partial = True
            elif key == "init.templatedir" and "GIT_TEMPLATE_DIR" not in env:
                template = value  # the last one wins, as in git
            elif key == "help.autocorrect":
                autocorrect = value.strip().lower() not in _QUIET
            elif (
                key and not key.startswith(_SKIPPED) and option_commands.git_config_runs(key, value)
            ):
                programs.append((key, value))
        # GIT_ALLOW_PROTOCOL in the agent's environment (the roster's `env` reaches its
        # shell) lets git run ext:: URLs as protocol.ext.allow does, over the config
        protocols = env.get("GIT_ALLOW_PROTOCOL") or ""
        if handoffs.CODE_VARIABLES["GIT_ALLOW_PROTOCOL"].search(protocols):
            allowed = f"GIT_ALLOW_PROTOCOL={protocols} in the agent's environment"
        known: frozenset[str] = frozenset()
        if autocorrect:
            listed = _git(folder, env, "--list-cmds=main,others")
            known = frozenset(listed.stdout.decode(errors="replace").split())
        hooks_dir, hooks = _hooks(folder, env)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:  # ValueError: a NUL
        return State(error=f"git could not be run: {exc}")
    if template.startswith("~"):  # a path: git expands `~` and `~user`
        home = env.get("HOME") or os.path.expanduser("~")
        template = home + template[1:] if template[1:2] in ("", "/") else template
        template = os.path.expanduser(template)
    templates = os.path.join(folder, template, "hooks") if template else ""
    return State(
        aliases,
        programs,
        autocorrect,
        known,
        hooks,
        hooks_dir,
        _installed(templates),
        templates,
        allowed,
        partial,
    )


def _hooks(folder: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The hooks folder (core.hooksPath or .git/hooks) and the hooks installed in it."""
    found = _git(folder, env, "rev-parse", "--git-path", "hooks")
    if found.returncode != 0:  # not in a repository: no hooks
        return "", ()
    where = os.path.join(folder, found.stdout.decode(errors="replace").strip())
    return where, _installed(where)


def _installed(where: str) -> tuple[str, ...]:
    """The hooks installed in the folder ``where`` (executable, not ``.sample``)."""
    try:
        names = sorted(os.listdir(where)) if where else []
    except (OSError, ValueError):
        return ()
    return tuple(
        n
        for n in names
        if not n.endswith(".sample")
        and os.path.isfile(os.path.join(where, n))
        and os.access(os.path.join(where, n), os.X_OK)
    )


@dataclass(frozen=True)
class Effects:
    """What git's state adds to a line's reading: commands it runs (``why`` each) and
    hand-offs that cannot be read."""

    commands: list[tuple[str, str]] = field(default_factory=list)  # (command, why)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (shell line, why)
    # The folder each of ``lines`` runs in (its repository's top: a `!` alias's): the git
    # commands in it are read there in turn (approve_rules).
    line_folders: list[str] = field(default_factory=list)
    unread: list[tuple[str, str]] = field(default_factory=list)  # (why, git command)


def effects(
    found: list[str],
    places: Sequence[tuple[str, str]],
    lookup: Lookup,
    unknown: str,
    settings: Sequence[tuple[str, str]] = (),
) -> Effects:
    """For each git command in ``found`` (normalised: ``git SUB ARGS``), run in the
    lookup's folder or one of ``places`` (``cd DIR``, ``git -C DIR``), with the git
    ``settings`` the line makes (``GIT_DIR=…``), what its folder's git state makes it
    run. ``unknown``: the mark of a word known only at run time: a folder or a setting
    holding one is unread (its git state cannot be read before the line runs)."""
    out = Effects()
    # Each git command's words after `git`, and how many aliases deep it is.
    todo = [(c.split(" ")[1:], 0) for c in found if c.split(" ")[0] == "git"]
    if todo and (why := git_places.run_time(places, settings, unknown)) is not None:
        out.unread.append((why, " ".join(["git", *todo[0][0]])))
        return out
    where_all = git_places.folders(places, lookup)
    envs = git_places.with_homes(git_places.variants(settings, unknown), lookup.where)
    while todo:
        words, depth = todo.pop()
        command = " ".join(["git", *words])
        sub, rest = (words[0], words[1:]) if words else ("", [])
        if depth:  # an alias's words: git's own options may come before its subcommand
            after = command_wrappers.after_options(words, git_places.GIT_VALUED)
            sub, rest = (after[0], after[1:]) if after else ("", [])
        for place, extra in itertools.product([".", *where_all], envs):
            state = lookup.at(place, extra)
            where = ", ".join([lookup.where(place), *(f"{k}={v}" for k, v in extra.items())])
            if state.error is not None:
                out.unread.append((f"{state.error} in {where}: what git runs is unknown", command))
                return out  # it asks: no more git to run (a line of 10k `GIT_DIR=…` stays cheap)
            if sub in state.aliases and depth < 8:
                value = state.aliases[sub]
                why = f"alias.{sub} in git's config ({where})"
                if value.startswith("!"):
                    out.lines.append((" ".join([value[1:], *rest]), why))
                    out.line_folders.append(lookup.toplevel(place) or lookup.where(place))
                elif (split := split_cmdline(value)) is not None:  # else git runs nothing
                    # git reads it as words, its quotes taken off: `git VALUE ARGS`, its
                    # own options read as on the line (`-c diff.external=CMD diff` runs CMD)
                    expanded = ["git", *split, *rest]
                    out.commands.append((" ".join(expanded), why))
                    todo.append((expanded[1:], depth + 1))
                    handoff = handoffs.of("git", expanded[1:])
                    given = [*handoff.lines, *map(shlex.join, handoff.argv)] if handoff else []
                    for line in given:
                        out.lines.append((line, why))
                        out.line_folders.append(lookup.where(place))
                    if handoff is not None and handoff.why is not None:
                        out.unread.append((f"{why} {handoff.why}", command))
                    if any(w.startswith("--exec-path=") for w in split):
                        out.unread.append((f"{why} gives git --exec-path programs", command))
            elif state.autocorrect and sub and sub not in state.known:
                why = f"help.autocorrect in git's config ({where})"
                out.commands.append((f"git {unknown}", why))
            for key, value in state.programs:
                handoff = handoffs.of("git", ["-c", f"{key}={value}"])
                for line in handoff.lines if handoff else ():
                    out.lines.append((line, f"{key} in git's config ({where})"))
                    out.line_folders.append(lookup.where(place))
                if handoff is not None and handoff.why is not None:  # an ext:: URL
                    out.unread.append((f"{key} in git's config ({where}) {handoff.why}", command))
            if state.ext_allowed and (sub not in OFFLINE or state.partial):
                env = state.ext_allowed.startswith("GIT_ALLOW_PROTOCOL=")  # said where
                origin = "" if env else f" in git's config ({where})"
                why = f"{state.ext_allowed}{origin} lets git {sub or '…'} run"
                out.unread.append((f"{why} an ext:: URL's command", command))
            if state.template_hooks and sub in TEMPLATED:
                hooks = ", ".join(state.template_hooks)
                why = f"git {sub} may install and run the hooks {hooks} of {state.template_dir}"
                out.unread.append((why, command))
            hooks = ", ".join(h for h in state.hooks if sub not in INDEX_ONLY or h in INDEX_HOOKS)
            if hooks and sub not in READ_ONLY:
                out.unread.append(
                    (f"git {sub} may run the hooks {hooks} installed in {state.hooks_dir}", command)
                )
    return out


_GIT_SPACE: Final = " \t\n\r"  # git's isspace


def split_cmdline(value: str) -> list[str] | None:
    """The words of a git alias's value as git splits them (alias.c ``split_cmdline``):
    at spaces outside quotes, ``'…'`` and ``"…"`` taken off, a backslash escaping the next
    character outside single quotes; None where git refuses it (an unclosed quote, a
    trailing backslash: measured, `git u` with `alias.u = -c "x diff` ran nothing)."""
    words: list[str] = []
    word: list[str] = []
    quoted = ""
    i = 0
    while i < len(value):
        c = value[i]
        if not quoted and c in _GIT_SPACE:
            words.append("".join(word))
            word = []
            while i + 1 < len(value) and value[i + 1] in _GIT_SPACE:
                i += 1
        elif not quoted and c in "'\"":
            quoted = c
        elif c == quoted:
            quoted = ""
        else:
            if c == "\\" and quoted != "'":
                i += 1
                if i >= len(value):
                    return None
                c = value[i]
            word.append(c)
        i += 1
    if quoted:
        return None
    return [*words, "".join(word)]
