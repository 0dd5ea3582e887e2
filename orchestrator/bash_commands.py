"""The commands a shell line runs, in the form ``Bash(...)`` approval rules are read against.

A rule such as ``Bash(git push:*)`` must catch the push however it is written: among other
commands (``make && git push``, ``if …; then git push; fi``, ``{ git push; }``,
``echo $(git push)``, ``function f { git push; }``), behind assignments and wrappers
(``GIT_SSH_COMMAND=x git push``, ``time``/``env``/``env -S``/``command``/``nice``/``sudo``/
``nohup``/``timeout 10``/``xargs`` …; the words ``xargs`` adds from its input are
unknown), inside ``sh -c``/``bash -o errexit -c``/``eval``
bodies, as a path (``/usr/bin/git push``), with git's global options
(``git -C /repo push``) or odd spacing (``git\\tpush``).

A word the shell builds when it runs (``$x``, ``"${IFS}push"``, ``$(echo push)``,
backticks, ``$'push'``, brace expansion ``{git,push}``) is not read: it carries
:data:`UNKNOWN`, and a rule matches a command whose known words agree with the rule's up
to an unknown one (``git $x`` asks for ``Bash(git push:*)``; ``echo $HOME`` does not). So
does ``git``'s subcommand when the line may define a git alias (``git -c alias.p=push p``)
or an alias's expansion (``alias p=git``).

:func:`commands` lists each simple command as its words joined by one space, with those
parts taken off. It errs toward finding too much: an approval asked for nothing costs a
question, one missed runs a command unasked. A line it cannot read with confidence (an
open quote, a command name held in a variable, nesting too deep) gives :data:`UNSURE`, and
every ``Bash(...)`` rule then matches: the call asks.

For :mod:`orchestrator.git_state`, :func:`read` also lists where git commands may run
(``cd DIR``, ``git -C DIR``…) and the variables set on the line that move git
(``GIT_DIR=…``, ``export GIT_CONFIG_GLOBAL=…``), as written: a part the shell builds
carries :data:`UNKNOWN`.

A command that hands code to an interpreter (``python3 -c``, a script file, ``make``…) is
read by :mod:`orchestrator.handoffs`: where that code is a shell line or a command
(``find -exec``, ``git -c core.pager=…``) it is read as one, otherwise :func:`read` lists
the hand-off as *unread*, with why, and every ``Bash(...)`` rule matches it too (unless
the agent's own ``tools`` allow that very command: :mod:`orchestrator.approve_rules`).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Final

from orchestrator import (
    command_runners,
    command_wrappers,
    git_places,
    handoffs,
    load_paths,
    shell_marks,
    shell_words,
)
from orchestrator.handoff_types import INPUT_IF_FED

UNSURE: Final = None
UNKNOWN: Final = shell_words.UNKNOWN  # marks a word the shell builds when it runs
_OPAQUE: Final = "\ue001"  # starts the entry of an unread hand-off among the commands found
_PLACE: Final = "\ue002"  # starts the entry of a folder a command runs git in (cd, git -C)
_SETTING: Final = "\ue003"  # starts the entry of a variable set on the line that moves git
_LOAD: Final = "\ue006"  # starts the entry of a variable naming a folder code is loaded from
MAX_DEPTH: Final = 8  # sh -c "eval '…'" nesting read before giving up (and asking)
# Wrappers (`sudo`, `env`, `timeout 1`…) read past before one command: more ask. Each is
# read from a copy of the words after it: `sudo ` * 20000 (100 KB) took 5 s unbounded.
MAX_WRAPPERS: Final = 32
# A longer line is not read (it asks): reading is linear, but 100k commands `a;a;…` in
# 200 KB took 2 s. The CLI cannot run a longer one anyway: it passes the line to bash as
# one argument, and Linux refuses an argument over 128 KiB (measured, 2.1.332: "Could not
# start /bin/bash: … exceed the OS exec argument limit (E2BIG)" for a 200 KB line).
MAX_LINE: Final = 128 * 1024

_PUNCTUATION = shell_words.PUNCTUATION
# A line that may give a command an input: a pipe or a redirection of it (`<`, `<<`,
# `<<<`, `<&`; `exec <f`, `{ …; } <f` too), anywhere, quoted or not (it errs toward asking).
_FEEDS = re.compile(r"\||<(?!\()")
# Config given on the same line that may make git run another subcommand than the one
# written: an alias, a config file to read (aliases), help.autocorrect (`git psuh`).
_GIT_CONFIG = re.compile(
    r"alias\.|include(if)?\.|autocorrect|GIT_CONFIG|\bHOME=|XDG_CONFIG_HOME=", re.I
)
_WORD_SPLIT = re.compile(r"[\s'\"(),\[\];]+")
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac"}
    | {"coproc"}
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_DECLARES = frozenset({"export", "declare", "typeset", "local", "readonly"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `${NAME:=word}`, `${NAME=word}`: the expansion assigns NAME (an exported one reaches the
# commands after it: measured, `export BASH_ENV; : ${BASH_ENV:=./x}; bash -c true` ran x)
_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?=")
_SETS = frozenset({"read", "printf", "mapfile", "readarray", "getopts"})  # name variables
_GIT_VALUED = git_places.GIT_VALUED


class _Unsure(Exception):
    """The line cannot be read with confidence."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class Unread:
    """A command that hands code to an interpreter in a form that cannot be read."""

    why: str  # "runs code given to python3 -c"
    command: str  # the command, normalised as in :func:`commands`
    written: str  # the same with its program as written (`.venv/bin/pytest -q`)
    code: str = ""  # code on the line: the word giving it (handoffs.Handoff.code)


