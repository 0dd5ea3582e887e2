"""Whether a tool call matches an ``approve:`` rule, written in the CLI's permission syntax.

Only ``approve:`` rules are read here (``tools:`` and the sandbox go to the CLI as they
are), so every doubt is settled toward asking: a rule that matches too much costs the
approver a question, one that misses lets a call run unasked.

- ``Bash(prefix:*)``, ``Bash(exact)``, ``Bash(glob *)``: checked against every command the
  line runs, normalised (:mod:`orchestrator.bash_commands`), and against the line's parts
  as written; a rule also matches when its words appear anywhere in the line
  (``find . -exec git push \\;``; a glob's final ``*`` may cover nothing there). A
  command holding a word the shell builds (``git $x``) matches a rule whose words agree
  with it up to that word. A line that cannot be read with confidence matches, and so
  does a line that hands code to an interpreter in a form that cannot be read
  (``python3 -c``, a script file, ``make``: :mod:`orchestrator.handoffs`), unless the
  agent's ``tools`` allow that very command with a ``Bash(...)`` rule of their own
  (``Bash(make:*)``): the operator said it runs without a question. Code on the line
  (``python3 -c``, a here-document into ``python3 -``) is exempt only by a rule naming
  the word that gives it (``Bash(python3 -c:*)``, not ``Bash(python3:*)``). With the hook's
  ``git`` lookup, what git's config and hooks make a git command run is read too
  (:mod:`orchestrator.git_state`); the agent's rules exempt none of that.
- ``Edit(...)`` covers every file-editing tool (Write, Edit, MultiEdit, NotebookEdit), as
  the CLI's Edit rules do, and so does a rule naming any of them; ``Read(...)`` covers the
  tools that read files: Read, Grep, Glob (and LS, NotebookRead). A search of a folder
  matches a rule on any path under it.
- Paths: a glob from the agent's folder, ``//abs`` absolute, ``~/`` the home folder.
- ``WebFetch(domain:host)``: the URL's host as the CLI reads it (:mod:`orchestrator.web_host`).
- ``mcp__server`` (every tool of it), ``mcp__server__tool``.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from orchestrator import (
    bash_commands,
    command_wrappers,
    git_places,
    git_state,
    globs,
    handoffs,
    load_paths,
    option_commands,
    program_configs,
    web_host,
)
from orchestrator.regularfile import FileRefused, read_regular_file
from orchestrator.roster._work import RULE_RE
from orchestrator.roster.work import FILE_TOOLS

READ_TOOLS: tuple[str, ...] = ("Read", "Grep", "Glob", "LS", "NotebookRead")
SEARCH_TOOLS = ("Grep", "Glob", "LS")  # they read a whole folder
# The one table of the fields naming the path a file tool writes or reads, by tool: the
# first is its path (a search tool's, when not given, is the agent's folder), the rest
# are read too (Glob's pattern). The hook checks each is text (policy.malformed).
PATH_FIELDS: dict[str, tuple[str, ...]] = {
    **{tool: ("file_path",) for tool in FILE_TOOLS if tool != "NotebookEdit"},
    "NotebookEdit": ("notebook_path",),
    "Read": ("file_path",),
    "NotebookRead": ("notebook_path",),
    "Grep": ("path",),
    "Glob": ("path", "pattern"),
    "LS": ("path",),
}


def written_path(tool: str, tool_input: dict[str, Any]) -> str | None:
    """The path a file tool call writes, if it is one."""
    if tool not in FILE_TOOLS:
        return None
    value = tool_input.get(PATH_FIELDS[tool][0])
    return value if isinstance(value, str) else ""


def rule_matches(
    rule: str,
    tool: str,
    tool_input: dict[str, Any],
    folder: Path,
    allowed: Sequence[str] = (),
    *,
    git: git_state.Lookup | None = None,
) -> bool:
    """Whether a call matches a rule written in the CLI's permission syntax."""
    return match_reason(rule, tool, tool_input, folder, allowed, git=git) is not None


