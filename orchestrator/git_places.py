"""Where a git command on a shell line runs, and with which repository and config.

:mod:`orchestrator.bash_commands` reads the line: the folders ``cd``, ``pushd``,
``git -C``, ``--git-dir`` and ``env -C`` name (:func:`git_folders`, :func:`cd_target`),
and the variables that move git (``GIT_DIR``, ``GIT_CONFIG_GLOBAL``, ``HOME``…,
:data:`GIT_SETTINGS`) set before a command, exported, or on an earlier line. Then
:mod:`orchestrator.git_state` reads git's state in each folder the line may reach
(:func:`folders`), with each setting (:func:`variants`), or, when the shell builds the
folder or the value as it runs (``cd "$d"``, ``GIT_DIR=$x``, ``cd -``), cannot know it
beforehand and asks (:func:`run_time`). :data:`UNKNOWN` marks a part the shell builds.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from orchestrator.shell_words import UNKNOWN

# git's own options taking the next word as their value (`git -C DIR SUB`).
GIT_VALUED: Final = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
)
MAX_FOLDERS: Final = 8  # folders whose git state one call reads (cd A; git x; cd B; …)
# Variables that change where git finds its repository or its config (set before a command,
# exported, or assigned on an earlier line): git's state is read with them set, or, when
# their value is built at run time, the call asks (GIT_EXEC_PATH is an unread hand-off).
GIT_SETTINGS: Final = re.compile(
    r"GIT_(DIR|WORK_TREE|COMMON_DIR|CONFIG\w*|CEILING_DIRECTORIES|DISCOVERY_ACROSS_FILESYSTEM)"
    r"|HOME|XDG_CONFIG_HOME"
)
EXPORTED: Final = UNKNOWN + "(exported, set elsewhere)"  # `export GIT_DIR` with no value
# `cd "$(git rev-parse --show-toplevel)"`, an everyday move to the top of the repository
# the shell is in: git_state asks git where that is (the one folder built at run time that
# is read, not asked about).
TOPLEVEL: Final = "\ue004"
_TOPLEVEL_WORD: Final = UNKNOWN + "$(git rev-parse --show-toplevel)"


class Lookup(Protocol):
    """What :func:`folders` asks of git (:class:`orchestrator.git_state.Lookup`)."""

    def where(self, folder: str) -> str: ...
    def toplevel(self, folder: str) -> str | None: ...


def git_folders(args: list[str], valued: frozenset[str]) -> list[str]:
    """The folders git's global options run it in: ``-C DIR`` (each one from the one
    before), ``--git-dir DIR``/``--git-dir=DIR`` (from there)."""
    found: list[str] = []
    at = ""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        word, after = args[i], args[i + 1] if i + 1 < len(args) else ""
        if word == "-C":
            at = os.path.join(at, after)
            found.append(at)
        elif word == "--git-dir" or word.startswith("--git-dir="):
            found.append(os.path.join(at, word.partition("=")[2] if "=" in word else after))
        i += 2 if word in valued else 1
    return found


def cd_target(program: str, args: list[str]) -> str:
    """Where ``cd ARGS``/``pushd ARGS`` moves the shell; UNKNOWN marks what only the
    shell knows: ``cd -`` (the folder before), ``pushd`` alone or ``pushd +1`` (the
    folder stack), a relative folder when the line sets CDPATH."""
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":  # -L, -P, -e, --
        if rest.pop(0) == "--":
            break
    if not rest:
        return "~" if program == "cd" else UNKNOWN + "(the folder stack)"
    target = rest[0]
    if target == "-" or (program == "pushd" and target[:1] in "+-"):
        return UNKNOWN + target
    after = target.removeprefix(_TOPLEVEL_WORD)
    if after != target and after[:1] in ("", "/") and UNKNOWN not in after:
        return TOPLEVEL + after
    return target


def option_values(words: list[str], short: str, long: str) -> list[str]:
    """The values of option ``short``/``long`` among a wrapper's leading options."""
    found = []
    for word, after in itertools.pairwise([*words, ""]):
        if not word.startswith("-") or word == "--":
            break
        if word in (short, long):
            found.append(after)
        elif word.startswith(long + "="):
            found.append(word.partition("=")[2])
        elif word.startswith(short) and not word.startswith("--") and len(word) > len(short):
            found.append(word[len(short) :])
    return found


def searched(kind: str, folder: str) -> bool:
    """Whether ``cd FOLDER`` looks FOLDER up in CDPATH (a relative name not ./ or ../)."""
    return kind == "cd" and not folder.startswith(("/", "./", "../", "~")) and folder != ".."


def folders(places: Sequence[tuple[str, str]], lookup: Lookup | None = None) -> list[str]:
    """Every folder (from the call's) a git command may run in, given the line's ``cd``
    (``"cd"``) and ``git -C``/``env -C`` (``"at"``) places in order. Any ``cd`` may
    have failed or run in a subshell (``cd a; cd nothere; cd c`` runs in a/c, ``(cd b)``
    moves no one), so each place is taken from every folder the ``cd``s before it may
    have led to: a place is never missed, and many ``cd``s make many folders (past
    :data:`MAX_FOLDERS` the call asks). ``~`` is the agent's HOME, and a folder named
    ``~`` here (``cd "~/x"``)."""
    found: list[str] = []
    heres = ["."]
    for kind, written in places:
        reached: list[str] = []
        for here in heres:
            folder = written
            if written.startswith(TOPLEVEL):  # the top of the repository here
                top = lookup.toplevel(here) if lookup is not None else None
                folder = (top or here) + written[1:]
            if folder.startswith("~"):  # the HOME's, made absolute: then `cd other` from it
                reached.append(lookup.where(folder) if lookup is not None else folder)
            reached.append(_joined(here, folder))
        reached = list(dict.fromkeys(reached))
        found += [r for r in reached if r not in found]
        if kind == "cd":
            heres = list(dict.fromkeys([*heres, *reached]))
        if len(found) > MAX_FOLDERS:  # the lookup asks past this: no need to go on
            break
    return found