@dataclass(frozen=True)
class Reading:
    """What a line runs: its commands (:data:`UNSURE` if it cannot say, then ``why``),
    and the hand-offs among them whose code cannot be read."""

    commands: list[str] | None
    unread: list[Unread]
    why: str = ""
    # Where git commands may run: ("cd", DIR) moves the shell (cd, pushd), ("at", DIR) one
    # command (git -C, --git-dir, env -C); DIR as written, UNKNOWN marking a built part.
    places: list[tuple[str, str]] = field(default_factory=list)
    settings: list[tuple[str, str]] = field(default_factory=list)  # (GIT_DIR, value)…
    loads: list[tuple[str, str]] = field(default_factory=list)  # (PYTHONPATH, value)…


def read(line: str) -> Reading:
    """Each simple command ``line`` runs, normalised, and its unread hand-offs."""
    if len(line) > MAX_LINE:
        return Reading(UNSURE, [], f"{len(line)} characters, over the {MAX_LINE} read")
    words = shell_marks.data_as_words(line)
    try:
        found = _commands(words, 0)
        # A here-document's data is not run where it is written (running that file later
        # on the line is a hand-off of its own): hand-offs are read with it left out.
        blank = shell_marks.data_as_words(line, blank=True)
        run = _commands(blank, 0) if blank != line else found
    except _Unsure as exc:
        return Reading(UNSURE, [], exc.why)
    if _GIT_CONFIG.search(words) and any(c.split(" ")[0] == "git" for c in found):
        found.append(f"git {UNKNOWN}")  # an alias may name any subcommand
    unread = [Unread(*c[1:].split(_OPAQUE)) for c in run if c.startswith(_OPAQUE)]
    if not _FEEDS.search(line):  # keys vim would read: the line gives no input to read
        unread = [u for u in unread if u.code != INPUT_IF_FED]
    places = [(c[1:3], c[4:]) for c in found if c.startswith(_PLACE)]
    if "CDPATH" in line:  # `cd x` may then go to any folder CDPATH names
        places = [
            (k, UNKNOWN + "CDPATH " + d if git_places.searched(k, d) else d) for k, d in places
        ]
    settings = [_pair(c[1:]) for c in found if c.startswith(_SETTING)]
    loads = [_pair(c[1:]) for c in found if c.startswith(_LOAD)]
    kept = [c for c in found if not c.startswith((_OPAQUE, _PLACE, _SETTING, _LOAD))]
    return Reading(kept, unread, "", places, settings, loads)


def _pair(assignment: str) -> tuple[str, str]:
    name, _, value = assignment.partition("=")
    return name, value


def commands(line: str) -> list[str] | None:
    """Each simple command ``line`` runs, normalised; :data:`UNSURE` if it cannot say."""
    return read(line).commands


