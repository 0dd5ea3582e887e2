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

import itertools
import os
import re
from typing import Final

from orchestrator import command_wrappers, shell_words
from orchestrator.handoff_types import INPUT, Handoff

_UNKNOWN: Final = shell_words.UNKNOWN
# su and runuser (util-linux): the options taking a value; -c/--command and
# --session-command give the shell a command line; options may follow the user name.
_SU_VALUED = frozenset(
    {"-c", "--command", "--session-command", "-g", "--group", "-G", "--supp-group"}
    | {"-s", "--shell", "-w", "--whitelist-environment", "-u", "--user"}
)
_SU_FLAGS = frozenset({"--preserve-environment", "--login", "--fast", "--pty"})
_SU_FLAGS |= frozenset({"--help", "--version"})
_SU_LETTERS = "mplfPhV"  # su's short options taking no value
_SCRIPT_VALUED = frozenset("cEBIOTmo")  # script's short options taking a value
_SCRIPT_LONG = frozenset(
    {"--echo", "--log-io", "--log-in", "--log-out", "--log-timing", "--logging-format"}
    | {"--output-limit"}
)
_SCRIPT_FLAGS = frozenset({"--append", "--return", "--flush", "--force", "--quiet", "--timing"})
_SCRIPT_LETTERS = "aefqhV"  # and -t[FILE], its value attached only
# The options each runner knows (procps watch 4.0, util-linux flock, script, su and
# runuser 2.38: their --help and man pages); any other option without an attached
# `=value` may take the next word, so the command would not be where it is read: the
# line asks (:func:`_unknown`), as for a wrapper (command_wrappers.unknown).
_WATCH_FLAGS = frozenset({"--beep", "--color", "--differences", "--errexit", "--chgexit"})
_WATCH_FLAGS |= frozenset({"--precise", "--no-title", "--no-wrap", "--exec"})
_WATCH_FLAGS |= frozenset({"--help", "--version"})
_WATCH_LETTERS = "bceghptwxv"  # and -d[permanent], its value attached only
_FLOCK_FLAGS = frozenset({"--shared", "--exclusive", "--unlock", "--nonblock", "--nb"})
_FLOCK_FLAGS |= frozenset({"--close", "--no-fork", "--verbose", "--help", "--version"})
_FLOCK_LETTERS = "sexnoFuhV"
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


def held(name: str, args: list[str]) -> Handoff | None:
    """Why wrapper ``name`` is not read past to its command (it asks): an option it does
    not know (its value may be the next word: the command would not be where it seems),
    ``sudo -e`` (it runs an editor), ``dbus-run-session --dbus-daemon=PROGRAM``."""
    if name == "sudo" and _sudo_edits(args):
        return Handoff("runs the editor of sudo -e (VISUAL, EDITOR)", code="-e")
    if name == "dbus-run-session" and any(a.startswith("--dbus-daemon") for a in args):
        return Handoff("gives dbus-run-session a program (--dbus-daemon)", code="--dbus-daemon")
    option = command_wrappers.unknown(name, args)
    if not option and name in _SHELL_IF_NONE and _shell_reads_input(name, args):
        return Handoff(f"runs commands the shell of {name} reads from its input", code=INPUT)
    return _unknown(name, option) if option else None


def _unknown(name: str, option: str) -> Handoff:
    """The line asks: ``name`` is given ``option`` it does not know here (its value may be
    the next word); exempt by a rule naming the option as written (``Bash(sudo
    --new-option:*)``; in a cluster, ``-Z (in -nZ)``, the cluster: ``Bash(flock -nZ:*)``)."""
    why = f"gives {name} the option {option}, unknown here (the command may follow it)"
    word = option.split(" ", 1)[0]
    if option.endswith(")") and " (in " in option:
        word = option.rsplit(" (in ", 1)[1][:-1]
    return Handoff(why, code=word)


