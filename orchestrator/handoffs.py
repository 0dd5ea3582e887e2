"""Commands that hand code to an interpreter, for the reading of :mod:`orchestrator.bash_commands`.

An approval rule names a command (``Bash(git push:*)``); a line that hands code to an
interpreter runs whatever that code says, and the shell line does not show it:
``python3 -c "import os; os.system('git push')"``, ``perl -e``, ``node -e``, a here-document
or a pipe into ``python3 -``/``sh``, a script file (``bash deploy.sh``, ``./deploy.sh``,
``source env.sh``), a recipe the agent may have written (``make``, ``npm run``), an awk
program calling ``system``, a sed script with its ``e`` command. Such a hand-off is
*unread*: :func:`of` says why (``runs code given to python3 -c``), and every ``Bash(…)``
rule then matches, as for a line that cannot be read.

Where the code handed over is itself a shell line or a command, it is read instead:
``find -exec CMD ;``, ``git -c core.pager='…'``, ``git rebase --exec '…'``,
``git submodule foreach '…'``, ``GIT_SSH_COMMAND='…' git fetch`` (:class:`Handoff` ``lines``
and ``argv``).

The line drawn: code *named by the line* (inline, on stdin, a file it names, a recipe or
package script it names) is unread; a program that loads project files by its own design
(pytest's conftest.py, git hooks, a build script of cargo or pip) is judged by its name.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Final

from orchestrator import shell_words

_PYTHON = re.compile(r"(python|pypy)(\d+(\.\d+)?)?")
# Inline-code options (a short option may be in a cluster: `perl -lne`, `python3 -Ic`),
# the options whose value is the next word, and the options that only inform.
_INLINE: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "python": ("c", frozenset({"-W", "-X", "-Q", "--check-hash-based-pycs"})),
    "perl": ("eE", frozenset({"-I", "-M", "-m", "-C", "-x"})),
    "ruby": ("e", frozenset({"-I", "-r", "-C", "-E", "--encoding"})),
    "node": ("ep", frozenset({"-r", "--require", "--import", "--loader", "-C", "--conditions"})),
    "php": ("rRBE", frozenset({"-c", "-d", "-z", "-t", "-S", "-F"})),
    "lua": ("e", frozenset({"-l"})),
    "Rscript": ("e", frozenset()),
    "pwsh": ("c", frozenset({"-File", "-f"})),
    "osascript": ("e", frozenset({"-l"})),
    "tclsh": ("", frozenset()),
    "expect": ("c", frozenset({"-f"})),
}
_FAMILY: Final[dict[str, str]] = {
    "nodejs": "node",
    "ts-node": "node",
    "tsx": "node",
    "luajit": "lua",
    "powershell": "pwsh",
}
_INLINE_LONG = frozenset({"--eval", "--print", "-Command", "-command", "--command"})
_INFO = frozenset({"-V", "--version", "-v", "-h", "--help"})  # alone, they only inform
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish", "csh", "tcsh"})
_SHELL_VALUED = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
_AWK_VALUED = frozenset({"-F", "-v", "--assign", "--field-separator"})
# An awk program runs a command with system() or a pipe (`print | "sh"`, `"cmd" | getline`).
_AWK_RUNS = re.compile(r"\bsystem\s*\(|(?<!\|)\|(?!\|)|@load")
# A sed script runs a command with its `e` command or the `e` flag of `s///e` (GNU sed).
_SED_RUNS = re.compile(
    r"(?:^|[;\n{}]|[0-9$/])\s*e(?:\s|;|$)"
    # one way only to read each character (a backslash pair, or a character that is
    # neither the delimiter nor a backslash): no backtracking blow-up on `s/\\\\…`
    r"|s(?P<d>[^\\\n])(?:\\.|(?!(?P=d))[^\\])*(?P=d)(?:\\.|(?!(?P=d))[^\\])*(?P=d)"
    r"[gpiImM0-9w]*e",
    re.S,
)
_LONGEST = 64 * 1024  # a longer sed script is not searched (quadratic at worst): it asks
_MAKES = frozenset({"make", "gmake", "bmake", "just", "task", "rake", "invoke"})
# A variable given to make on its line (`make CC=clang`): its value is code when make
# runs it at once (`X!=CMD`), when it holds a make reference (`$(shell CMD)`, `$(eval …)`)
# or a word the shell builds (that may hold one), or shell code a recipe using it runs
# (`CC='gcc; CMD'`: measured, ran CMD), or a program given inline code (`CC='python3 -c …'`).
_MAKE_ASSIGNMENT = re.compile(r"([^\s:#=!?+-][^\s:#=!?+]*)\s*(:::?=|::?=|[!?+]?=)(.*)", re.S)
_MAKE_CODE = re.compile(r"[$;&|<>`()\n" + shell_words.UNKNOWN + "]")
_PACKAGE_MANAGERS = frozenset({"npm", "yarn", "pnpm", "bun", "deno"})
# Their subcommands that run a script of package.json (or code given inline / in a file);
# yarn and pnpm also run a script named as their first word (`yarn build`).
_SCRIPT_RUNNERS = frozenset(
    {"run", "run-script", "rum", "urn", "test", "t", "tst", "start", "stop", "restart"}
    | {"exec", "x", "dlx", "eval", "task", "it", "install-test", "cit", "explore"}
)
_PM_BUILTINS = frozenset(
    {"install", "i", "add", "remove", "rm", "uninstall", "ci", "info", "view", "list", "ls"}
    | {"outdated", "audit", "why", "version", "--version", "-v", "help", "--help", "init"}
    | {"config", "cache", "login", "logout", "whoami", "publish", "pack", "link", "upgrade"}
    | {"update", "up", "fmt", "lint", "check", "doc", "search", "prune", "dedupe", "set"}
)
# git settings and options whose value is a shell command git runs (`sh -c VALUE`).
_GIT_PROGRAM_KEY = re.compile(
    r"(core\.(pager|editor|sshcommand|askpass|fsmonitor)|sequence\.editor|pager\..*"
    r"|diff\.external|diff\..*\.(textconv|command)|filter\..*\.(clean|smudge|process)"
    r"|credential\.(.*\.)?helper|gpg\.(.*\.)?program|merge\..*\.driver|interactive\.difffilter"
    r"|uploadpack\.packobjectshook|remote\..*\.(uploadpack|receivepack)|alias\..*"
    r"|(difftool|mergetool|browser|man)\..*\.cmd|core\.(gitproxy|alternaterefscommand)"
    r"|submodule\..*\.update|sendemail\.(sendmailcmd|tocmd|cccmd))",
    re.I,
)
_GIT_HOOKS_KEY = re.compile(r"core\.hookspath|include(if)?\..*|init\.templatedir", re.I)
# Options whose value is a command the program runs (through the shell): tar's
# `--to-command`, `--checkpoint-action=exec=`, `-I`; rsync's `-e` (measured: they ran a
# push unasked, the options' values being unread).
_TAR_PROGRAMS = frozenset(
    {"--to-command", "--use-compress-program", "-I", "--rsh-command", "--info-script", "-F"}
    | {"--new-volume-script", "--checkpoint-action"}
)
_RSYNC_PROGRAMS = frozenset({"-e", "--rsh"})
_GIT_VALUE_OPTIONS = frozenset({"--upload-pack", "--receive-pack", "--exec"})
_GIT_SHORT_VALUE = {"-u": "clone", "-x": "rebase"}  # `git clone -u`, `git rebase -x`
# Variables holding a command the program runs through the shell, or code it loads.
PROGRAM_VARIABLES: Final = frozenset(
    {"GIT_SSH_COMMAND", "GIT_SSH", "GIT_PAGER", "PAGER", "GIT_EDITOR", "EDITOR", "VISUAL"}
    | {"GIT_SEQUENCE_EDITOR", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS", "MANPAGER"}
    | {"GIT_PROXY_COMMAND", "LESSOPEN", "LESSCLOSE", "BROWSER"}
)
# Variables naming code a program loads (a value of NODE_OPTIONS only when it loads a file:
# `NODE_OPTIONS=--max-old-space-size=4096` is everyday).
CODE_VARIABLES: Final[dict[str, re.Pattern[str]]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "BASH_ENV": ".",
        "LD_PRELOAD": ".",
        "LD_AUDIT": ".",
        "GIT_EXEC_PATH": ".",
        "GIT_CONFIG_PARAMETERS": ".",
        "PERL5OPT": ".",
        "RUBYOPT": ".",
        "NODE_OPTIONS": r"(^|\s)(-r|--require|--import|--(experimental-)?loader)\b",
        "LESS": r"(^|\s)\+",  # less's options: `+CMD` as on its line (below)
        "VIMINIT": ".",  # Ex commands vim runs first
        "EXINIT": ".",
        "MAKEFLAGS": r"eval|(^|\s)-\w*E",  # make's options: `--eval` as on its line
        "GNUMAKEFLAGS": r"eval|(^|\s)-\w*E",
    }.items()
}
# Environment managers whose `run` runs a command as its words (`uv run python3 x.py`).
_RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "hatch", "rye", "conda", "mamba"})
_RUNNER_VALUED = frozenset(
    {"--with", "--python", "-p", "--env-file", "--group", "--extra", "-n", "--name", "-e"}
    | {"--package", "--directory", "--project", "--prefix", "--env"}
)
_SYSTEM_DIRS = ("/usr/", "/bin/", "/sbin/", "/nix/", "/opt/")
# Programs whose options run commands (measured: `vim -es -c '!CMD'`, `vim +'!CMD'` and
# `make --eval='$(shell CMD)'` ran CMD without a terminal; `less +'!CMD'` ran nothing
# there, yet asks: with a terminal it runs). An editor command (`-c`, `--cmd`, `+CMD`) is
# code on the line: Ex commands run programs in many ways (`!`, `:terminal`, `system()`,
# `:py`, `:lua`), so any asks but a line number or a search (`+12`, `+/word`).
_VIMS = frozenset({"vim", "vi", "nvim", "view", "vimdiff", "gvim", "ex", "gview", "evim"})
_VIM_SCRIPTS = frozenset({"-S", "-u", "-U"})  # a file of editor commands (`-u NONE`: none)
_MOVES = re.compile(r"\+*(\d*[gGpP%F]?|[/?&].*)", re.S)  # less `+12`, `+G`, `+/word`
_VIM_MOVES = re.compile(r"\+(\d*|/.*)", re.S)  # vim `+12`, `+/word` (`+G` is the Ex `:G`)
# The options taking a value, of ssh, scp and sftp (scp's -p preserves times; ssh's is a port)
_SSH_VALUED: Final = {
    "ssh": frozenset("BbcDEeFIiJLlmOopQRSWw"),
    "scp": frozenset("cDFiJloPSX"),
    "sftp": frozenset("BbcDFiJloPRSsX"),
}
# ssh -o keys whose value is a command: run here (ProxyCommand, LocalCommand,
# KnownHostsCommand) or on the host (RemoteCommand); the host's command is read too.
_SSH_COMMANDS = re.compile(
    r"(proxycommand|localcommand|knownhostscommand|remotecommand)\s*[= ]\s*(.*)", re.I | re.S
)


@dataclass(frozen=True)
class Handoff:
    """What a command hands over: code that cannot be read (``why``), shell lines that
    can (``lines``), commands given as words (``argv``)."""

    why: str | None = None
    lines: tuple[str, ...] = ()
    argv: tuple[tuple[str, ...], ...] = field(default=())
    # Code on the line or its input (not in a file): the word that gives it (`-c`,
    # `--eval`, `-`), or INPUT. An allow rule exempts it only if it names that word.
    code: str = ""


INPUT: Final = "<input>"  # code read from a pipe or a here-document, no option giving it


def of(head: str, args: list[str]) -> Handoff | None:
    """What the command ``head args…`` (its program as written, quotes removed) hands to
    an interpreter, if anything."""
    name = head.rsplit("/", 1)[-1]
    if (name in _RUNNERS and args[:1] == ["run"]) or name in ("npx", "bunx", "pnpx"):
        inner = _after_runner_options(args[1:] if name in _RUNNERS else args)
        return Handoff(argv=(tuple(inner),)) if inner else None
    family = _family(name)
    if family is not None:
        return _interpreter(name, family, args)
    if name in _SHELLS:
        return _shell(name, args)
    if name in ("source", "."):
        return Handoff(f"runs the file {_first(args) or '?'} in this shell ({name})")
    if name in _AWKS or (name == "busybox" and args[:1] == ["awk"]):
        return _awk(name, args[1:] if name == "busybox" else args)
    if name == "sed":
        return _sed(args)
    if name == "find":
        return _find(args)
    if name in ("tar", "gtar", "bsdtar", "rsync"):
        return _program_options(args, _TAR_PROGRAMS if name != "rsync" else _RSYNC_PROGRAMS)
    if name == "git":
        return _git(args)
    if name in _MAKES:
        if _informs(args):
            return None
        return _make(name, args)
    if name in _VIMS:
        return _vim(name, args)
    if name == "less":
        return _less(args)
    if name in ("ssh", "scp", "sftp"):
        return _ssh(name, args)
    if name in _PACKAGE_MANAGERS:
        return _package_manager(name, args)
    if "{}" in head:
        return Handoff("runs files found at run time as programs")
    if "/" in head and not head.startswith(_SYSTEM_DIRS):
        return Handoff(f"runs the file {head}")
    return None


def git_program_key(key: str) -> bool:
    """Whether git runs the value of config ``key`` as a command (``core.pager``...)."""
    return _GIT_PROGRAM_KEY.fullmatch(key) is not None


def _after_runner_options(args: list[str]) -> list[str]:
    """The command ``uv run``/``poetry run``/``npx`` runs: after its options."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "--":
            return args[i + 1 :]
        i += 2 if args[i] in _RUNNER_VALUED else 1
    return args[i:]