def words(line: str) -> list[str]:
    """Every word of ``line``, quotes removed and split at spaces (``su -c 'git push'``
    gives su, -c, git, push), a path by its base name: where a rule's words may hide in
    arguments the shell hands to another program (``ssh``, ``su -c``, ``find -exec``).
    Here-documents that are data are plain words."""
    return [os.path.basename(w) or w for w in path_words(line)]


def path_words(line: str) -> list[str]:
    """Every word of ``line`` as :func:`words` gives it, a path whole (``~/.vim/p.vim``)."""
    line = shell_marks.data_as_words(line)
    try:
        tokens = [t for t in _tokens(line) if t != shell_marks.SEMICOLON]
    except _Unsure:
        tokens = line.split()
    # Split at quotes and brackets too: `os.system('git push')`, `run(['git','push'])`.
    return [w for t in tokens for w in _WORD_SPLIT.split(t) if w]


def _tokens(line: str) -> list[str]:
    # Backslash-newline continues the line; a backtick starts or ends a substitution.
    text = shell_marks.mark(line.replace("\\\n", "")).replace("`", "\n")
    # As shlex splits it (a newline separates commands: it is an operator here; no
    # comments: `a#b; git push` runs the push), in linear time.
    try:
        return shell_words.split(text)
    except ValueError:  # no closing quotation, an escape at the end
        raise _Unsure("an open quote or a trailing escape") from None


def _commands(line: str, depth: int) -> list[str]:
    if depth > MAX_DEPTH:
        raise _Unsure(f"commands nested more than {MAX_DEPTH} deep")
    tokens = _tokens(line)
    found: list[str] = []
    words: list[str] = []
    cuts: list[int] = []  # after these words a built one may end tmux's command
    skip_next = False
    chain = False  # the words are a tmux command after a `\\;` (`tmux new \\; run CMD`)
    named_tmux = False  # one of the words is tmux
    for token in tokens:
        if skip_next:  # a redirection's target
            skip_next = False
            continue
        tmux = chain or named_tmux  # kept as words are added: a long line stays linear
        # `\\;` splits here too (find -exec … \\; CMD); so does a word of `;|&` ending in `;`
        # after tmux's words, `';;'`, `\\;\\;`, `'|;'` (tmux ends its command at a word
        # ending in `;`: measured, `tmux new -d ';;' run CMD` ran CMD; unquoted, such a
        # word is a syntax error of bash's but `;;` in a `case`).
        bare = token.replace(shell_marks.SEMICOLON[1], "")
        if token == shell_marks.SEMICOLON or (
            tmux and bare != ";" and bare.endswith(";") and not bare.strip(";|&")
        ):
            found += _simple(_chained(words, chain), depth) + _cut(words, cuts, depth)
            words, cuts, chain, named_tmux = [], [], tmux, False
            continue
        if token and all(c in _PUNCTUATION for c in token):
            if ("<" in token or ">" in token) and "(" not in token and ")" not in token:
                if words and words[-1].isdigit():
                    words.pop()  # the descriptor of `2>&1`
                skip_next = True
                continue
            found += _simple(_chained(words, chain), depth) + _cut(words, cuts, depth)
            words, cuts, chain, named_tmux = [], [], False, False  # ; && || | & newline ( $(
            continue
        for name in _DEFAULTED.findall(token):  # `: ${BASH_ENV:=./x}` assigns it
            found += _assigned(f"{name}={UNKNOWN}(set by ${{{name}:=…}})", depth)
        if "$(" in token:  # a substitution inside double quotes runs too
            for inner in _substitutions(token):
                found += _commands(inner, depth + 1)
        words.append(token)
        if tmux and _MAY_END_TMUX.search(token):  # `tmux new -d x $s run CMD`, s=';'
            cuts.append(len(words))
        named_tmux = named_tmux or os.path.basename(token) == "tmux"
    return found + _simple(_chained(words, chain), depth) + _cut(words, cuts, depth)


# A word the shell builds whose end is built too (`$s`, `"${u:-;}"`, `$(cmd)`, `a*`): it
# may end in `;`, ending tmux's command (measured, tmux 3.3a: `s=';'; tmux new -d x $s run
# CMD` and `tmux new -d x ${u:-;} run CMD` ran CMD, unasked: read as new-session's line).
_MAY_END_TMUX = re.compile(UNKNOWN + r".*([$][\w@*#?$!-]+|[}\])*?'\"]|;)$", re.S)