def match_reason(
    rule: str,
    tool: str,
    tool_input: dict[str, Any],
    folder: Path,
    allowed: Sequence[str] = (),
    *,
    git: git_state.Lookup | None = None,
) -> str | None:
    """Why a call matches ``rule`` (for the approver and the log), or None if it does not.
    ``allowed``: the agent's ``tools`` (its ``Bash(...)`` rules exempt a hand-off);
    ``git``: where to read the git state a git command on the line runs under."""
    parsed = RULE_RE.fullmatch(rule.strip())
    if parsed is None:
        return None
    name, spec = parsed["tool"], parsed["spec"]
    if not _covers(name, tool):
        return None
    matched = f"matches {rule.strip()}"
    if spec is None or spec.strip() in ("", "*"):
        return matched
    if tool == "Bash":
        why = bash_reason(spec, str(tool_input.get("command", "")), bash_allowed(allowed), git)
        return None if why is None else f"{matched}: {why}"
    if tool in FILE_TOOLS or tool in READ_TOOLS:
        hit = _path_matches(spec, tool, tool_input, folder)
    elif tool == "WebFetch" and spec.startswith("domain:"):
        hit = web_host.domain_matches(spec.removeprefix("domain:"), str(tool_input.get("url")))
    else:
        hit = globs.matches(spec, json.dumps(tool_input, sort_keys=True))
    return matched if hit else None


def bash_allowed(tools: Sequence[str]) -> list[str]:
    """The specs of the ``Bash(...)`` rules among an agent's ``tools`` (a bare ``Bash``
    allows every command and exempts nothing: that is where asking matters)."""
    specs = []
    for rule in tools:
        parsed = RULE_RE.fullmatch(rule.strip())
        if parsed and parsed["tool"] == "Bash" and (parsed["spec"] or "").strip() not in ("", "*"):
            specs.append(" ".join(parsed["spec"].split()))
    return specs


def _covers(name: str, tool: str) -> bool:
    if name == tool:
        return True
    if name in FILE_TOOLS:  # Edit(...) is every file-editing tool; Write(...) no less
        return tool in FILE_TOOLS
    if name == "Read":
        return tool in READ_TOOLS
    return (
        name.startswith("mcp__")
        and tool.startswith(name.rstrip("*_") + "__")
        and name.count("__") == 1
    )


def _path_matches(spec: str, tool: str, tool_input: dict[str, Any], folder: Path) -> bool:
    anchor = os.path.realpath(folder)
    pattern = globs.absolute_pattern(
        spec[1:] if spec.startswith("//") else os.path.expanduser(spec), anchor
    )
    if tool in FILE_TOOLS:
        path = written_path(tool, tool_input) or ""
    elif tool in SEARCH_TOOLS:  # no path: the agent's folder
        path = str(tool_input.get("path") or ".")
    else:
        path = str(tool_input.get(PATH_FIELDS[tool][0]) or "")
    real = globs.resolve(path, anchor)
    if globs.matches(pattern, real):
        return True
    if tool not in SEARCH_TOOLS:
        return False
    # Searching a folder reads what the rule names under it; Glob's own pattern may
    # reach elsewhere. A pattern too odd to compare asks.
    reached = [re.sub(r"[*?]", "?", real.rstrip("/")) + "/**"]
    if tool == "Glob" and isinstance(tool_input.get("pattern"), str):
        reached.append(globs.absolute_pattern(globs.normalise(tool_input["pattern"]), real))
    try:
        return any(globs.overlap(pattern, r) for r in reached)
    except (ValueError, RecursionError):
        return True


def bash_matches(spec: str, line: str, allowed: Sequence[str] = ()) -> bool:
    """Whether a ``Bash(spec)`` rule matches a shell line (see the module's docstring)."""
    return bash_reason(spec, line, allowed) is not None


