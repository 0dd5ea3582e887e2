"""Programs whose options or program text give them commands to run, for
:mod:`orchestrator.handoffs`.

An awk program calling ``system()`` or piping to a command, a sed script with its ``e``
command, ``find -exec CMD ;``,
``git -c core.pager=…``/``--exec``/``submodule foreach``, ``tar --to-command=…``, ``rsync
-e …``, ``ssh -o ProxyCommand=…`` (and the command ``ssh HOST CMD`` runs there), ``scp -S``,
``ssh -F FILE``, ``vim -c``/``+CMD``/``-S FILE``, ``less +CMD``: a command given as a value
is read as a line or a command (:class:`Handoff` ``lines``/``argv``), editor commands and
config files are unread hand-offs.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

from orchestrator.handoff_types import INPUT, INPUT_IF_FED, Handoff
from orchestrator.shell_words import UNKNOWN

AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
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
TAR_PROGRAMS = frozenset(
    {"--to-command", "--use-compress-program", "-I", "--rsh-command", "--info-script", "-F"}
    | {"--new-volume-script", "--checkpoint-action"}
)
RSYNC_PROGRAMS = frozenset({"-e", "--rsh"})
# zip's test command (`-TT CMD`, run with the archive's name: measured, it ran CMD): a
# shell line.
ZIP_PROGRAMS = frozenset({"-TT", "--unzip-command"})
# coreutils split's `--filter=CMD`: each piece is written to `$SHELL -c CMD` (measured).
SPLIT_PROGRAMS = frozenset({"--filter"})
# emacs options giving Lisp to run (`--eval '(shell-command …)'`) or a file of it.
_EMACS_CODE = frozenset(
    {"--eval", "-eval", "--execute", "-execute", "-l", "--load", "-load", "-f", "--funcall"}
    | {"-funcall", "--script", "-script", "-x", "-e"}
)
# git's subcommands taking `--template DIR` (its hooks copied into the new repository).
_TEMPLATED: Final = frozenset({"clone", "init"})
_GIT_VALUE_OPTIONS = frozenset({"--upload-pack", "--receive-pack", "--exec"})
_GIT_SHORT_VALUE = {"-u": "clone", "-x": "rebase"}  # `git clone -u`, `git rebase -x`
# Programs whose options run commands (measured: `vim -es -c '!CMD'`, `vim +'!CMD'` and
# `make --eval='$(shell CMD)'` ran CMD without a terminal; `less +'!CMD'` ran nothing
# there, yet asks: with a terminal it runs). An editor command (`-c`, `--cmd`, `+CMD`) is
# code on the line: Ex commands run programs in many ways (`!`, `:terminal`, `system()`,
# `:py`, `:lua`), so any asks but a line number or a search (`+12`, `+/word`).
VIMS = frozenset({"vim", "vi", "nvim", "view", "vimdiff", "gvim", "ex", "gview", "evim"})
# vim under other names: restricted (`rvim`: measured, it ran `-c 'call writefile(…)'`
# and `redir`, not `!` or `py3`), or a build's own (`vim.basic`, `vim.tiny`).
_RESTRICTED = frozenset({"rvim", "rview", "rgvim", "rgview"})


def is_vim(name: str) -> bool:
    """Whether ``name`` is vim's (``vim``, ``nvim``, ``rvim``, ``vim.basic``…)."""
    return name in VIMS or name in _RESTRICTED or ("." in name and name.partition(".")[0] in VIMS)


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


def awk(name: str, args: list[str]) -> Handoff | None:
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


def sed(args: list[str]) -> Handoff | None:
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


def find(args: list[str]) -> Handoff | None:
    """``-exec CMD ;`` and the like; ``-execdir``/``-okdir`` run CMD in each found file's
    folder (measured: `find . -name m -execdir git st \\;` ran the alias of a repository
    below), a folder known only at run time."""
    argv: list[tuple[str, ...]] = []
    folder = ""
    i = 0
    while i < len(args):
        if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            if args[i].endswith("dir"):
                folder = UNKNOWN + f"(each folder of find {args[i]})"
            end = next((j for j in range(i + 1, len(args)) if args[j] in (";", "+")), len(args))
            argv.append(tuple(args[i + 1 : end]))
            i = end
        i += 1
    return Handoff(argv=tuple(argv), folder=folder) if argv else None