def _letter_unknown(word: str, letters: str, valued: frozenset[str] | str, optional: str) -> str:
    """In a cluster of short options (``-qc``): the first letter that is neither in
    ``letters`` (no value) nor before a value (``valued``: the rest of the word or the
    next word; ``optional``: the rest of the word only), as for a wrapper ("" if none)."""
    if word[:1] != "-" or word[:2] == "--":
        return ""
    for c in word[1:]:
        if c in valued or f"-{c}" in valued or c in optional:
            return ""
        if c not in letters:
            return word if len(word) == 2 else f"-{c} (in {word})"
    return ""


# Wrappers that start a shell when given no command (sudo and doas with -s or -i).
_SHELL_IF_NONE = frozenset({"sudo", "doas", "fakeroot", "firejail", "nsenter", "unshare"})
_SHELL_IF_NONE |= frozenset({"chroot"})


_INFORM = command_wrappers.HELP | {"-l", "--list", "-k", "-v"}  # list, forget: no shell


def _shell_reads_input(name: str, args: list[str]) -> bool:
    """Whether wrapper ``name`` given ``args`` runs a shell reading its input."""
    rest = command_wrappers.after_options(args, command_wrappers.WRAPPERS[name])
    options = args[: len(args) - len(rest)]
    if rest[: 2 if name == "chroot" else 1] or "--" in options:
        return not rest[1:] if name == "chroot" and "--" not in options else False
    if any(w in _INFORM for w in options):
        return False
    if name in ("sudo", "doas"):
        return any(
            w in ("--shell", "--login")
            or (w[:1] == "-" and w[1:2] != "-" and ("s" in w or "i" in w))
            for w in options
        )
    return True


def _sudo_edits(args: list[str]) -> bool:
    options = args[: len(args) - len(command_wrappers.after_options(args, _SUDO_VALUED))]
    return "--edit" in options or any(
        w[:1] == "-" and w[1:2] != "-" and "e" in _letters(w, _SUDO_VALUED) for w in options
    )


_SUDO_VALUED: Final = command_wrappers.WRAPPERS["sudo"]


def _letters(word: str, valued: frozenset[str]) -> str:
    """The option letters of a short cluster, up to the first taking a value."""
    for j, c in enumerate(word[1:], 1):
        if f"-{c}" in valued:
            return word[1 : j + 1]
    return word[1:]


def of(name: str, args: list[str]) -> Handoff | None:
    """The command ``name args…`` runs as a command, if it is one of these programs."""
    if name in command_wrappers.WRAPPERS:  # a wrapper not read past (held)
        return held(name, args)
    if name in _NEWER:
        return _NEWER[name](name, args)
    if name in _TMUX_CHAINED:  # `tmux a \; send-keys …`: the line splits at `\;`
        return _tmux("tmux", [name, *args])
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
        if word.startswith("--"):
            option, eq, _ = word.partition("=")
            if option in ("--interval", "--equexit"):
                i += not eq
            elif option in _WATCH_FLAGS:
                exec_ = exec_ or option == "--exec"
            elif not eq:
                return _unknown("watch", option)
            continue
        if unknown := _letter_unknown(word, _WATCH_LETTERS, "nq", "d"):
            return _unknown("watch", unknown)
        exec_ = exec_ or "x" in word.split("n", 1)[0].split("q", 1)[0].split("d", 1)[0]
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
        elif word in command_wrappers.HELP:
            return None
        elif option in _SCRIPT_LONG:
            i += not eq
        elif word.startswith("--") and option not in _SCRIPT_FLAGS and not eq:
            return _unknown("script", option)
        elif unknown := _letter_unknown(word, _SCRIPT_LETTERS, _SCRIPT_VALUED, "t"):
            return _unknown("script", unknown)
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
        if word in command_wrappers.HELP:
            return None
        if option.startswith("--") and not eq and option not in _SU_VALUED | _SU_FLAGS:
            return _unknown(name, option)
        if unknown := _letter_unknown(word, _SU_LETTERS, _SU_VALUED, ""):
            return _unknown(name, unknown)
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
    if shell and shell.rsplit("/", 1)[-1] not in command_wrappers.SHELLS and (lines or positional):
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
        option, eq, _ = word.partition("=")
        if option in ("--timeout", "--wait", "--conflict-exit-code"):
            i += not eq
            continue
        if word.startswith("--"):
            if option not in _FLOCK_FLAGS and not eq:
                return _unknown("flock", option)
            continue
        if unknown := _letter_unknown(word, _FLOCK_LETTERS, "wE", ""):
            return _unknown("flock", unknown)
        found = _short_value(word, "wE")
        if found and not found[1]:
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


