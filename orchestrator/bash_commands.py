"""The commands a shell line runs, in the form ``Bash(...)`` approval rules are read against.

A rule such as ``Bash(git push:*)`` must catch the push however it is written: among other
commands (``make && git push``, ``if …; then git push; fi``, ``{ git push; }``,
``echo $(git push)``), behind assignments and wrappers (``GIT_SSH_COMMAND=x git push``,
``time``/``env``/``command``/``nice``/``sudo``/``nohup``/``timeout``/``xargs`` …), inside
``sh -c``/``bash -c``/``eval`` bodies, as a path (``/usr/bin/git push``), with git's
global options (``git -C /repo push``) or odd spacing (``git\\tpush``).

:func:`commands` lists each simple command as its words joined by one space, with those
parts taken off. It errs toward finding too much: an approval asked for nothing costs a
question, one missed runs a command unasked. A line it cannot read with confidence (an
open quote, a command name held in a variable, nesting too deep) gives :data:`UNSURE`, and
every ``Bash(...)`` rule then matches: the call asks.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Final

UNSURE: Final = None
MAX_DEPTH: Final = 8  # sh -c "eval '…'" nesting read before giving up (and asking)

_PUNCTUATION = "();<>|&\n"
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac"}
    | {"coproc"}
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
# Wrappers that run the rest of their words as a command, with their options that take
# a value as the next word (a value attached, ``-n5``, is one word and simply skipped).
_WRAPPERS: Final[dict[str, frozenset[str]]] = {
    "time": frozenset(),
    "busybox": frozenset(),
    "nohup": frozenset(),
    "builtin": frozenset(),
    "command": frozenset(),
    "exec": frozenset({"-a"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R"}),
    "doas": frozenset({"-u", "-C"}),
    "xargs": frozenset({"-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a", "--delimiter"}),
}
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})
_GIT_VALUED = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
)


class _Unsure(Exception):
    """The line cannot be read with confidence."""


def commands(line: str) -> list[str] | None:
    """Each simple command ``line`` runs, normalised; :data:`UNSURE` if it cannot say."""
    try:
        return _commands(line, 0)
    except _Unsure:
        return UNSURE


def words(line: str) -> list[str]:
    """Every word of ``line``, quotes removed and split at spaces (``su -c 'git push'``
    gives su, -c, git, push), a path by its base name: where a rule's words may hide in
    arguments the shell hands to another program (``ssh``, ``su -c``, ``find -exec``)."""
    try:
        tokens = _tokens(line)
    except _Unsure:
        tokens = line.split()
    return [os.path.basename(w) or w for t in tokens for w in t.split()]


def _tokens(line: str) -> list[str]:
    # Backslash-newline continues the line; a backtick starts or ends a substitution.
    text = line.replace("\\\n", "").replace("`", "\n")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace = " \t\r"  # a newline separates commands: it is punctuation here
    lexer.commenters = ""  # `a#b; git push` runs the push: never drop text as a comment
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # no closing quotation, an escape at the end
        raise _Unsure from None


def _commands(line: str, depth: int) -> list[str]:
    if depth > MAX_DEPTH:
        raise _Unsure
    tokens = _tokens(line)
    found: list[str] = []
    words: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:  # a redirection's target
            skip_next = False
            continue
        if token and all(c in _PUNCTUATION for c in token):
            if ("<" in token or ">" in token) and "(" not in token and ")" not in token:
                if words and words[-1].isdigit():
                    words.pop()  # the descriptor of `2>&1`
                skip_next = True
                continue
            found += _simple(words, depth)  # ; && || | & newline ( ) $( <(
            words = []
            continue
        if "$(" in token:  # a substitution inside double quotes runs too
            found += _commands(token.split("$(", 1)[1], depth + 1)
        words.append(token)
    return found + _simple(words, depth)


def _simple(words: list[str], depth: int) -> list[str]:
    """One simple command, prefixes taken off: "" if nothing is left to run."""
    words = list(words)
    while words:
        head = words[0]
        if head in _KEYWORDS or _ASSIGNMENT.match(head) or head == "$":
            words.pop(0)
        elif os.path.basename(head) in _WRAPPERS:
            words = _after_options(words[1:], _WRAPPERS[os.path.basename(head)])
        elif head == "eval":
            return _commands(" ".join(words[1:]), depth + 1)
        elif os.path.basename(head) in _SHELLS and (body := _shell_body(words[1:])) is not None:
            return _commands(body, depth + 1)
        else:
            break
    if not words:
        return []
    program = words[0]
    if "$" in program or "*" in program or "?" in program:
        raise _Unsure  # the command's name is only known when the shell runs it
    program = os.path.basename(program) or program
    rest = words[1:]
    if program == "git":
        rest = _after_options(rest, _GIT_VALUED)
    return [" ".join([program, *rest])]


def _after_options(words: list[str], valued: frozenset[str]) -> list[str]:
    """``words`` from the first one that is not an option (or after ``--``)."""
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        if words[i] == "--":
            return words[i + 1 :]
        i += 2 if words[i] in valued else 1
    return words[i:]


def _shell_body(words: list[str]) -> str | None:
    """The command string of ``sh -c BODY`` (``bash -lc BODY`` too), else None."""
    for i, word in enumerate(words):
        if not word.startswith("-") or word == "--":
            return None
        if not word.startswith("--") and "c" in word[1:]:
            return words[i + 1] if i + 1 < len(words) else ""
    return None