def _family(name: str) -> str | None:
    if _PYTHON.fullmatch(name):
        return "python"
    base = re.sub(r"(?<=[a-z])[\d.]+$", "", name)
    if base in _INLINE:
        return base
    return _FAMILY.get(base)


def _informs(args: list[str]) -> bool:
    return bool(args) and all(a in _INFO for a in args)


def _first(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def _interpreter(name: str, family: str, args: list[str]) -> Handoff | None:
    letters, valued = _INLINE[family]
    valued_letters = {v[1] for v in valued if len(v) == 2}  # `-Wdefault`: the rest is a value
    if _informs(args):
        return None
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if word == "-" or not word.startswith("-"):
            break
        if word in _INLINE_LONG or word.split("=", 1)[0] in _INLINE_LONG:
            option = word.split("=", 1)[0]
            return Handoff(f"runs code given to {name} {option}", code=option)
        if word in valued:
            i += 2
            continue
        if family == "python" and word.startswith("-m"):
            return None  # a module named like a program (python3 -m pytest)
        if not word.startswith("--"):
            for c in word[1:]:
                if c in letters:
                    return Handoff(f"runs code given to {name} -{c}", code=word)
                if c in valued_letters:
                    break
        i += 1
    if i >= len(args) or args[i] == "-":
        return Handoff(
            f"runs code {name} reads from its input (a pipe or here-document)",
            code=args[i] if i < len(args) else INPUT,
        )
    return Handoff(f"runs the file {args[i]} with {name}")


def _shell(name: str, args: list[str]) -> Handoff | None:
    """A shell without ``-c`` (that one is read as a line): a script or its input."""
    i = 0
    while i < len(args) and len(args[i]) > 1 and args[i][0] in "-+":
        if args[i] in ("--version", "--help"):
            return None
        if args[i] == "--":
            i += 1
            break
        stdin = args[i][0] == "-" and not args[i].startswith("--") and "s" in args[i]
        i += 2 if args[i] in _SHELL_VALUED else 1
        if stdin:
            i = len(args)
    if i >= len(args) or args[i] == "-":
        return Handoff(
            f"runs commands {name} reads from its input (a pipe or here-document)",
            code=args[i] if i < len(args) else INPUT,
        )
    return Handoff(f"runs the file {args[i]} with {name}")


def _awk(name: str, args: list[str]) -> Handoff | None:
    programs: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        if word in ("-f", "--file") or word.startswith("-f"):
            return Handoff(f"runs the awk program of a file ({name} -f)")
        if word in ("-e", "--source", "--exec", "-E"):
            programs.append(args[i + 1] if i + 1 < len(args) else "")
            i += 2
            continue
        if word == "--":
            i += 1
            break
        i += 2 if word in _AWK_VALUED else 1
    if not programs and i < len(args):
        programs.append(args[i])
    if any(_AWK_RUNS.search(p) for p in programs):
        return Handoff(f"runs commands from the {name} program (system or a pipe)", code=INPUT)
    return None


def _sed(args: list[str]) -> Handoff | None:
    scripts: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("-f", "--file") or word.startswith("--file="):
            return Handoff("runs the sed script of a file (its e command runs programs)")
        if word in ("-e", "--expression"):
            scripts.append(args[i + 1] if i + 1 < len(args) else "")
            i += 2
            continue
        if word.startswith("--expression="):
            scripts.append(word.split("=", 1)[1])
        elif not word.startswith("-") and not scripts:
            scripts.append(word)
            break
        i += 1
    if any(len(s) > _LONGEST or _SED_RUNS.search(s) for s in scripts):
        return Handoff("runs commands from the sed script (its e command or s///e)", code=INPUT)
    return None


def _find(args: list[str]) -> Handoff | None:
    argv: list[tuple[str, ...]] = []
    i = 0
    while i < len(args):
        if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(args)) if args[j] in (";", "+")), len(args))
            argv.append(tuple(args[i + 1 : end]))
            i = end
        i += 1
    return Handoff(argv=tuple(argv)) if argv else None