def bash_reason(
    spec: str, line: str, allowed: Sequence[str] = (), git: git_state.Lookup | None = None
) -> str | None:
    """Why a ``Bash(spec)`` rule matches a shell line, or None. ``allowed``: the specs of
    the agent's own ``Bash(...)`` allow rules, which exempt a hand-off they name; ``git``:
    read the git state its git commands run under (:mod:`orchestrator.git_state`)."""
    spec = " ".join(spec.split())
    reading = bash_commands.read(line)
    found = reading.commands
    if found is bash_commands.UNSURE:
        return f"the line cannot be read with confidence ({reading.why})"  # ask
    if _literal_match(spec, line, found):
        return "the command is on the line"
    unreads = list(reading.unread)
    if git is not None and (inner := _embedded(found)):  # `setpriv git st`: git's state
        found = list(dict.fromkeys([*found, *inner.values()]))
        reading = replace(reading, commands=found)
    if git is not None and any(c.split(" ")[0] == "git" for c in found):
        asked = _git_runs(spec, reading, git, unreads, 0)
        if asked is not None:
            return asked
        unreads = _git_written(reading, found, git, line) + unreads
    if git is not None:  # a program's own config file in its HOME (~/.gdbinit)
        unreads = _configs(reading, found, git, line) + unreads  # said first: more to fix
    if git is not None:  # `dotenv run -- CMD`: the variables of its .env
        unreads = _env_files(reading, found, git, line) + unreads
    # the agent's own (the roster's `env` reaches its shell: `PYTHONPATH: .` there ran a
    # planted ./sitecustomize.py at each `pytest`, unasked), as GIT_ALLOW_PROTOCOL's
    inherited = [(n, git.env[n]) for n in load_paths.PLANTED if git is not None and git.env.get(n)]
    if git is not None and found and (reading.loads or inherited):
        # `PYTHONPATH=. pytest`: ./sitecustomize.py
        unreads = _loads(reading, git, line, inherited) + unreads
    for unread in unreads:
        if not any(_exempts(a, unread) for a in allowed):
            return f"{unread.why.replace(bash_commands.UNKNOWN, '')}: cannot be read"
    return None


_MAX_EMBEDDED: Final = 16  # words of one command read as a config reader it may run


def _embedded(found: list[str]) -> dict[str, str]:
    """The git or config-reading command (``git st``, ``gdb -batch``) each command of
    ``found`` not read as one may run from its words: a program the hook does not know as
    a wrapper may be one (measured: `setpriv git st`, `unbuffer git st`, `numactl -C 0 git
    st`, `setarch x86_64 git st` ran the push alias st names, unasked, and `setpriv gdb
    -batch` ran ~/.gdbinit's shell command; read by their first word, git's state and
    gdb's config were never read). From its first such word: asking only when git's state
    or the config there makes it ask (read as well: the outer one may write too)."""
    out = {}
    for command in found:
        words = command.split(" ")
        if words[0] in ("git", *program_configs.READERS) or program_configs.reads_any(command):
            continue
        tried = 0
        for i in range(1, len(words)):
            # only a word naming git or a config reader is read as one: each such reading
            # copies the words after it (measured: `pytest -c /dev/null …` of 100 KB, 16,000
            # words each read so, took 7 s); past _MAX_EMBEDDED, the next is taken as it
            name = os.path.basename(words[i])
            if name != "git" and not program_configs.may_read(name):
                continue
            inner = " ".join([name, *words[i + 1 :]])
            tried += 1
            if name == "git" or tried > _MAX_EMBEDDED or program_configs.reads_any(inner):
                out[command] = inner
                break
    return out