def _sudoedit(name: str, args: list[str]) -> Handoff | None:
    if any(a in command_wrappers.HELP for a in args[:1]):
        return None
    return Handoff("runs the editor of sudoedit (VISUAL, EDITOR)", code=name)


def _entr(name: str, args: list[str]) -> Handoff | None:
    """entr [-acdnprsz] UTILITY [ARG…]: with -s UTILITY is a line for $SHELL -c."""
    i = 0
    shell = False
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--") or any(c not in "acdnprsz" for c in word[1:]):
            return Handoff(f"gives entr the option {word}, unknown here", code=word)
        shell = shell or "s" in word
    rest = args[i:]
    if not rest:
        return None
    return Handoff(lines=(" ".join(rest),)) if shell else Handoff(argv=(tuple(rest),))


def _sg(name: str, args: list[str]) -> Handoff | None:
    """shadow's sg [-] GROUP [[-c] COMMAND]: /bin/sh -c COMMAND; with none a shell reads
    its input."""
    rest = [a for a in args[:1] if a != "-"] + args[1:] if args[:1] == ["-"] else list(args)
    if rest[:1] in (["-h"], ["--help"]) or not rest:
        return None
    rest = rest[1:]
    if rest[:1] == ["-c"]:
        rest = rest[1:]
    if rest:
        return Handoff(lines=(" ".join(rest),))
    return Handoff(f"runs commands the shell of {name} reads from its input", code=INPUT)


def _at(name: str, args: list[str]) -> Handoff | None:
    """at/batch run the commands they read from their input or ``-f FILE`` (later)."""
    if name == "at" and any(a in ("-l", "-r", "-d", "-c", "-V", "--help") for a in args):
        return None  # list, remove, print jobs
    return Handoff(f"runs the commands {name} reads from its input or a file", code=INPUT)


_IP_VALUED = frozenset({"-n", "-netns", "-b", "-batch", "-rc", "-rcvbuf", "-l", "-loops"})
_IP_VALUED |= frozenset({"-f", "-family"})


def _ip(name: str, args: list[str]) -> Handoff | None:
    """iproute2: ``ip [OPTIONS] netns exec NAME CMD…`` (``ip -all netns exec CMD…``);
    ``ip -batch FILE`` runs ip commands of a file (netns exec among them)."""
    i = 0
    every = False
    while i < len(args) and args[i].startswith("-"):
        word = args[i]
        i += 1
        if word in ("-b", "-batch", "-ba", "-bat", "-batc"):
            return Handoff(f"runs the ip commands of a file or its input ({name} {word})")
        every = every or word in ("-a", "-all")
        if word in _IP_VALUED:
            i += 1
    rest = args[i:]
    netns = len(rest) >= 2 and len(rest[0]) >= 3 and "netns".startswith(rest[0])  # ip net e
    if netns and rest[1] and "exec".startswith(rest[1]):
        command = rest[2:] if every else rest[3:]
        return Handoff(argv=(tuple(command),)) if command else None
    return None


_GDB_CODE = frozenset({"-ex", "-iex", "-x", "-ix", "-eval-command", "-init-eval-command"})
_GDB_CODE |= frozenset({"-command", "-init-command", "-p", "-python"})
# gdb 11+'s early init ones (measured, gdb 13: `-eiex 'shell CMD'`, `-eix FILE` ran CMD)
_GDB_CODE |= frozenset({"-eiex", "-eix", "-early-init-eval-command", "-early-init-command"})


_GDB_NO_INPUT = frozenset({"batch", "batch-silent", "version", "help", "configuration"})