def _ext_url(word: str) -> bool:
    """Whether ``word`` gives git an ``ext::CMD`` URL (git runs CMD: measured, `git -c
    protocol.ext.allow=always ls-remote 'ext::sh x.sh'` ran x.sh), as a URL, a config
    value (``remote.o.url=ext::…``) or a URL rewrite (``url.ext::….insteadOf``), or lets
    git run one (``protocol.ext.allow``, ``protocol.allow``: a URL of the repository's
    config then runs)."""
    lowered = word.lower()
    return (
        lowered.startswith("ext::")
        or "=ext::" in lowered
        or "url.ext::" in lowered
        or (_PROTOCOL_ALLOW.match(lowered) is not None and not lowered.endswith("=never"))
    )


_PROTOCOL_ALLOW: Final = re.compile(r"protocol\.(ext\.)?allow=")


def git_program_key(key: str) -> bool:
    """Whether git runs the value of config ``key`` as a command (``core.pager``...)."""
    return _GIT_PROGRAM_KEY.fullmatch(key) is not None


def git_ext_allowed(key: str, value: str) -> bool:
    """Whether config ``key`` = ``value`` lets git run ``ext::`` URLs (but never)."""
    return _PROTOCOL_ALLOW.match(
        f"{key}={value}".lower()
    ) is not None and not value.lower().endswith("never")


# `git config`'s options taking a value, and its forms that write nothing (as options or,
# git 2.46+, as subcommands: `git config set KEY VALUE` writes).
_CONFIG_VALUED: Final = frozenset(
    {"-f", "--file", "--blob", "--type", "--default", "--comment", "--value", "--url"}
)
_CONFIG_READS: Final = frozenset(
    {"--get", "--get-all", "--get-regexp", "--get-urlmatch", "-l", "--list", "--unset"}
    | {"--unset-all", "--remove-section", "--rename-section", "-e", "--edit", "--get-color"}
    | {"--get-colorbool", "get", "list", "unset", "remove-section", "rename-section", "edit"}
    | {"get-color", "get-colorbool"}
)


def git_config_set(args: list[str]) -> str:
    """The ``KEY=VALUE`` a ``git config`` (``args``: its words after ``config``) writes
    that makes git run a command or read code ("" if none): a program key, a hooks folder,
    an include, an alias, an ``ext::`` URL or the setting allowing them (measured, git
    2.39: `git config core.fsmonitor ./x.sh; git status` and `git config --add
    protocol.ext.allow always; git fetch o` ran x.sh, unasked: git's state is read before
    the line runs)."""
    words: list[str] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in _CONFIG_READS:
            return ""
        elif word in _CONFIG_VALUED:
            skip = True
        elif not word.startswith("-") or word == "-":
            words.append(word)
    if words[:1] == ["set"]:
        words = words[1:]
    if len(words) < 2:  # `git config KEY`: reads it
        return ""
    key, value = words[0], words[1]
    runs = git_config_runs(key, value) or git_ext_allowed(key.lower(), value)
    return f"{key}={value}" if runs or _GIT_HOOKS_KEY.fullmatch(key) else ""


def git_config_runs(key: str, value: str) -> bool:
    """Whether config ``key`` set to ``value`` makes git run a command: a program key, or
    an ``ext::`` URL (or its rewrite, or the setting allowing them)."""
    return git_program_key(key) or _ext_url(f"{key}={value}")