def _configs(
    reading: bash_commands.Reading, found: list[str], git: git_state.Lookup, line: str
) -> list[bash_commands.Unread]:
    """The config files in its HOME a command of the line runs (program_configs): the
    agent's HOME, and each the line sets (``HOME=/x gdb``, ``export HOME=…``, and
    ``XDG_CONFIG_HOME``); one the shell builds (``HOME=$x``), or a relative one on a line
    that moves (``cd s; HOME=h gdb``, ``env -C s HOME=h gdb``: ``s/h``), is known only at
    run time. A wrapper's target user's (``sudo``, ``su -c``: ``~root``) is read, as is
    the passwd entry's home for a HOME unset (``env -i``). A line naming a
    config file of the program it runs may write it first (``echo … >~/.gdbinit; gdb``)."""
    homes = [git.where("~")]
    xdgs = [git.env.get("XDG_CONFIG_HOME") or ""]
    built = ""
    moved = bool(reading.places)  # `cd s`, `env -C s` (measured: both read s/h/.gdbinit)
    for name, value in reading.settings:
        if name not in ("HOME", "XDG_CONFIG_HOME"):
            continue
        relative = not value.startswith(("/", "~"))
        user = value.split("/", 1)[0]  # `sudo -u bob`: ~bob, not known here if no bob
        # (a NUL no shell passes: pwd raises on it; read as a folder so named, as before)
        unknown_user = user[1:2] not in ("", "/") and "\0" not in user and _no_user(user)
        through = git_places.descriptor(value)  # `exec 3<h; HOME=/dev/fd/3 gdb`
        if bash_commands.UNKNOWN in value or (moved and relative) or unknown_user or through:
            built = built or f"{name}={value.replace(bash_commands.UNKNOWN, '')}"
        elif name == "HOME":  # unset or empty (`env -i`): tmux reads the passwd entry's
            homes += [git.where(value or "."), *([] if value else [_passwd_home()])]
        else:
            xdgs.append(git.where(value) if value else "")
    words = bash_commands.path_words(line)
    named: dict[str, str] = {}  # by program (a hostile line has many commands, many words)
    out = []
    written: str | None = None  # a word by which the line may write a config (once a line)
    for command in dict.fromkeys(found):
        if built and program_configs.reads_any(command):
            place = "a HOME" if built.startswith("HOME=") else "a folder"
            why = f"{command.split(' ')[0]} reads its config in {place} known only at run time"
            out.append(
                bash_commands.Unread(f"{why} ({built})", command, command, program_configs.CODE)
            )
            continue
        program = command.split(" ")[0]
        if program not in named and program_configs.reads_any(command):
            named[program] = program_configs.named(command, words)
        if named.get(program) and program_configs.reads_any(command):
            why = f"{program} reads a config file the line may write ({named[program]})"
            out.append(bash_commands.Unread(why, command, command, program_configs.CODE))
            continue
        if program_configs.reads_any(command):
            if written is None:
                folders = [".", *(d for _, d in reading.places)]
                written = program_configs.written_home(
                    found, words, folders, git.where, homes, xdgs, bash_commands.UNKNOWN
                )
            if written:
                shown = written.replace(bash_commands.UNKNOWN, "")
                why = f"{program} reads its config where the line may write ({shown})"
                out.append(bash_commands.Unread(why, command, command, program_configs.CODE))
                continue
        for home, xdg in itertools.product(dict.fromkeys(homes), dict.fromkeys(xdgs)):
            env = {**git.env, "XDG_CONFIG_HOME": xdg}
            for why in program_configs.loaded(command, home, env)[:1]:
                out.append(bash_commands.Unread(why, command, command, program_configs.CODE))
                break
    return list(dict.fromkeys(out))