def _cut(words: list[str], cuts: list[int], depth: int) -> list[str]:
    """The tmux commands that begin after each built word of ``cuts`` if it ends in `;`
    (each up to the next such word), read besides the command as written. One whose first
    word is an option is none: tmux refuses the whole line (nothing runs)."""
    found = []
    for start, end in itertools.pairwise([*cuts, len(words)]):
        if start < len(words) and not words[start].startswith("-"):
            found += _simple(["tmux", *words[start:end]], depth)
    return found


def _chained(words: list[str], chain: bool) -> list[str]:
    """A command after tmux's `\\;` is tmux's (its `if`, `run` no shell keyword or program):
    read as ``tmux WORDS``, by tmux's names, aliases and prefixes."""
    return ["tmux", *words] if chain and words else words


def _substitutions(token: str) -> list[str]:
    """The commands of each ``$(…)`` in a word (``"$(git rev-parse --show-toplevel)/src"``
    runs only ``git rev-parse …``; the ``/src`` after it is no command). An unclosed
    one runs to the end of the word. Nested ones are read with their outer one."""
    found = []
    start = token.find("$(")
    while start >= 0:
        depth, i = 1, start + 2
        while i < len(token) and depth:
            depth += {"(": 1, ")": -1}.get(token[i], 0)
            i += 1
        found.append(token[start + 2 : i - 1 if depth == 0 else i])
        start = token.find("$(", i)
    return found