def vim(name: str, args: list[str]) -> Handoff | None:
    """Editor commands on the line (``-c CMD``, ``--cmd CMD``, ``+CMD``), or a file of
    them (``-S FILE``, ``-u FILE``)."""
    ex_mode = name == "ex" or any(w in ("-e", "-E") or w.startswith("-es") for w in args)
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            break
        if word == "-s" and not ex_mode and after:  # typed keys (`:!CMD<CR>`), not silence
            return Handoff(f"runs the keys typed from the file {after} ({name} -s)")
        if word in ("-c", "--cmd") or (word.startswith("-c") and len(word) > 2) or _vim_c(word):
            return Handoff(f"runs the editor commands given to {name} {word[:5]}", code=word)
        if word.startswith("+") and not _VIM_MOVES.fullmatch(word):
            return Handoff(f"runs the editor commands given to {name} as {word[:1]}CMD", code=word)
        if word == "-l" and name == "nvim":  # nvim -l SCRIPT.lua: Lua run (vim's -l: lisp)
            return Handoff(f"runs the Lua script {after or '?'} (nvim -l)", code=word)
        script = _vim_script(word, after)
        if script is not None:
            return Handoff(f"runs the editor commands of the file {script} ({name} {word})")
    if ex_mode and not any(w in ("--version", "-h", "--help") for w in args):
        # Ex mode reads its commands from its input (measured, vim 9: `echo '!CMD' | vim
        # -es`, `vim -e <x.ex`, `ex -s f <<<'!CMD'` ran CMD, with -u NONE and --clean too).
        return Handoff(
            f"runs the editor commands {name} reads from its input (Ex mode)", code=INPUT
        )
    if not any(w in ("--version", "-h", "--help") for w in args):
        # With no terminal, vim reads typed keys from its input (measured, vim 9: `printf
        # ':!CMD\n:qa!\n' | vim f` ran CMD): asked where the line gives one (vim reading
        # an empty input exits; the CLI's Bash has no terminal).
        why = f"runs the keys {name} reads from its input (no terminal)"
        return Handoff(why, code=INPUT_IF_FED)
    return None


def _vim_c(word: str) -> bool:
    """A word of vim's short options ending in ``c``, whose command is the next word or
    the rest (measured: `vim -esNc '!CMD'` and `vim -Nc '!CMD'` ran CMD; they asked for
    nothing): the letters before it take no value (``-u FILE``, ``-T term``… would)."""
    if not re.fullmatch(r"-[A-Za-z]+c.*", word, re.S):
        return False
    for letter in word[1:]:
        if letter == "c":
            return True
        if letter in _VIM_VALUED:
            return False
    return False


def _vim_script(word: str, after: str) -> str | None:
    """The file of editor commands a word of vim's short options gives (measured, vim 9:
    `vim -NS x.vim`, `-Nu x.vim`, and `vim -S` alone or before an option, which loads
    Session.vim, ran the file; they asked for nothing): ``-S``/``-u``/``-U`` last in a
    cluster (its file the next word) or before an attached value."""
    if not re.fullmatch(r"-[A-Za-z]+.*", word, re.S) or word.startswith("--"):
        return None
    for k, letter in enumerate(word[1:], 1):
        if letter in "SuU":
            value = word[k + 1 :] or after
            if letter == "S" and (not value or value.startswith("-")):
                return "Session.vim"
            return None if value in ("NONE", "NORC", "DEFAULTS", "") else value
        if letter in _VIM_VALUED:
            return None
    return None


_VIM_VALUED: Final = frozenset("tqiTwWuUSVdr")  # vim's short options that take a value


def emacs(name: str, args: list[str]) -> Handoff | None:
    """Lisp given on the line (``--eval EXPR``, ``-f FUNC``) or a file of it (``-l FILE``,
    ``--script FILE``): it runs programs (``shell-command``, ``call-process``)."""
    for word in args:
        if word == "--":
            break
        option = word.split("=", 1)[0]
        if option in _EMACS_CODE and (name == "emacs" or option in ("-e", "--eval")):
            return Handoff(f"runs the Lisp given to {name} {option}", code=option)
    return None


def less(args: list[str]) -> Handoff | None:
    """``less +CMD``: a command run at the start (``+!CMD`` a shell command, ``+|`` a
    pipe, ``+v`` the editor); a line number or a search (``+G``, ``+/word``) runs none."""
    for word in args:
        if word == "--":
            break
        if word.startswith("+") and not _MOVES.fullmatch(word):
            return Handoff(f"runs the commands given to less as {word[:1]}CMD", code=word)
    return None