def _gdb(name: str, args: list[str]) -> Handoff | None:
    """gdb commands on the line (``-ex CMD``, ``-x FILE``; ``shell``, ``python`` run
    anything) ask; ``--args PROG ARG…`` is read as a command (``run`` runs it). Without
    ``-batch`` gdb reads commands from its input when it is no terminal (measured, gdb 13:
    ``echo 'shell CMD' | gdb -q -nx`` and ``… | gdb --args true`` ran CMD; ``-batch`` ran
    none): code on the input, as ``… | sh``."""
    folder = ""  # --cd DIR: where gdb, and the program it runs, work
    own = itertools.takewhile(lambda w: w.lstrip("-") != "args", args)  # not PROG's
    batch = any(w.lstrip("-") in _GDB_NO_INPUT for w in own)
    reads = None if batch else f"runs the gdb commands {name} reads from its input"
    for i, word in enumerate(args):
        option = "-" + word.lstrip("-").split("=", 1)[0] if word.startswith("-") else ""
        if option == "-cd":
            after = args[i + 1] if i + 1 < len(args) else ""
            folder = word.partition("=")[2] if "=" in word else after
        if option == "-args":
            command = args[i + 1 :]
            code = INPUT if reads else ""
            return Handoff(
                reads, argv=(tuple(command),) if command else (), code=code, folder=folder
            )
        if option in _GDB_CODE - {"-p"}:
            return Handoff(f"runs the gdb commands given to {name} {word}", code=word)
    return Handoff(reads, code=INPUT) if reads else None


# tmux 3.3a's commands (`tmux list-commands`), with their aliases. tmux runs the command an
# alias names, a name names, or else a unique prefix of a name (cmd_find: `run` is
# run-shell's alias, `ru` and `run-s` prefixes of it; `r` is ambiguous and runs nothing).
_TMUX_ALIASES: Final = {
    "attach": "attach-session",
    "bind": "bind-key",
    "breakp": "break-pane",
    "capturep": "capture-pane",
    "clearhist": "clear-history",
    "clearphist": "clear-prompt-history",
    "confirm": "confirm-before",
    "deleteb": "delete-buffer",
    "detach": "detach-client",
    "menu": "display-menu",
    "display": "display-message",
    "popup": "display-popup",
    "displayp": "display-panes",
    "findw": "find-window",
    "has": "has-session",
    "if": "if-shell",
    "joinp": "join-pane",
    "killp": "kill-pane",
    "killw": "kill-window",
    "lastp": "last-pane",
    "last": "last-window",
    "linkw": "link-window",
    "lsb": "list-buffers",
    "lsc": "list-clients",
    "lscm": "list-commands",
    "lsk": "list-keys",
    "lsp": "list-panes",
    "ls": "list-sessions",
    "lsw": "list-windows",
    "loadb": "load-buffer",
    "lockc": "lock-client",
    "lock": "lock-server",
    "locks": "lock-session",
    "movep": "move-pane",
    "movew": "move-window",
    "new": "new-session",
    "neww": "new-window",
    "nextl": "next-layout",
    "next": "next-window",
    "pasteb": "paste-buffer",
    "pipep": "pipe-pane",
    "prevl": "previous-layout",
    "prev": "previous-window",
    "refresh": "refresh-client",
    "rename": "rename-session",
    "renamew": "rename-window",
    "resizep": "resize-pane",
    "resizew": "resize-window",
    "respawnp": "respawn-pane",
    "respawnw": "respawn-window",
    "rotatew": "rotate-window",
    "run": "run-shell",
    "saveb": "save-buffer",
    "selectl": "select-layout",
    "selectp": "select-pane",
    "selectw": "select-window",
    "send": "send-keys",
    "setb": "set-buffer",
    "setenv": "set-environment",
    "set": "set-option",
    "setw": "set-window-option",
    "showb": "show-buffer",
    "showenv": "show-environment",
    "showmsgs": "show-messages",
    "show": "show-options",
    "showphist": "show-prompt-history",
    "showw": "show-window-options",
    "source": "source-file",
    "splitw": "split-window",
    "start": "start-server",
    "suspendc": "suspend-client",
    "swapp": "swap-pane",
    "swapw": "swap-window",
    "switchc": "switch-client",
    "unbind": "unbind-key",
    "unlinkw": "unlink-window",
    "wait": "wait-for",
}
_TMUX_NAMES: Final = tuple(
    sorted(
        {*_TMUX_ALIASES.values()}
        | {"choose-buffer", "choose-client", "choose-tree", "clock-mode", "command-prompt"}
        | {"copy-mode", "customize-mode", "kill-server", "kill-session", "send-prefix"}
        | {"server-access", "set-hook", "show-hooks"}
    )
)