def _make(name: str, args: list[str]) -> Handoff:
    """A recipe file (a rule naming the program exempts it), or make code on the line:
    ``--eval=TEXT``/``-E TEXT``, a makefile read from the input (``-f -``), or a
    variable holding code (``CC='$(shell CMD)'``; an exact rule on the command exempts it)."""
    if name in ("make", "gmake", "bmake"):
        for word in args:
            if (code := _make_variable_code(word)) is not None:
                return Handoff(f"gives {name} {code} in the variable {word}", code=word)
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            break
        option, eq, value = word.partition("=")
        if name in ("make", "gmake") and (option == "--eval" or word == "-E"):
            return Handoff(f"runs make code given to {name} {option}", code=option)
        if (word in ("-f", "--file", "--makefile") and after in ("-", "/dev/stdin")) or (
            option in ("--file", "--makefile") and eq and value in ("-", "/dev/stdin")
        ):
            return Handoff(f"runs a makefile {name} reads from its input", code=word)
    return Handoff(f"runs recipes written in {name}'s file")


def _make_variable_code(word: str) -> str | None:
    """What code the variable ``word`` given to make holds (``X!=CMD``: a command it runs
    at once), or None for a plain value (``CC=clang``, ``CFLAGS=-O2 -g``, ``DESTDIR=./out``)."""
    found = _MAKE_ASSIGNMENT.fullmatch(word)
    if found is None:
        return None
    _, operator, value = found.groups()
    if operator == "!=":
        return "a command to run"
    if _MAKE_CODE.search(value):
        return "code"
    inner = value.split()
    handoff = of(inner[0], inner[1:]) if inner else None
    return "code" if handoff is not None and handoff.code else None


