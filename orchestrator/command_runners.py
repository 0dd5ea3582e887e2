"""Programs that run their arguments as a command, for :mod:`orchestrator.bash_commands`.

``watch CMD``, ``script -c CMD``, ``su -c CMD``, ``runuser -u USER CMD``, ``flock FILE -c
CMD`` / ``flock FILE CMD…``, ``parallel CMD ::: ARGS``, ``trap CMD SIGNAL``: the command
is read as one (the rules of that command apply; ``Bash(watch:*)`` does not allow what
it runs). Where the command comes from the program's input (``echo CMD | su``, ``script``
or ``parallel`` with no command) it is a hand-off that cannot be read (code on the line,
:data:`orchestrator.handoff_types.INPUT`). Plain wrappers whose command follows their options
(``sudo``, ``nice``, ``setsid``, ``chroot``…) are read by :mod:`orchestrator.bash_commands`.
"""

from __future__ import annotations

import re
from typing import Final

from orchestrator import shell_words
from orchestrator.handoff_types import INPUT, Handoff

_UNKNOWN: Final = shell_words.UNKNOWN
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})
# su and runuser (util-linux): the options taking a value; -c/--command and
# --session-command give the shell a command line; options may follow the user name.
_SU_VALUED = frozenset(
    {"-c", "--command", "--session-command", "-g", "--group", "-G", "--supp-group"}
    | {"-s", "--shell", "-w", "--whitelist-environment", "-u", "--user"}
)
_SCRIPT_VALUED = frozenset("cEBIOTmo")  # script's short options taking a value
_SCRIPT_LONG = frozenset(
    {"--echo", "--log-io", "--log-in", "--log-out", "--log-timing", "--logging-format"}
    | {"--output-limit"}
)
# GNU parallel's options that only shape how it runs the command (the value ones take
# the next word). Any other option may run programs (--ssh, --filter, --compress-program,
# --profile, -S hosts…): the line asks unless a rule names that option.
_PARALLEL_PLAIN = frozenset(
    {"-k", "--keep-order", "-X", "-m", "-q", "--quote", "--tag", "--bar", "--eta", "-0"}
    | {"--progress", "--dry-run", "--no-notice", "--will-cite", "--null", "-r", "-u"}
    | {"--no-run-if-empty", "--line-buffer", "--lb", "--group", "--ungroup", "-v", "--xargs"}
    | {"--verbose", "-t", "--plus", "--halt-on-error", "-g"}
)
_PARALLEL_VALUED = frozenset(
    {"-j", "--jobs", "-P", "-n", "--max-args", "-N", "-L", "--max-lines", "--timeout"}
    | {"-I", "--colsep", "-C", "-d", "--delimiter", "--joblog", "--results", "--res"}
    | {"--retries", "--delay", "--load", "--memfree", "--halt", "-a", "--arg-file"}
    | {"--tagstring", "--tag-string", "-s", "--max-chars", "--block", "--block-size"}
)
_PARALLEL_SEPARATORS = frozenset({":::", "::::", ":::+", "::::+"})
_REPLACEMENT = re.compile(r"\{[^{}\s]*\}")  # {} {.} {/} {#} {1}: parallel's replacement strings


def of(name: str, args: list[str]) -> Handoff | None:
    """The command ``name args…`` runs as a command, if it is one of these programs."""
    if name == "watch":
        return _watch(args)
    if name == "script":
        return _script(args)
    if name in ("su", "runuser"):
        return _su(name, args)
    if name == "flock":
        return _flock(args)
    if name in ("parallel", "sem"):
        return _parallel(name, args)
    if name == "trap":  # `trap 'CMD' EXIT`: the shell runs CMD (here, at the end)
        body = next((a for a in args if not a.startswith("-")), None)
        return Handoff(lines=(body,)) if body and not body.isdigit() else None
    return None


def _short_value(word: str, valued: frozenset[str] | str) -> tuple[str, str] | None:
    """In a cluster ``-qc``/``-qcCMD``: the first letter taking a value, and the value
    attached to it ("" if it is the next word)."""
    if word.startswith("--") or len(word) < 2:
        return None
    for j, c in enumerate(word[1:], 1):
        if c in valued or f"-{c}" in valued:
            return c, word[j + 1 :]
    return None


def _watch(args: list[str]) -> Handoff | None:
    """procps watch: ``sh -c`` of its words joined, or (``-x``) the words as a command."""
    exec_ = False
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        if word in ("--exec", "--interval", "--equexit"):
            exec_ = exec_ or word == "--exec"
            i += word != "--exec"
            continue
        if not word.startswith("--"):
            exec_ = exec_ or "x" in word.split("n", 1)[0].split("q", 1)[0]
            found = _short_value(word, "nq")
            if found is not None and not found[1]:
                i += 1
    rest = args[i:]
    if not rest:
        return None
    return Handoff(argv=(tuple(rest),)) if exec_ else Handoff(lines=(" ".join(rest),))