def _loads(
    reading: bash_commands.Reading,
    git: git_state.Lookup,
    line: str,
    inherited: list[tuple[str, str]],
) -> list[bash_commands.Unread]:
    """The files a folder variable the line sets makes a program load (load_paths:
    ``PYTHONPATH=. pytest`` runs ./sitecustomize.py, ``CARGO_HOME=x`` reads x/config.toml),
    looked up where the call runs and from each folder the line moves to; a value or a
    folder the shell builds, or a line naming such a file (it may write it first), asks.
    Exempt by a rule naming the assignment (``Bash(PYTHONPATH=.:*)``), as ``LD_PRELOAD=``."""
    unknown = bash_commands.UNKNOWN
    moved = git_places.run_time(reading.places, [], unknown)
    bases = [".", *git_places.folders(reading.places, git)]
    loads = list(dict.fromkeys([*reading.loads, *inherited]))
    if len(loads) * len(bases) > load_paths.MAX_LOOKUPS:  # each read from each folder:
        # bounded (measured: 1,000 `python3 -m mN; cd fN` took 20 s), and it asks
        name, written = loads[0]
        first = name if " -m " in name else f"{name}={written}"
        why = f"{first} and {len(loads) - 1} more {load_paths.TOO_MANY_PLACES}"
        return [bash_commands.Unread(why.replace(bash_commands.UNKNOWN, ""), name, name, name)]
    line_words = bash_commands.path_words(line)
    words = load_paths.word_index(line_words)
    from_env = set(inherited) - set(reading.loads)
    others = load_paths.NONE  # the modules of the venvs the line's programs belong to
    if any(n == "PYTHONPATH" or " -m " in n for n, _ in loads):
        programs = [c.split(" ")[0] for c in reading.commands or []]
        others = load_paths.line_venvs(line_words, programs, git.env, bases, git.where)
    out = []
    for name, written in loads:
        assignment = f"{name}={written}"
        shown = name if " -m " in name else assignment.replace(unknown, "")
        # `PYTHONPATH=$PYTHONPATH:$PWD/src`: the agent's own value, and the shell's folder
        value = load_paths.resolved(name, written, git.env.get(name, ""), unknown)
        file: str | None = ""
        if name == "HOME":  # its user site, when known (a built HOME asks for git already)
            known = unknown not in value and moved is None
            if known and (file := load_paths.user_site(value, bases, git.where)):
                why = f"HOME={shown.partition('=')[2]} holds {file}, which Python runs at start"
                out.append(bash_commands.Unread(why, assignment, assignment))
            continue
        if unknown in value or git_places.descriptor(value):
            why = f"{name} names a folder known only at run time ({shown}) to load code from"
        elif moved is not None and any(not e.startswith(("/", "~")) for e in value.split(":")):
            why = f"{shown}: {moved.replace('git may run', 'it may be read')}"
        elif file := load_paths.named(name, words, value, others):
            why = f"{shown}: the line may write a file it loads ({file})"
        elif file := load_paths.made(name, value, words, lambda e: _exists(git, bases, e)):
            why = f"{shown}: the line may make the folder it loads from ({file})"
        elif file := load_paths.planted(name, value, bases, git.where, others):
            why = load_paths.why_planted(name, written.replace(unknown, ""), file, others)
        else:
            continue
        if (name, written) in from_env:
            why = f"the agent's environment's {why}"
        if name == load_paths.JAVAC:  # a rule on javac allows compiling, not what a
            # planted processor runs (the code word holds a space: no rule's word)
            out.append(bash_commands.Unread(why, name, name, "its class path"))
            continue
        if " -m " in name:  # `python3 -m mod`: ./mod.py is exempt by a rule on the command,
            # as `python3 mod.py` is (`Bash(python3:*)`); one named as a library's module
            # (./json for `-m json.tool`, ./pytest.py) by a rule naming `python3 -m`; another
            # module shadowed (./json for `-m pytest`) by none: the rule names running mod
            module = name.partition(" -m ")[2].split(".")[0]
            own = os.path.basename(file or "").split(".")[0] == module
            code = ("-m" if module in load_paths.shadowed() else "") if own else file or why
            out.append(bash_commands.Unread(why, name, name, code))
            continue
        out.append(bash_commands.Unread(why, assignment, assignment))
    return out


# Variables whose value makes a program load or run code (a line setting one is read:
# handoffs, load_paths, git_places): set from an env file, unread.
_WATCHED: Final = (
    frozenset(handoffs.CODE_VARIABLES)
    | handoffs.PROGRAM_VARIABLES
    | frozenset(load_paths.PLANTED)
    | {"HOME", "XDG_CONFIG_HOME", "PYTHONHOME", "PYTHONUSERBASE", "ZDOTDIR", "ENV"}
)
_ENV_NAME: Final = re.compile(r"^\s*(?:export\s+)?([A-Za-z_]\w*)\s*=", re.MULTILINE)
_ENV_CODE: Final = "its env file"  # Unread.code: no rule's word
_ENV_LIMIT: Final = 1 << 20  # an env file read whole up to this; a larger one asks
_ENV_VALUED: Final = frozenset({"-f", "--file", "-q", "--quote", "-e", "--export"})


def _env_file(words: list[str]) -> str:
    """The env file python-dotenv's ``dotenv [-f F] run CMD`` (``python3 -m dotenv``) sets
    its command's variables from (``.env`` by default), or "" for another command."""
    if words[0] == "dotenv":
        rest = words[1:]
    elif words[0].startswith("python") and words[1:3] == ["-m", "dotenv"]:
        rest = words[3:]
    else:
        return ""
    file = ".env"
    i = 0
    while i < len(rest):
        word = rest[i]
        option, eq, given = word.partition("=")
        if word == "run":
            return file
        if option in _ENV_VALUED:
            value = given if eq else rest[i + 1] if i + 1 < len(rest) else ""
            if option in ("-f", "--file"):
                file = value
                if not value or bash_commands.UNKNOWN in value:  # `-f "$(cmd x)"`: its
                    # spaces split it (measured: it and backquotes ran the BASH_ENV the
                    # file set, unasked); `-f <(cmd)` is read with no word: asked too
                    return _built([given, *rest[i + 1 :]] if eq else rest[i + 1 :])
            i += 1 if eq else 2
            continue
        if word.startswith("-f") and len(word) > 2:
            file = word[2:]
            if bash_commands.UNKNOWN in file:
                return _built([file, *rest[i + 1 :]])
        elif not word.startswith("-"):
            return ""  # `dotenv list`, `get`, `set`: nothing run
        i += 1
    return ""