def ssh(name: str, args: list[str]) -> Handoff | None:
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


def man(args: list[str]) -> Handoff | None:
    """man-db: its pager (``-P PROG``, ``--pager=PROG``) and browser (``-HPROG``,
    ``--html=PROG``: measured, ``man -H'CMD' ls`` ran CMD with no terminal) are shell
    lines; a config file (``-C FILE``: measured, its ``DEFINE troff CMD`` ran on ``man -t``)
    cannot be read, as ``ssh -F`` (exempt by a rule naming ``-C``)."""
    lines: list[str] = []
    config = ""
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            break
        option, eq, value = word.partition("=")
        if word.startswith("--"):
            if option in ("--pager", "--html", "--config-file") and (eq or option != "--html"):
                value = value if eq else after
                if option == "--config-file":
                    config = config or value
                else:
                    lines.append(value)
            continue
        if word[:1] != "-":
            continue
        for j, c in enumerate(word[1:], 1):
            if c in "PCH":  # -H takes an attached value only (`man -H ls`: a browser's)
                value = word[j + 1 :] or (after if c != "H" else "")
                if c == "C":
                    config = config or value
                elif value:
                    lines.append(value)
                break
            if c in _MAN_VALUED:
                break
    why = None
    if config and config not in ("/dev/null",):
        why = f"runs the commands the man config {config} may give (man -C)"
    if why or lines:
        return Handoff(why, tuple(lines), code="-C" if why else "")
    return None


_MAN_VALUED: Final = frozenset("ELMmRSsepr")  # man's short options taking a value
_WGET_VALUED: Final = frozenset("oaiBtOTwQPUDRAIXlYe")  # wget's short options taking one


def wget(args: list[str]) -> Handoff | None:
    """wget's askpass command (``--use-askpass=CMD``, or the wgetrc command ``-e
    use_askpass=CMD``, its name's case, ``_`` and ``-`` ignored) is a program it runs before
    it connects (measured: `wget -e use_askpass=./a.sh URL` ran a.sh, refused as the
    connection was); a wgetrc given on the line (``--config=FILE``) cannot be read (as
    ``man -C``, exempt by a rule naming ``--config``)."""
    lines: list[str] = []
    config = ""
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            break
        option, eq, value = word.partition("=")
        value = value if eq else after
        if option in ("--use-askpass", "--execute", "--config"):
            if option == "--config":
                config = config or value
            elif option == "--use-askpass" or _askpass(value):
                lines.append(value.partition("=")[2] if option == "--execute" else value)
            continue
        if word[:1] != "-" or word[:2] == "--":
            continue
        for j, c in enumerate(word[1:], 1):
            if c == "e":
                command = word[j + 1 :] or after
                if _askpass(command):
                    lines.append(command.partition("=")[2])
                break
            if c in _WGET_VALUED:
                break
    why = None
    if config and config != "/dev/null":
        why = f"runs the askpass command the wgetrc {config} may give (wget --config)"
    if why or lines:
        return Handoff(why, tuple(lines), code="--config" if why else "")
    return None


def _askpass(command: str) -> bool:
    """Whether a wgetrc command (``use_askpass = CMD``) sets the askpass program."""
    return command.partition("=")[0].strip().lower().replace("_", "").replace("-", "") == (
        "useaskpass"
    )


def program_options(args: list[str], options: frozenset[str]) -> Handoff | None:
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