def _script(args: list[str]) -> Handoff | None:
    """util-linux script: ``-c CMD`` runs CMD; without it a shell reads its input."""
    lines: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            break
        option, eq, value = word.partition("=")
        if option == "--command":
            lines.append(value if eq else (args[i] if i < len(args) else ""))
            i += not eq
        elif word in ("-h", "--help", "-V", "--version"):
            return None
        elif option in _SCRIPT_LONG:
            i += not eq
        elif word.startswith("-") and (found := _short_value(word, _SCRIPT_VALUED)):
            letter, attached = found
            if not attached:
                attached = args[i] if i < len(args) else ""
                i += 1
            if letter == "c":
                lines.append(attached)
    if lines:
        return Handoff(lines=tuple(lines))
    return Handoff("runs commands the shell of script reads from its input", code=INPUT)


def _su(name: str, args: list[str]) -> Handoff | None:
    """``su [USER] -c CMD`` (its options may follow the user), ``runuser -u USER CMD…``;
    without a command the user's shell reads its input. A ``-s SHELL`` that is no
    POSIX shell (``-s /usr/bin/python3 -c CODE``) runs code that is not a shell line."""
    lines: list[str] = []
    shell = ""
    user_mode = login = False
    positional: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            positional += args[i:]
            break
        option, eq, value = word.partition("=")
        if word in ("-h", "--help", "-V", "--version"):
            return None
        if option.startswith("--") and option in _SU_VALUED:
            if not eq:
                value = args[i] if i < len(args) else ""
                i += 1
        elif word.startswith("-") and word != "-" and (found := _short_value(word, _SU_VALUED)):
            option, value = f"-{found[0]}", found[1]
            if not value:
                value = args[i] if i < len(args) else ""
                i += 1
        else:
            login = login or word in ("-", "-l", "--login")
            if not word.startswith("-") or word == "-":
                positional.append(word)
                if user_mode and word != "-":  # runuser -u USER CMD…: the command begins
                    positional += args[i:]
                    break
            continue
        if option in ("-c", "--command", "--session-command"):
            lines.append(value)
        elif option in ("-s", "--shell"):
            shell = value
        elif option in ("-u", "--user") and name == "runuser":
            user_mode = True
    if shell and shell.rsplit("/", 1)[-1] not in _SHELLS and (lines or positional):
        return Handoff(f"runs code with the shell {shell} of {name} -s", code="-s")
    if user_mode:
        argv = [w for w in positional if w != "-"]
        return Handoff(argv=(tuple(argv),)) if argv else None
    if lines and login:  # a login shell starts in the user's home, known at run time
        home = _UNKNOWN + "~" + next((w for w in positional if w != "-"), "root")
        return Handoff(lines=tuple(f"cd {home}; {line}" for line in lines))
    if lines:
        return Handoff(lines=tuple(lines))
    return Handoff(f"runs commands the shell of {name} reads from its input", code=INPUT)


def _flock(args: list[str]) -> Handoff | None:
    """util-linux flock: ``flock FILE -c CMD`` (sh -c), ``flock FILE CMD…``; ``flock FD``
    runs nothing."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        found = _short_value(word, "wE")
        if word in ("--timeout", "--wait", "--conflict-exit-code") or (found and not found[1]):
            i += 1
    rest = args[i + 1 :]
    if rest[:1] in (["-c"], ["--command"]):
        return Handoff(lines=(rest[1] if len(rest) > 1 else "",))
    return Handoff(argv=(tuple(rest),)) if rest else None


def _parallel(name: str, args: list[str]) -> Handoff | None:
    """GNU parallel: its command is a shell line, each input word in place of ``{}``
    (else after it), unknown; with no command each input is a command line."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        option = word.split("=", 1)[0]
        i += 1
        if word == "--":
            break
        if word in _PARALLEL_PLAIN or (option in _PARALLEL_VALUED and "=" in word):
            continue
        if word in _PARALLEL_VALUED:
            i += 1
            continue
        if word[:2] in _PARALLEL_VALUED and len(word) > 2 and not word.startswith("--"):
            continue  # -j4, -n1
        if word in ("--version", "--help", "-h", "--citation"):
            return None
        return Handoff(f"gives {name} the option {option}, which may run programs", code=option)
    end = next((j for j in range(i, len(args)) if args[j] in _PARALLEL_SEPARATORS), len(args))
    command = args[i:end]
    if command:
        marked = [_REPLACEMENT.sub(lambda m: _UNKNOWN + m[0], w) for w in command]
        if marked == command:
            marked.append(_UNKNOWN + "…")
        return Handoff(lines=(" ".join(marked),))
    inputs = args[end + 1 :]
    if inputs and not any(a.startswith("::::") for a in args[end:]):  # no file of inputs
        return Handoff(lines=tuple(w for w in inputs if w not in _PARALLEL_SEPARATORS))
    return Handoff(f"runs the commands {name} reads from its input or a file", code=INPUT)