def _built(words: list[str]) -> str:
    """The value of dotenv's ``-f`` the shell builds, from its first word up to ``run``,
    marked unknown (a substitution's spaces split it into words; one alone if none)."""
    end = words.index("run") if "run" in words else len(words)
    return bash_commands.UNKNOWN + " ".join(words[:end]).replace(bash_commands.UNKNOWN, "")


def _env_files(
    reading: bash_commands.Reading, found: list[str], git: git_state.Lookup, line: str
) -> list[bash_commands.Unread]:
    """The env file ``dotenv run`` reads before running its command, as ``set -a; .
    ./.env`` (which asks) would: one setting a variable of :data:`_WATCHED` (measured:
    `dotenv run -- python3 -c pass` with PYTHONPATH=p in .env ran p/sitecustomize.py, and
    BASH_ENV=./x with `bash -c true` ran x, unasked under `Bash(dotenv run:*)`), or one
    not there that the line names (it may write it first), asks."""
    bases = [".", *git_places.folders(reading.places, git)]
    moved = git_places.run_time(reading.places, [], bash_commands.UNKNOWN)
    out = []
    counts: dict[str, int] | None = None  # the line's words by file name, read once
    files = 0
    done: set[str] = set()
    for command in found:
        file = _env_file(command.split(" "))
        if not file or file in done:
            continue
        done.add(file)
        files += 1
        if files * len(bases) > load_paths.MAX_LOOKUPS:  # bounded, as load paths are
            why = f"dotenv run names env files in more than {load_paths.MAX_LOOKUPS} places"
            out.append(bash_commands.Unread(why, command, command, _ENV_CODE))
            break
        names: list[str] = []
        seen = False
        refused = ""
        for base in ["."] if file.startswith(("/", "~")) else bases:
            path = git.where(file if file.startswith(("/", "~")) else os.path.join(base, file))
            try:  # a regular file, whole (measured: BASH_ENV past the 1 MiB once read ran
                # x, unasked; a FIFO, which python-dotenv reads, hung the hook's open)
                text = read_regular_file(Path(path), _ENV_LIMIT).decode("utf-8", "replace")
            except FileRefused as e:
                refused = refused or e.reason
                continue
            except (OSError, ValueError):
                continue
            seen = True
            names += [n for n in _ENV_NAME.findall(text) if n in _WATCHED or n.startswith("GIT_")]
        if counts is None:
            counts = {}
            for word in bash_commands.path_words(line):
                key = os.path.basename(word)
                counts[key] = counts.get(key, 0) + 1
        named = counts.get(os.path.basename(file), 0)
        if names:
            why = f"dotenv run sets {names[0]} from {file}, which may make a program load code"
        elif refused:
            why = f"dotenv run sets variables from {file}: {refused}"
        elif not seen and named > (0 if file == ".env" else 1):
            why = f"dotenv run sets variables from {file}, which the line may write first"
        elif bash_commands.UNKNOWN in file:
            shown = file.replace(bash_commands.UNKNOWN, "") or "a substitution"
            why = f"dotenv run sets variables from a file known only at run time ({shown})"
        elif moved is not None and not file.startswith(("/", "~")):  # `cd "$d"; dotenv run`
            where = moved.replace("git may run", "it may be read")
            why = f"dotenv run sets variables from {file}: {where}"
        else:
            continue
        # a rule on `dotenv run` allows running it, not what its file sets: exempt only
        # by the whole command exactly (the code word holds a space: no rule's word)
        why = why.replace(bash_commands.UNKNOWN, "")
        out.append(bash_commands.Unread(why, command, command, _ENV_CODE))
    return out