def git(args: list[str]) -> Handoff | None:
    lines: list[str] = []
    why: str | None = None
    code = ""
    seen: set[str] = set()  # the words before this one (`clone` before `-u`)
    for i, written in enumerate(args):
        value: str | None = None
        word, after = written, args[i + 1] if i + 1 < len(args) else None
        if word.startswith("--config-env="):  # `--config-env=KEY=VAR`, as `--config-env KEY=VAR`
            word, after = "--config-env", word.partition("=")[2]
        # Code on the line, exempt only by a rule naming the word giving it (`-c`, …).
        if not code and (
            _ext_url(word) or (word in ("-c", "--config-env") and _ext_url(after or ""))
        ):
            why, code = "gives git an ext:: URL, whose command git runs", word
        if word in ("-c", "--config-env") and UNKNOWN in (after or "").partition("=")[0]:
            # a key the shell builds may be one that runs code (measured: `git -c "$(echo
            # core.fsmonitor=./x.sh)" status` and `git -c "$kv" status` ran x.sh, unasked)
            why = f"gives git a config key known only at run time ({word})"
            code = code or word
            seen.add(word)
            continue
        if word == "--config-env" and after is not None:  # the value is in variable VAR
            key, _, variable = after.partition("=")
            if not code and (_GIT_HOOKS_KEY.fullmatch(key) or _GIT_PROGRAM_KEY.fullmatch(key)):
                why = f"gives git {key} from the variable {variable} (--config-env)"
                code = word
        elif word == "-c" and after is not None:
            key, _, value = after.partition("=")
            if _GIT_HOOKS_KEY.fullmatch(key):
                # code on the line: `Bash(git commit:*)` allows committing, not running the
                # files of a hooks folder the line names (measured: `git -c
                # init.templateDir=t clone` ran t/hooks/post-checkout, exempt by that rule)
                why = f"gives git {key}, which runs files"
                code = code or word
                value = None
            elif not _GIT_PROGRAM_KEY.fullmatch(key):
                value = None
            else:
                value = value.removeprefix("!")
        elif word in _GIT_VALUE_OPTIONS or _GIT_SHORT_VALUE.get(word, "\0") in seen:
            value = after
        elif "=" in word and word.split("=", 1)[0] in _GIT_VALUE_OPTIONS:
            value = word.split("=", 1)[1]
        elif (word == "--template" or word.startswith("--template=")) and seen & _TEMPLATED:
            # its hooks are copied into the new repository: clone runs post-checkout
            why = f"gives git {word.partition('=')[0]} a folder whose hooks git installs and runs"
            code = code or word
        elif word == "run" and "bisect" in seen:
            return Handoff(why, tuple(lines), (tuple(args[i + 1 :]),), code=code)
        elif word == "foreach" and "submodule" in seen:
            lines.append(" ".join(a for a in args[i + 1 :] if not a.startswith("-")))
            break
        if value is not None:
            lines.append(value)
        seen.add(word)
    return Handoff(why, tuple(lines), code=code) if why or lines else None


_SQLITE_VALUED: Final = frozenset({"-cmd", "-init", "-separator", "-newline", "-nullvalue"})
_SQLITE_VALUED_MORE: Final = frozenset({"-vfs", "-maxsize", "-mmap", "-pagecache", "-heap"})


def sqlite3(name: str, args: list[str]) -> Handoff | None:
    """sqlite3 runs dot-commands (``.shell CMD``, ``.system CMD``) and SQL given after the
    database, to ``-cmd``, or read from its input (measured, 3.40: `echo '.shell CMD' |
    sqlite3` ran CMD; it asked for nothing); ``load_extension()`` loads code."""
    i = 0
    while i < len(args):
        word, after = args[i], args[i + 1] if i + 1 < len(args) else ""
        option = "-" + word.lstrip("-")
        if option == "-cmd" and _sqlite_code(after):
            return Handoff(f"runs the commands given to {name} -cmd", code=word)
        if option == "-init":
            return Handoff(f"runs the commands of the file {after or '?'} ({name} -init)")
        if word.startswith("-") and word != "-":
            i += 2 if option in _SQLITE_VALUED | _SQLITE_VALUED_MORE else 1
            continue
        break
    rest = args[i + 1 :]  # after the database
    found = next((w for w in rest if _sqlite_code(w)), None)
    if found is not None:
        return Handoff(f"runs the commands given to {name} on its line", code=found)
    if rest:
        return None  # SQL given: the input is not read
    return Handoff(f"runs the commands {name} reads from its input", code=INPUT_IF_FED)


def _sqlite_code(word: str) -> bool:
    """A dot-command (any: `.shell`, `.system`, `.once |CMD`, `.read`…) or SQL loading an
    extension."""
    return word.lstrip().startswith(".") or "load_extension" in word.lower()