def _simple(words: list[str], depth: int) -> list[str]:
    """One simple command, prefixes taken off: "" if nothing is left to run."""
    if depth > MAX_DEPTH:  # `find -exec find -exec …`: a command's command read as words
        raise _Unsure(f"commands nested more than {MAX_DEPTH} deep")
    extra: list[str] = []  # what the command's assignments hand over
    i = 0  # the words before i are read past: walked, not popped (linear in the words)
    wrappers = 0
    while i < len(words):
        head = words[i]
        base = os.path.basename(head)
        if _ASSIGNMENT.match(head):
            extra += _assigned(head, depth)
            i += 1
        elif head in _KEYWORDS or head == "$":
            i += 1
        elif head == "function":  # `function f { …; }`: the body follows
            i += 2
        elif base in command_wrappers.WRAPPERS:
            # Each wrapper's options are read from the words after it (a copy): bounded,
            # so that `sudo sudo …` (20,000 of them: 5 s) stays linear in the line.
            wrappers += 1
            if wrappers > MAX_WRAPPERS:
                raise _Unsure(f"more than {MAX_WRAPPERS} wrappers before a command")
            words = words[i:]
            i = 0
            if command_runners.held(base, words[1:]) is not None:
                break  # judged as a program, asking why (command_runners.of)
            if base == "env" and (split := command_wrappers.split_string(words[1:])) is not None:
                return extra + _commands(split, depth + 1)
            if base == "xargs":
                words = command_wrappers.xargs(words[1:])
                continue
            if base in command_wrappers.CHDIR:  # `env -C DIR git …` runs git there
                extra += [
                    _PLACE + "at " + d
                    for d in git_places.option_values(words[1:], *command_wrappers.CHDIR[base])
                ]
            if base == "nsenter":  # `nsenter -w/DIR git …` runs git there
                extra += [_PLACE + "at " + d for d in command_wrappers.nsenter_folders(words[1:])]
            for setting in command_wrappers.set_variables(base, words[1:]):  # strace -E
                extra += _assigned(setting, depth)
            if (home := command_wrappers.home_of(base, words[1:])) is not None:
                extra.append(_SETTING + f"HOME={home}")  # `sudo gdb` reads root's ~/.gdbinit
            if rooted := command_wrappers.new_root(base, words[1:]):  # its HOME: under it
                extra.append(_SETTING + f"HOME={UNKNOWN}{rooted}")
            if shown := command_wrappers.elsewhere(base, words[1:]):  # `sudo -i`: its home
                extra.append(_PLACE + "at " + UNKNOWN + shown)
            words = command_wrappers.after_options(words[1:], command_wrappers.WRAPPERS[base])
            if base in command_wrappers.OPERAND:
                words = words[1:]  # timeout's DURATION, chroot's NEWROOT
        elif head == "alias":  # `alias p=git`: p runs git and whatever words follow it
            values = [w.split("=", 1)[1] for w in words[i + 1 :] if "=" in w]
            return extra + [f"{c} {UNKNOWN}" for v in values for c in _commands(v, depth + 1) if c]
        elif head == "eval":
            return extra + _commands(" ".join(words[i + 1 :]), depth + 1)
        elif (
            os.path.basename(head) in command_wrappers.SHELLS
            and (body := command_wrappers.shell_body(words[i + 1 :])) is not None
        ):
            # what was read before it (`LD_PRELOAD=./x.so bash -c …`, `env -C DIR sh -c …`)
            # holds for the body: measured, `BASH_ENV=./x bash -c true` ran x, unasked
            return extra + _commands(body, depth + 1)
        else:
            break
    words = words[i:]
    if not words:
        return extra
    program = words[0]
    if any(c in program for c in ("$", "*", "?", UNKNOWN)):
        # the command's name is only known when the shell runs it
        raise _Unsure(f"the program {program.replace(UNKNOWN, '')} is only known at run time")
    program = os.path.basename(program) or program
    rest = words[1:]
    if program == "git":
        extra += [_PLACE + "at " + d for d in git_places.git_folders(rest, _GIT_VALUED)]
        extra += [e for w in _leading_options(rest, _GIT_VALUED) if (e := _exec_path(w))]
        rest = command_wrappers.after_options(rest, _GIT_VALUED)
    elif program in ("cd", "pushd"):
        extra.append(_PLACE + "cd " + git_places.cd_target(program, rest))
    command = " ".join([program, *rest])
    if program in _DECLARES:  # `export GIT_PAGER='…'`: the rest of the line uses it
        extra += _declared(program, rest, depth)
        extra += [c for w in rest if _ASSIGNMENT.match(w) for c in _assigned(w, depth)]
    if program in ("for", "select") and rest and _NAME.fullmatch(rest[0]):
        # `export BASH_ENV; for BASH_ENV in ./x; do bash -c true; done` ran x, unasked
        extra += _assigned(f"{rest[0]}={UNKNOWN}(set by {program})", depth)
    if program in _DECLARES or program in _SETS:  # `export GIT_DIR`, `read GIT_DIR`
        value = git_places.EXPORTED if program in _DECLARES else f"{UNKNOWN}(set by {program})"
        extra += [_SETTING + f"{w}={value}" for w in rest if git_places.GIT_SETTINGS.fullmatch(w)]
    if program in _SETS:  # `read GIT_ALLOW_PROTOCOL <<< ext`, `printf -v LD_PRELOAD …`
        named = [
            w
            for w in rest
            if w in handoffs.CODE_VARIABLES
            or w in handoffs.PROGRAM_VARIABLES
            or w in load_paths.PLANTED
        ]
        extra += [c for w in named for c in _assigned(f"{w}={UNKNOWN}(set by {program})", depth)]
    if program == "unset" and "HOME" in rest:  # tmux then reads the passwd entry's home
        extra.append(_SETTING + "HOME=")
    handoff = handoffs.of(words[0], words[1:]) or command_runners.of(program, words[1:])
    home = command_wrappers.home_of(program, words[1:]) if handoff is not None else None
    if program in ("su", "runuser") and home is not None:  # `su -c 'gdb'`: root's HOME
        extra.append(_SETTING + f"HOME={home}")
    if handoff is not None:
        if handoff.folder:  # where its lines and commands run (`tmux new -c DIR`)
            extra.append(_PLACE + "cd " + handoff.folder)
        if handoff.module:  # `python3 -m mod`: ./mod.py, looked up where the call runs
            extra.append(_LOAD + f"{program} -m {handoff.module}=.")
        if handoff.classpath:  # `javac A.java`: ./META-INF/services/…Processor, likewise
            extra.append(_LOAD + f"{load_paths.JAVAC}={handoff.classpath}")
        for setting in handoff.environment:  # `tmux new -e PROMPT_COMMAND=…`
            extra += _assigned(setting, depth) if "=" in setting else []
        for body in handoff.lines:
            extra += _commands(body, depth + 1)
        for argv in handoff.argv:
            extra += _simple(list(argv), depth + 1)
        if handoff.why is not None:
            written = " ".join(words)
            fields = (handoff.why, command, written, handoff.code)
            extra.append(_OPAQUE + _OPAQUE.join(fields))
    # make's command-line variables are in each recipe's environment, as if set before it
    extra += [c for w in handoffs.make_exports(program, rest) for c in _assigned(w, depth)]
    if folder := handoffs.make_folder(program, rest):  # `make -C sub`: its recipes run there
        extra.append(_PLACE + "at " + folder)
    return [command, *extra]