def _exists(git: git_state.Lookup, bases: list[str], entry: str) -> bool:
    """Whether the folder ``entry`` of a load path is there now, from any of ``bases``."""
    if entry.startswith(("/", "~")):
        return os.path.lexists(git.where(entry))
    return any(os.path.lexists(git.where(os.path.join(b, entry))) for b in bases)


def _git_written(
    reading: bash_commands.Reading, found: list[str], git: git_state.Lookup, line: str
) -> list[bash_commands.Unread]:
    """A line that may write git's config or hooks (``cp x .git/config``, ``tar xf t.tar``
    over the repository, ``cp x ~/.gitconfig``) before its git command runs: read before
    the line, git's state tells nothing (measured: `cp evil .git/config; git st` ran the
    alias evil holds, unasked)."""
    unknown = bash_commands.UNKNOWN
    gits = [c for c in found if c.split(" ")[0] == "git"]
    for command in gits:  # `git config core.fsmonitor ./x.sh; git status`
        rest = command_wrappers.after_options(command.split(" ")[1:], git_places.GIT_VALUED)
        setting = option_commands.git_config_set(rest[1:]) if rest[:1] == ["config"] else ""
        if setting and (other := next((c for c in gits if c != command), None)):
            why = f"git reads its config where the line may write ({setting})"
            return [bash_commands.Unread(why, other, other, program_configs.CODE)]
    if ">" not in line and all(c.split(" ")[0] == "git" or " " not in c for c in found):
        return []  # no other command with words, no redirection: nothing written there
    folders = [".", *(d for _, d in reading.places if unknown not in d)]
    settings = [(n, v) for n, v in reading.settings if v and unknown not in v]
    homes = [git.where("~"), *(git.where(v) for n, v in settings if n == "HOME")]
    xdgs = [git.where(x)] if (x := git.env.get("XDG_CONFIG_HOME")) else []

    def git_dirs() -> list[str]:
        dirs = [os.path.join(top, ".git") for f in folders if (top := git.toplevel(f))]
        return dirs + [git.where(v) for n, v in settings if n == "GIT_DIR"]

    written = program_configs.written_git(
        found,
        bash_commands.path_words(line),
        git.where,
        homes,
        git_dirs,
        folders[1:],
        hooks=git.hooks_dirs(),
    ) or program_configs.written_git(  # an XDG_CONFIG_HOME of the agent's, outside its HOME
        found, bash_commands.path_words(line), git.where, xdgs, list, [], xdg=True
    )
    if not written:
        return []
    command = next(c for c in found if c.split(" ")[0] == "git")
    why = f"git reads its config where the line may write ({written})"
    return [bash_commands.Unread(why, command, command, program_configs.CODE)]


def _no_user(tilde: str) -> bool:
    """Whether ``~user`` names no user here (its home then known only at run time)."""
    return os.path.expanduser(tilde) == tilde