def tmux_command(word: str) -> str | None:
    """The tmux command ``word`` names, as tmux finds it (an alias, a name, a unique
    prefix of a name), or None (unknown or ambiguous: tmux runs nothing)."""
    if word in _TMUX_ALIASES:
        return _TMUX_ALIASES[word]
    if word in _TMUX_NAMES:
        return word
    found = [n for n in _TMUX_NAMES if n.startswith(word)] if word else []
    return found[0] if len(found) == 1 else None


_TMUX_QUIET = frozenset(
    {"list-sessions", "kill-session", "kill-server", "has-session", "attach-session"}
    | {"list-windows", "list-panes", "kill-window", "kill-pane", "detach-client"}
    | {"capture-pane", "wait-for"}
)
_TMUX_NEW = {  # the commands running a shell command, their options taking a value
    "new-session": "cefFnstxy",
    "new-window": "cenFt",
    "split-window": "celFt",
    "respawn-pane": "ce",
    "respawn-window": "ce",
}


def _tmux_command(args: list[str]) -> tuple[list[str], str | None]:
    """tmux's words after its own options, or ([], why) for an option that runs commands."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        if _tmux_control(word):
            return [], word
        found = _short_value(word, "cfLST")
        if found and found[0] in "cf":
            return [], word
        if found and not found[1]:
            i += 1
    return args[i:], None


def _tmux_control(word: str) -> bool:
    """Whether tmux's option word ``word`` holds ``-C``: control mode, which runs the tmux
    commands it reads from its input (measured, tmux 3.3a: `echo 'run-shell CMD' | tmux -C
    attach` and `| tmux -C new`, `| tmux -C ls` ran CMD)."""
    for letter in word[1:] if not word.startswith("--") else "":
        if letter == "C":
            return True
        if letter in "cfLST":  # the rest is its value
            return False
    return False


def _tmux_parts(words: list[str]) -> list[list[str]]:
    """tmux's commands in its words as tmux splits them (cmd_parse_from_arguments): a word
    ending in `;` ends a command, the rest of it a word of that command (measured: `tmux
    new -d sleep\\; run CMD` and `'sleep 1;' run CMD` ran CMD); one ending in `\\;` is a
    word ending in a plain `;` (kept as written here). Empty commands are none."""
    parts: list[list[str]] = [[]]
    for word in words:
        if word.endswith(";") and not word.endswith("\\;"):
            parts[-1] += [word[:-1]] if word[:-1] else []
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


def tmux_quiet(args: list[str]) -> bool:
    """Whether ``tmux ARGS`` starts no server (nor reads its config): no command, or one
    that only lists, kills, attaches (``ls``, ``kill-server``, ``has``…)."""
    rest, option = _tmux_command(args)
    return option is None and (not rest or tmux_command(rest[0]) in _TMUX_QUIET)


def tmux_shell(args: list[str]) -> bool:
    """Whether ``tmux ARGS`` opens a window with no command: its default shell, a login
    one, interactive (it runs ``~/.bash_profile``, ``~/.bashrc``…: measured)."""
    rest, option = _tmux_command(args)
    for part in _tmux_parts(rest) if option is None else []:
        command = tmux_command(part[0])
        if command in _TMUX_NEW:
            j = 1
            while j < len(part) and part[j].startswith("-") and part[j] != "-":
                found = _short_value(part[j], _TMUX_NEW[command])
                j += 2 if part[j] != "--" and found and not found[1] else 1
                if part[j - 1] == "--":
                    break
            if j >= len(part):
                return True
    return False


def screen_shell(args: list[str]) -> bool:
    """Whether ``screen ARGS`` (one that starts a session) gives it no command: its
    default shell, interactive (measured: `screen -D -m` ran ``~/.bashrc``)."""
    return _screen("screen", args) is None


def _tmux(name: str, args: list[str]) -> Handoff | None:
    """tmux: the shell command of ``new-session``/``new-window``/``split-window`` is read
    as a line; any other command that may run programs (``send-keys`` types keys into a
    shell, ``run-shell``, ``if-shell``, ``source-file``, ``-f FILE``…) asks. A command is
    known by its alias or a unique prefix too (``run``, ``ru``: run-shell)."""
    if any("#(" in word for word in args):  # a format's `#(CMD)` runs CMD (measured: -c, -n)
        return Handoff("gives tmux a format running a command, #(…)", code="#(")
    rest, option = _tmux_command(args)
    if option is not None and _tmux_control(option):
        return Handoff(f"runs the tmux commands {name} {option} reads from its input", code=INPUT)
    if option is not None:
        letter = _short_value(option, "cf")
        return Handoff(
            f"gives tmux -{letter[0] if letter else ''}, which runs commands", code=option
        )
    if not rest:
        return None
    parts = _tmux_parts(rest)
    if len(parts) > 1:  # `run\;`, 'sleep 1;': each command read as `tmux WORDS`
        return Handoff(argv=tuple(("tmux", *part) for part in parts))
    if not parts:
        return None
    rest = [w[:-2] + ";" if w.endswith("\\;") and w != "\\;" else w for w in parts[0]]
    written = rest[0]
    command = tmux_command(written)
    chained = any(w in (";", "\\;") for w in rest)
    if command in _TMUX_QUIET and not chained:
        return None
    if command not in _TMUX_NEW or chained:
        shown = written if command in (None, written) else f"{written} ({command})"
        return Handoff(f"gives tmux the command {shown}, which may run programs", code=written)
    j = 1
    # The shell command runs in the client's folder (measured: `neww`, `splitw` too, the
    # server started elsewhere), or -c DIR's; a respawned pane in its own (run time).
    folder = _UNKNOWN + "(the pane's folder)" if command.startswith("respawn") else ""
    # `-e NAME=VALUE` sets a variable for the window's shell (measured: `tmux new -d -e
    # 'PROMPT_COMMAND=CMD'` and `-e BASH_ENV=./x 'sleep 1'` ran CMD and x, unasked)
    environment: list[str] = []
    while j < len(rest) and rest[j].startswith("-") and rest[j] != "-":
        word = rest[j]
        j += 1
        if word == "--":
            break
        found = _short_value(word, _TMUX_NEW[command])
        if found and not found[1]:
            j += 1
        value = (found[1] or (rest[j - 1] if j - 1 < len(rest) and j > 1 else "")) if found else ""
        if found and found[0] == "c":
            folder = value
            if "#" in folder:  # a tmux format (`#{pane_current_path}`): known at run time
                folder = _UNKNOWN + folder
        if found and found[0] == "e":
            environment.append(value)
    line = rest[j:]
    if not line and not environment:
        return None
    lines = (" ".join(line),) if line else ()
    return Handoff(lines=lines, folder=folder, environment=tuple(environment))


_SCREEN_VALUED = frozenset("ehpSTt")


def _screen(name: str, args: list[str]) -> Handoff | None:
    """GNU screen [OPTIONS] [CMD ARG…]; ``-X CMD`` (screen commands: ``stuff``, ``exec``),
    ``-c FILE`` (a screenrc) and ``-s SHELL`` ask."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        if word in ("-X", "-c", "-s", "-Logfile") or word.startswith(("-X", "-c", "-s")):
            return Handoff(f"gives screen {word}, which runs commands", code=word)
        if word in ("-D", "-d") and any(w[:1] == "-" and "m" in w[1:] for w in args):
            continue  # `-d -m`, `-D -m`: start detached (measured: `-D -m -c f` ran f's)
        if word in ("-r", "-x", "-R", "-RR", "-D", "-d", "-ls", "-list", "-wipe", "-v"):
            return None  # attach, detach, list: no command given
        found = _short_value(word, _SCREEN_VALUED)
        if found and not found[1]:
            i += 1
    rest = args[i:]
    return Handoff(argv=(tuple(rest),)) if rest else None