def _declared(program: str, rest: list[str], depth: int) -> list[str]:
    """What ``export``/``declare`` given ``rest`` set that its assignments as written do
    not show: a name the shell builds (measured: ``export {BASH_ENV,X}=./x``, ``n=BASH_ENV;
    export $n=./x`` then ``bash -c true`` ran x, unasked), and a name reference's target
    (``declare -n r=BASH_ENV; export r=./x`` ran x): set to a value known at run time."""
    options = [w for w in rest if w.startswith("-") and "=" not in w]
    reference = program != "export" and any("n" in w[1:] for w in options)  # export -n: no
    out: list[str] = []
    for word in rest:
        name, eq, value = word.partition("=")
        if word.startswith(("-", "+")) and not eq:
            continue
        if eq and not _NAME.fullmatch(name.split("[", 1)[0].rstrip("+")):
            shown = word.replace(UNKNOWN, "")
            raise _Unsure(f"{program} {shown} names a variable only known at run time")
        if reference:
            if not eq or not _NAME.fullmatch(value):  # `declare -n r; r=BASH_ENV`, `r=$n`
                shown = word.replace(UNKNOWN, "")
                raise _Unsure(f"the name reference {shown} is set at run time")
            out += _assigned(f"{value}={UNKNOWN}(set through {name})", depth)
    return out


def _assigned(assignment: str, depth: int) -> list[str]:
    """What ``NAME=value`` before a command hands over: ``GIT_SSH_COMMAND='…'`` a shell
    line the command runs (read), ``LD_PRELOAD=…`` code it loads (unread)."""
    name, _, value = assignment.partition("=")
    name = name.split("[", 1)[0].rstrip("+")
    if git_places.GIT_SETTINGS.fullmatch(name):  # read by git_state: the git state git then reads
        # HOME holds Python's user site too (`HOME=./h python3`: h/.local/…/x.pth)
        return [_SETTING + f"{name}={value}"] + (
            [_LOAD + f"HOME={value}"] if name == "HOME" else []
        )
    if name in handoffs.PROGRAM_VARIABLES or handoffs.CARGO_PROGRAMS.fullmatch(name):
        return _commands(value, depth + 1)
    if name in load_paths.PLANTED:  # `PYTHONPATH=.`: read where the call runs (approve_rules)
        return [_LOAD + f"{name}={value}"]
    # a value the shell builds may be code too (measured: `p=ext; GIT_ALLOW_PROTOCOL=$p
    # git fetch o` ran the ext:: URL of .git/remotes/o, unasked)
    if handoffs.variable_code(name, value):
        why = f"gives {name} code to load or run"
        return [_OPAQUE + _OPAQUE.join((why, assignment, assignment))]
    return []


def _leading_options(words: list[str], valued: frozenset[str]) -> list[str]:
    """The options before a command's first word that is not one (``git -C x st``)."""
    return words[: len(words) - len(command_wrappers.after_options(words, valued))]


def _exec_path(word: str) -> str:
    """``git --exec-path=DIR``: git runs ``DIR/git-SUBCOMMAND`` before any alias or
    builtin it lacks, as with GIT_EXEC_PATH=DIR (unread); alone, it prints the path."""
    if not word.startswith("--exec-path=") or not word.partition("=")[2]:
        return ""
    why = "gives git --exec-path programs to run"
    return _OPAQUE + _OPAQUE.join((why, word, word))


def gives_code(line: str) -> bool:
    """Whether ``line`` hands inline code to an interpreter anywhere, or cannot be read."""
    reading = read(line)
    return reading.commands is None or any(u.code for u in reading.unread)


handoffs.line_gives_code = gives_code  # a make variable's value is such a line