def _vim(name: str, args: list[str]) -> Handoff | None:
    """Editor commands on the line (``-c CMD``, ``--cmd CMD``, ``+CMD``), or a file of
    them (``-S FILE``, ``-u FILE``)."""
    ex_mode = name == "ex" or any(w in ("-e", "-E") or w.startswith("-es") for w in args)
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            break
        if word == "-s" and not ex_mode and after:  # typed keys (`:!CMD<CR>`), not silence
            return Handoff(f"runs the keys typed from the file {after} ({name} -s)")
        if word in ("-c", "--cmd") or (word.startswith("-c") and len(word) > 2):
            return Handoff(f"runs the editor commands given to {name} {word[:5]}", code=word)
        if word.startswith("+") and not _VIM_MOVES.fullmatch(word):
            return Handoff(f"runs the editor commands given to {name} as {word[:1]}CMD", code=word)
        if word in _VIM_SCRIPTS and after not in ("NONE", "NORC", "DEFAULTS", ""):
            return Handoff(f"runs the editor commands of the file {after} ({name} {word})")
    return None


def _less(args: list[str]) -> Handoff | None:
    """``less +CMD``: a command run at the start (``+!CMD`` a shell command, ``+|`` a
    pipe, ``+v`` the editor); a line number or a search (``+G``, ``+/word``) runs none."""
    for word in args:
        if word == "--":
            break
        if word.startswith("+") and not _MOVES.fullmatch(word):
            return Handoff(f"runs the commands given to less as {word[:1]}CMD", code=word)
    return None