_BWRAP_TWO = frozenset(
    {"--bind", "--ro-bind", "--dev-bind", "--bind-try", "--ro-bind-try", "--dev-bind-try"}
    | {"--symlink", "--setenv", "--chmod", "--file", "--bind-data", "--ro-bind-data"}
    | {"--overlay-src", "--tmp-overlay", "--ro-overlay"}
)
_BWRAP_BINDS = frozenset(
    {"--bind", "--ro-bind", "--dev-bind", "--bind-try", "--ro-bind-try", "--dev-bind-try"}
)
_BWRAP_ONE = frozenset(
    {"--argv0", "--uid", "--gid", "--hostname", "--chdir", "--unsetenv", "--lock-file"}
    | {"--sync-fd", "--remount-ro", "--proc", "--dev", "--tmpfs", "--mqueue", "--dir"}
    | {"--seccomp", "--add-seccomp-fd", "--info-fd", "--json-status-fd", "--userns"}
    | {"--userns2", "--pidns", "--cap-add", "--cap-drop", "--exec-label", "--file-label"}
    | {"--block-fd", "--userns-block-fd", "--perms", "--size", "--disable-userns"}
)
_BWRAP_FLAGS = frozenset(
    {"--unshare-all", "--unshare-user", "--unshare-user-try", "--unshare-ipc"}
    | {"--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup"}
    | {"--unshare-cgroup-try", "--share-net", "--die-with-parent", "--as-pid-1"}
    | {"--new-session", "--clearenv", "--assert-userns-disabled", "--level-prefix"}
)