def _passwd_home() -> str:
    """The home of the agent's user in the passwd file (the supervisor's user)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # no entry: nothing read there
        return "/nonexistent"


_GIT_DEPTH = 4  # `!` aliases whose lines run git again, read (deeper: it asks)


def _git_runs(
    spec: str,
    reading: bash_commands.Reading,
    git: git_state.Lookup,
    unreads: list[bash_commands.Unread],
    depth: int,
) -> str | None:
    """Why what git's state makes the line's git commands run matches ``spec`` (its
    hand-offs added to ``unreads``), or None. A `!` alias's line is read as a line, and
    its own git commands in turn, in the alias's folder (`alias.st = !git st2`, or `!cd
    ../a && git st`: st2's alias or a's ran unread)."""
    assert reading.commands is not None
    effects = git_state.effects(
        reading.commands, reading.places, git, bash_commands.UNKNOWN, reading.settings
    )
    if effects.unread:  # the agent's tools exempt none of these
        return f"{effects.unread[0][0]}: cannot be read"
    runs = list(effects.commands)
    again: list[tuple[bash_commands.Reading, str, str]] = []  # lines that run git
    for (text, why), folder in zip(effects.lines, effects.line_folders, strict=True):
        inner = bash_commands.read(text)
        if inner.commands is bash_commands.UNSURE:
            return f"{why} runs a line that cannot be read with confidence ({inner.why})"
        runs += [(c, why) for c in inner.commands]
        unreads += [replace(u, why=f"{why} {u.why}") for u in inner.unread]
        if any(c.split(" ")[0] == "git" for c in inner.commands):
            again.append((inner, why, folder))
    for command, why in runs:
        if _literal_match(spec, command, [command]):
            return f"{why} makes it run {command.replace(bash_commands.UNKNOWN, '…')}"
    for inner, why, folder in again:
        if depth >= _GIT_DEPTH:
            return f"{why} runs git through more than {_GIT_DEPTH} aliases: cannot be read"
        asked = _git_runs(spec, inner, git.from_folder(folder), unreads, depth + 1)
        if asked is not None:
            return f"{why}: {asked}"
    return None


def _exempts(spec: str, unread: bash_commands.Unread) -> bool:
    """Whether the agent's allow rule ``Bash(spec)`` exempts a hand-off: it names the
    command; and for code on the line (``python3 -c``, a here-document into ``python3 -``,
    an awk program calling system()), the word that gives it (``Bash(python3 -c:*)``) or
    the whole command exactly. ``Bash(python3:*)`` allows running python3, not whatever
    program its inline code runs."""
    if not any(_command_matches(spec, c) for c in (unread.command, unread.written)):
        return False
    if not unread.code:
        return True  # a file the command runs (a script, a recipe): named by the rule
    return unread.code in spec.removesuffix(":*").split(" ")[1:] or (
        "*" not in spec and spec in (unread.command, unread.written)
    )


def _literal_match(spec: str, line: str, found: list[str]) -> bool:
    if any(_command_matches(spec, c) for c in [*found, *_parts(line)]):
        return True
    rule = spec.removesuffix(":*").split(" ")
    if any(bash_commands.UNKNOWN in c and _may_start(rule, c.split(" ")) for c in found):
        return True
    # The rule's words anywhere in the line (`ssh host git push`; a glob's last `*` may
    # cover nothing there: `echo git push | sh`).
    while rule and rule[-1] == "*":
        rule.pop()
    if not rule or "*" in rule[0]:
        return False
    # A `*` covers any text, as in the rule; the rule ends at the end of a word.
    glob = re.compile(".*".join(map(re.escape, " ".join(rule).split("*"))) + "(?= |$)")
    words = bash_commands.words(line)
    return any(
        _found_at(rule, glob, words[i : i + _WINDOW]) for i, w in enumerate(words) if w == rule[0]
    )


_WINDOW = 64  # words of the line compared from each place (long lines stay linear)


def _found_at(rule: list[str], glob: re.Pattern[str], words: list[str]) -> bool:
    """Whether the rule's words begin ``words``, or may once the shell builds them."""
    if any(bash_commands.UNKNOWN in w for w in words) and _may_start(rule, words):
        return True
    return glob.match(" ".join(words)) is not None


def _may_start(rule: list[str], words: list[str]) -> bool:
    """Whether ``words``, some of them built by the shell, may begin with the rule's."""
    for expected, word in zip(rule, words, strict=False):
        if bash_commands.UNKNOWN in word:
            return True
        if "*" in expected:  # a glob's `*` may cover the rest of the command
            return word.startswith(expected.split("*", 1)[0])
        if expected != word:
            return False
    return len(words) >= len(rule)


def _parts(line: str) -> list[str]:
    """The line split where another command may start, as written (the rule's own
    quoting, ``Bash(git commit -m "x":*)``, is compared here)."""
    parts = [line]
    for sep in ("&&", "||", ";", "|", "&", "\n", "$(", "`"):
        parts = [p for part in parts for p in part.split(sep)]
    return [" ".join(p.strip().lstrip("( ").split()) for p in parts if p.strip()]


def _command_matches(spec: str, command: str) -> bool:
    if spec.endswith(":*"):
        prefix = spec[:-2]
        return command == prefix or command.startswith(prefix + " ")
    if "*" in spec:
        # As in the CLI, a final ` *` may cover nothing: `Bash(git push *)` is `git push` too.
        bare = spec.endswith(" *") and _command_matches(spec[:-2], command)
        return bare or globs.matches(spec.replace("*", "**"), command)
    return command == spec