def _ssh(name: str, args: list[str]) -> Handoff | None:
    """The commands ssh runs: ``-o ProxyCommand=…`` (here), scp's and sftp's ``-S PROGRAM``
    and ``-D PROGRAM``, and the
    command given after the host (there: read as a line, as ``sh -c`` is). ssh reads
    options before the host and again after it (``ssh h -o ProxyCommand=… cmd``); scp and
    sftp anywhere (glibc's getopt)."""
    lines: list[str] = []
    argv: list[tuple[str, ...]] = []
    configs: list[str] = []
    i = _ssh_options(name, args, 0, lines, argv, configs=configs)
    if name != "ssh":
        while i < len(args):
            i = _ssh_options(name, args, i + 1, lines, argv, configs=configs)
    elif i < len(args):  # the host, its options, then its command
        i = _ssh_options(name, args, i + 1, lines, argv, configs=configs)
        if i < len(args):
            lines.append(" ".join(args[i:]))
    # A config file may hold ProxyCommand/LocalCommand/Match exec (measured: `ssh -F FILE
    # h` ran its ProxyCommand); ssh's own ~/.ssh/config is read by design, as a conftest.
    why = f"runs the commands the ssh config {configs[0]} may give ({name} -F)" if configs else None
    if why or lines or argv:
        return Handoff(why, tuple(lines), tuple(argv), code="-F" if why else "")
    return None