def _bwrap(name: str, args: list[str]) -> Handoff | None:
    """bubblewrap [OPTIONS] CMD…; ``--args FD`` reads more options (the command, maybe)
    from a descriptor, and an unknown option asks."""
    i = 0
    folder = ""
    remapped = ""  # an option making a path inside show other files than outside
    environment = []  # --setenv VAR VALUE (measured: `--setenv BASH_ENV ./x bash -c true` ran x)
    while i < len(args) and args[i].startswith("--"):
        word = args[i]
        i += 1
        if word == "--":
            break
        if word in _BWRAP_TWO:
            source, dest = [*args[i : i + 2], "", ""][:2]
            if word == "--setenv":
                environment.append(f"{source}={dest}")
            if word not in _BWRAP_BINDS or os.path.normpath(source) != os.path.normpath(dest):
                remapped = remapped or f"bwrap {word} {source} {dest}"
            i += 2
        elif word in _BWRAP_ONE:
            if word == "--chdir":
                folder = args[i] if i < len(args) else ""
            i += 1
        elif word in ("--help", "--version"):
            return None
        elif word not in _BWRAP_FLAGS:
            return Handoff(f"gives bwrap the option {word}, unknown here", code=word)
    rest = args[i:]
    # Its command runs in --chdir DIR, or here; a bind of another folder (measured:
    # `bwrap --dev-bind / / --bind /etc "$PWD" ls` listed /etc) makes git's files there
    # other than here: known only at run time.
    if remapped:
        folder = _UNKNOWN + remapped
    if not rest:
        return None
    return Handoff(argv=(tuple(rest),), folder=folder, environment=tuple(environment))


_TMUX_CHAINED = frozenset(
    {"send-keys", "send", "run-shell", "if-shell", "source-file", "pipe-pane", "pipep"}
    | {"display-popup", "popup", "new", "neww", "splitw", "respawnp", "respawnw", *_TMUX_NEW}
)
_NEWER: Final = {
    "sudoedit": _sudoedit,
    "entr": _entr,
    "sg": _sg,
    "at": _at,
    "batch": _at,
    "ip": _ip,
    "gdb": _gdb,
    "tmux": _tmux,
    "screen": _screen,
    "bwrap": _bwrap,
}