def _joined(here: str, folder: str) -> str:
    """``folder`` from ``here``, normalised, but never read as ``~`` (the HOME) when it is
    a folder named ``~``."""
    joined = os.path.normpath(os.path.join(here, folder))
    return "./" + joined if joined.startswith("~") else joined


# `~-` (OLDPWD, as `cd -`), `~+` (PWD), `~N`/`~+N`/`~-N` (the folder stack): the shell's
# state, not a folder named so (`cd ~-` ran git in OLDPWD while its state there was unread).
_SHELL_TILDE: Final = re.compile(r"~([+-]\d*|\d+)(/|$)")


def run_time(
    places: Sequence[tuple[str, str]], settings: Sequence[tuple[str, str]], unknown: str
) -> str | None:
    """Why where git runs, or what it reads there, is known only when the line runs (a
    folder or a ``GIT_DIR`` the shell builds), or None."""
    for kind, folder in places:
        if unknown in folder or _SHELL_TILDE.match(folder) or descriptor(folder):
            named = f"{'cd' if kind == 'cd' else 'git -C'} {_shown(folder, unknown)}"
            return f"git may run in a folder known only at run time ({named})"
    literal = {name for name, value in settings if unknown not in value}
    for name, value in settings:  # `export GIT_DIR` of a GIT_DIR set on the line is known
        if _SHELL_TILDE.match(value):  # `GIT_DIR=~-/.git`: expanded as in a folder
            return f"git may run with {name} known only at run time ({name}={value})"
        if descriptor(value):  # `GIT_DIR=/dev/fd/3`, `HOME=/proc/9/cwd`
            return f"git may run with {name} known only at run time ({name}={value})"
        if unknown not in value or (value == EXPORTED and name in literal):
            continue
        shown = _shown(value.replace(EXPORTED, "…"), unknown)
        return f"git may run with {name} known only at run time ({name}={shown})"
    return None


# A folder reached through a file descriptor or another process (`exec 3<.git; cd
# /dev/fd/3`, `/proc/PID/cwd`): its folder is the one the shell opened, known only at run
# time (measured: `exec 3<../r; cd /dev/fd/3; git st`, `git -C /dev/fd/3 st`, `GIT_DIR=
# /dev/fd/3 git st` ran r's alias, unasked; the hook read its own descriptor 3). A line
# moving to /dev or /proc, then on by a relative folder (`cd /dev; cd fd/3`), is one too.
_DESCRIPTOR_PARTS: Final = frozenset({"dev", "proc", "fd", "cwd"})
# A path written through one (`>> /dev/fd/3/config`): something below the descriptor.
_THROUGH_DESCRIPTOR: Final = re.compile(
    r"^/(dev/fd/[^/]+|dev/std(in|out|err)|proc/[^/]+(/task/[^/]+)?/(fd/[^/]+|cwd|root))/."
)


def descriptor(folder: str) -> bool:
    """Whether ``folder`` may pass through a file descriptor's or a process's folder."""
    return bool(_DESCRIPTOR_PARTS & parts(folder))


def parts(folder: str) -> set[str]:
    """The names of the folders ``folder`` passes through (``/dev/fd/3``: dev, fd, 3)."""
    return set(os.path.normpath(folder).split("/"))


def through_descriptor(path: str) -> bool:
    """Whether absolute ``path`` names a file below a file descriptor's folder or another
    process's (``/dev/fd/3/config``): where it is, only the line's shell knows."""
    return _THROUGH_DESCRIPTOR.match(os.path.normpath(path)) is not None


def _shown(word: str, unknown: str) -> str:
    """A word the shell builds, as the approver reads it (``$d``, ``$(…)``, ```…```)."""
    shown = word.replace(unknown, "") or "`…`"
    if (start := shown.find("$(")) >= 0:  # a substitution is one word: its commands apart
        shown = shown[: start + 1]
    return shown + "(…)" if shown.endswith("$") else shown


def with_homes(envs: list[dict[str, str]], where: Callable[[str], str]) -> list[dict[str, str]]:
    """``envs`` and each with its ``~``, ``~/…``, ``~user`` (first in a value, or after a
    ``:``) made absolute by ``where`` (the agent's HOME): the shell expands them in an
    assignment (``GIT_DIR=~/x git st``, ``env GIT_DIR=~/x``, ``export``; git was run with
    ``~/x`` taken as a folder named ``~`` here, the HOME's alias unread), not in quotes
    (``GIT_DIR="~/x"``), which the words no longer tell: both are read, as ``cd``'s."""
    out = list(envs)
    seen = {tuple(sorted(env.items())) for env in envs}  # a set: 3000 settings stay linear
    for env in envs:
        homed = {
            name: ":".join(where(p) if p.startswith("~") else p for p in value.split(":"))
            if "~" in value
            else value
            for name, value in env.items()
        }
        if (key := tuple(sorted(homed.items()))) not in seen:
            seen.add(key)
            out.append(homed)
    return out


def variants(settings: Sequence[tuple[str, str]], unknown: str) -> list[dict[str, str]]:
    """The environments git may run with: the agent's, each setting the line makes, and
    all of them together (one command may get several: ``export A=…; B=… git x``)."""
    literal = [(n, v) for n, v in dict.fromkeys(settings) if unknown not in v]
    out: list[dict[str, str]] = [{}, *({n: v} for n, v in literal)]
    if len(literal) > 1:
        out.append(dict(literal))
    return out