def _ssh_options(
    name: str,
    args: list[str],
    i: int,
    lines: list[str],
    argv: list[tuple[str, ...]],
    *,
    configs: list[str],
) -> int:
    """Reads the options from ``args[i]`` into ``lines``/``argv``/``configs`` (``-F``
    files); where they end."""
    while i < len(args) and args[i].startswith("-") and len(args[i]) > 1:
        word = args[i]
        if word == "--":
            return i + 1
        letters = word[1:]
        for j, c in enumerate(letters):
            if c in _SSH_VALUED[name]:
                value = letters[j + 1 :] or (args[i + 1] if i + 1 < len(args) else "")
                if not letters[j + 1 :]:
                    i += 1
                if c == "o" and (found := _SSH_COMMANDS.fullmatch(value.strip())):
                    lines.append(found[2])
                elif c in "SD" and name != "ssh":  # a program run instead of ssh / sftp-server
                    argv.append((value,))
                elif c == "F" and value not in ("none", "/dev/null"):  # ssh: none reads none
                    configs.append(value)
                break
        i += 1
    return i


def _program_options(args: list[str], options: frozenset[str]) -> Handoff | None:
    """The commands given as option values (``--to-command=CMD``, ``-e CMD``)."""
    lines: list[str] = []
    for word, after in itertools.pairwise([*args, ""]):
        name, eq, value = word.partition("=")
        if name in options:
            value = value if eq else after
            if name == "--checkpoint-action":  # exec=CMD; the other actions run nothing
                if not value.startswith("exec="):
                    continue
                value = value.removeprefix("exec=")
            lines.append(value)
    return Handoff(lines=tuple(lines)) if lines else None


def _git(args: list[str]) -> Handoff | None:
    lines: list[str] = []
    why: str | None = None
    seen: set[str] = set()  # the words before this one (`clone` before `-u`)
    for i, word in enumerate(args):
        value: str | None = None
        after = args[i + 1] if i + 1 < len(args) else None
        if word in ("-c", "--config-env") and after is not None:
            key, _, value = after.partition("=")
            if _GIT_HOOKS_KEY.fullmatch(key):
                why = f"gives git {key}, which runs files"
                value = None
            elif not _GIT_PROGRAM_KEY.fullmatch(key):
                value = None
            else:
                value = value.removeprefix("!")
        elif word in _GIT_VALUE_OPTIONS or _GIT_SHORT_VALUE.get(word, "\0") in seen:
            value = after
        elif "=" in word and word.split("=", 1)[0] in _GIT_VALUE_OPTIONS:
            value = word.split("=", 1)[1]
        elif word == "run" and "bisect" in seen:
            return Handoff(why, tuple(lines), (tuple(args[i + 1 :]),))
        elif word == "foreach" and "submodule" in seen:
            lines.append(" ".join(a for a in args[i + 1 :] if not a.startswith("-")))
            break
        if value is not None:
            lines.append(value)
        seen.add(word)
    return Handoff(why, tuple(lines)) if why or lines else None


def _package_manager(name: str, args: list[str]) -> Handoff | None:
    sub = _first(args)
    if sub is None or sub in _PM_BUILTINS:
        return None
    if sub in _SCRIPT_RUNNERS or name in ("yarn", "pnpm", "bun", "deno"):
        return Handoff(f"runs the package script or code of {name} {sub}")
    return None
