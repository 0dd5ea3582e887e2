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
import os
import re
from collections.abc import Callable
from typing import Final

from orchestrator import load_paths, option_commands, shell_words
from orchestrator.handoff_types import INPUT, INPUT_IF_FED, Handoff

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
_MAKES = frozenset({"make", "gmake", "bmake", "just", "task", "rake", "invoke"})
# A variable given to make on its line (`make CC=clang`): its value is code when make
# runs it at once (`X!=CMD`), when it holds a make reference (`$(shell CMD)`, `$(eval …)`)
# or a word the shell builds (that may hold one), or shell code a recipe using it runs
# (`CC='gcc; CMD'`: measured, ran CMD), or a program given inline code (`CC='python3 -c …'`).
_MAKE_ASSIGNMENT = re.compile(r"([^\s:#=!?+-][^\s:#=!?+]*)\s*(:::?=|::?=|[!?+]?=)(.*)", re.S)
_MAKE_CODE = re.compile(r"[$;&|<>`()\n" + shell_words.UNKNOWN + "]")


# Whether a shell line hands inline code to an interpreter anywhere (wrappers and `sh -c`
# included) or cannot be read: bash_commands.gives_code, set by that module (the one line
# reader), which imports this one. Until then every line counts as code (it asks).
def _every_line_gives_code(line: str) -> bool:
    return True


line_gives_code: Callable[[str], bool] = _every_line_gives_code
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
# Variables holding a command the program runs through the shell, or code it loads.
PROGRAM_VARIABLES: Final = frozenset(
    {"GIT_SSH_COMMAND", "GIT_SSH", "GIT_PAGER", "PAGER", "GIT_EDITOR", "EDITOR", "VISUAL"}
    | {"GIT_SEQUENCE_EDITOR", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS", "MANPAGER"}
    | {"GIT_PROXY_COMMAND", "LESSOPEN", "LESSCLOSE", "BROWSER"}
    # the line an interactive bash runs before each prompt: the shell of a new tmux window
    # or screen (measured: `PROMPT_COMMAND='git push …' tmux new -d` pushed, unasked before)
    | {"PROMPT_COMMAND"}
    # the program cargo runs each rustc through, or as rustc (measured: `RUSTC_WRAPPER=./x.sh
    # cargo build` ran x.sh, unasked before), and the shell npm runs its scripts with
    | {"RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER", "RUSTC"}
    | {"CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC", "RUSTDOC"}
    | {"CARGO_BUILD_RUSTDOC", "npm_config_script_shell", "NPM_CONFIG_SCRIPT_SHELL"}
)
# cargo's per-target runner and linker (`CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=./x.sh
# cargo run` ran x.sh, unasked before): each read as a command, as PROGRAM_VARIABLES are.
CARGO_PROGRAMS: Final = re.compile(r"CARGO_TARGET_\w+_(RUNNER|LINKER)")
# Variables naming code a program loads (a value of NODE_OPTIONS only when it loads a file:
# `NODE_OPTIONS=--max-old-space-size=4096` is everyday).
_NEVER: Final = r"(?!)"  # a pattern matching no value: a check of _CODE_CHECKS reads it
# The JDK's tools, each running a JVM that takes `-J<option>` (measured: `javac
# -J-javaagent:a.jar A.java` ran a.jar's premain, unasked under Bash(javac:*)).
_JDK_TOOLS: Final = frozenset(
    {"javac", "jar", "javadoc", "javap", "jshell", "jlink", "jdeps", "jdeprscan", "jmod"}
    | {"keytool", "jarsigner", "jcmd", "jps", "jstat", "jmap", "jstack", "jinfo", "jdb"}
    | {"jconsole", "jhsdb", "jfr", "jpackage", "serialver", "jwebserver", "rmiregistry"}
)
_JVM_CODE: Final = (
    r"(?i)agent|class|path|loader|manager|module|(^|\s)@|flags|optionsfile|onerror"
    r"|onoutofmemory|jvmci|-jar\b"
)
_JVM: Final = re.compile(_JVM_CODE)
# javac's options naming code it runs as it compiles (processors, a plugin)
_JAVAC_CODE: Final = frozenset(
    {"-processor", "-processorpath", "--processor-path", "--processor-module-path", "-Xplugin"}
)
CODE_VARIABLES: Final[dict[str, re.Pattern[str]]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "BASH_ENV": ".",
        "LD_PRELOAD": ".",
        "LD_AUDIT": ".",
        "GIT_EXEC_PATH": ".",
        "GIT_CONFIG_PARAMETERS": ".",
        # hooks `git clone`/`git init` copy into the new repository (measured:
        # `GIT_TEMPLATE_DIR=t git clone` ran t/hooks/post-checkout)
        "GIT_TEMPLATE_DIR": ".",
        # lets git run ext:: URLs, of a file outside its config too (measured:
        # `GIT_ALLOW_PROTOCOL=ext git fetch o` ran the ext:: URL of `.git/remotes/o`)
        "GIT_ALLOW_PROTOCOL": r"(^|:)\s*ext\s*(:|$)",
        "PERL5OPT": ".",
        "RUBYOPT": ".",
        "NODE_OPTIONS": r"(^|\s)(-r|--require|--import|--(experimental-)?loader)\b",
        # npm's node-options, NODE_OPTIONS for its scripts (measured: `npm_config_node_options=
        # '--require ./r.js' npm test` ran r.js, unasked before)
        "npm_config_node_options": r"(^|\s)(-r|--require|--import|--(experimental-)?loader)\b",
        "NPM_CONFIG_NODE_OPTIONS": r"(^|\s)(-r|--require|--import|--(experimental-)?loader)\b",
        "LESS": r"(^|\s)\+",  # less's options: `+CMD` as on its line (below)
        "VIMINIT": ".",  # Ex commands vim runs first
        "EXINIT": ".",
        # Files of commands or code a program loads (measured: `SCREENRC=f screen -D -m`,
        # `SYSSCREENRC=f …` ran f's `screen CMD`, `VIMRUNTIME=r vim` r/plugin/'s code).
        "SCREENRC": ".",
        "SYSSCREENRC": ".",
        "VIMRUNTIME": ".",
        "VIM": ".",  # where vim finds VIMRUNTIME (vim's own `$VIM/vimfiles`, plugins too)
        "MAKEFLAGS": r"eval|(^|\s)-\w*E",  # make's options: `--eval` as on its line
        "GNUMAKEFLAGS": r"eval|(^|\s)-\w*E",
        "SHELL": ".",  # the shell `sudo -s`, `script`, `screen`… start (a program)
        # rustc's flags naming the linker it runs (measured: `RUSTFLAGS='-C linker=./x.sh'
        # cargo build` ran x.sh, unasked before)
        "RUSTFLAGS": r"link",
        "CARGO_ENCODED_RUSTFLAGS": r"link",
        "CARGO_BUILD_RUSTFLAGS": r"link",
        "RUSTDOCFLAGS": r"link",
        # Modules, files and libraries a program loads from a place the variable names
        # (orchestrator/load_paths.py: each measured to run a planted file, unasked)
        "PYTEST_PLUGINS": ".",
        "PYTEST_ADDOPTS": _NEVER,  # its words: load_paths.pytest_options_load
        "PYTHONWARNINGS": _NEVER,  # a dotted category: load_paths.warnings_import
        "PYTHONSTARTUP": ".",
        # the bytecode Python runs in place of each module's source, the library's too
        # (measured: `PYTHONPYCACHEPREFIX=./c pytest` ran a planted argparse .pyc): any
        # folder of it is the agent's to write, so it asks whenever set
        "PYTHONPYCACHEPREFIX": ".",
        # Python's own library (`encodings` runs at start) and the user site, whose .pth
        # files run their `import` lines (measured with /usr/bin/python3: each ran)
        "PYTHONHOME": load_paths.LIBRARY_FOLDERS,
        "PYTHONUSERBASE": load_paths.LIBRARY_FOLDERS,
        "LD_LIBRARY_PATH": load_paths.LIBRARY_FOLDERS,
        "GCONV_PATH": load_paths.LIBRARY_FOLDERS,
        "MAKEFILES": ".",
        # A JVM's options (every JVM reads the first two, javac's too; the `java` launcher
        # the third): an agent's jar whose premain runs first (measured: `JAVA_TOOL_OPTIONS=
        # -javaagent:a.jar javac A.java` ran it, unasked), a native agent or library, a
        # class or path to load from, an options file, a command run on a crash or an OOM
        # (`-Xmx2g`, `-Dfile.encoding=UTF-8` are everyday)
        **dict.fromkeys(("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"), _JVM_CODE),
        # GNU tar's options, read as its line's (measured: `TAR_OPTIONS='--checkpoint=1
        # --checkpoint-action=exec=CMD' tar tf t.tar` ran CMD, unasked): those naming a
        # command (option_commands.TAR_PROGRAMS; long ones by any prefix tar takes, `-I`/`-F`
        # in a cluster)
        "TAR_OPTIONS": r"(^|\s)--(to-|use-|checkpoint-a|rsh|info|new-v)|(^|\s)-[^-\s]*[IF]",
        # wget's config file in place of ~/.wgetrc: its `use_askpass` command runs first
        # (measured: `WGETRC=./w wget URL` ran it, unasked under Bash(wget:*))
        "WGETRC": ".",
        # A prompt's command substitution, in the interactive shell of a new tmux window
        # or screen (measured: `PS0='$(CMD)' tmux new -d \; send-keys true Enter` ran CMD;
        # an octal escape builds one: `PS1='\044(CMD)'` ran CMD in `bash -i`; a backquote is
        # read as a newline here)
        **dict.fromkeys(("PS0", "PS1", "PS2", "PS4"), r"\$\(|`|\\[0-7]|\n"),
    }.items()
}
# Variables whose value is read further than by a pattern (make's words, pytest's options).
_CODE_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "PYTEST_ADDOPTS": load_paths.pytest_options_load,
    "PYTHONWARNINGS": load_paths.warnings_import,
}
# Environment managers whose `run` runs a command as its words (`uv run python3 x.py`).
_RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "hatch", "rye", "conda", "mamba"})
_RUNNER_VALUED = frozenset(
    {"--with", "--python", "-p", "--env-file", "--group", "--extra", "-n", "--name", "-e"}
    | {"--package", "--directory", "--project", "--prefix", "--env"}
)
_SYSTEM_DIRS = ("/usr/", "/bin/", "/sbin/", "/nix/", "/opt/")


def of(head: str, args: list[str]) -> Handoff | None:
    """What the command ``head args…`` (its program as written, quotes removed) hands to
    an interpreter, if anything."""
    name = head.rsplit("/", 1)[-1]
    npm_exec = name == "npm" and args[:1] in (["exec"], ["x"])
    if (name == "npx" or npm_exec) and (call := _npx_call(args[1:] if npm_exec else args)):
        return Handoff(lines=(call,))  # `npx -c LINE` runs LINE in a shell (measured)
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
    if name in option_commands.AWKS or (name == "busybox" and args[:1] == ["awk"]):
        return option_commands.awk(name, args[1:] if name == "busybox" else args)
    if name == "sed":
        return option_commands.sed(args)
    if name == "find":
        return option_commands.find(args)
    if name in ("tar", "gtar", "bsdtar", "rsync"):
        return option_commands.program_options(
            args,
            option_commands.TAR_PROGRAMS if name != "rsync" else option_commands.RSYNC_PROGRAMS,
        )
    if name == "git":
        return option_commands.git(args)
    if name == "cargo" and (option := _cargo_config(args)):
        # a config given on the line may name programs cargo runs (measured: `cargo build
        # --config 'build.rustc-wrapper="./x.sh"'` ran x.sh, unasked before), as `ssh -F`
        return Handoff(f"gives cargo {option}, which may name programs to run", code=option)
    if name in _MAKES:
        if _informs(args):
            return None
        return _make(name, args)
    if option_commands.is_vim(name):
        return option_commands.vim(name, args)
    if name == "less":
        return option_commands.less(args)
    if name in ("sqlite3", "sqlite"):
        return option_commands.sqlite3(name, args)
    if name == "ed" and not any(a in ("--version", "--help", "-V", "-h") for a in args):
        # ed runs `!CMD` from the commands it reads from its input (measured: `echo
        # '!CMD' | ed` ran CMD; it asked for nothing); `red` refuses `!`.
        return Handoff(f"runs the commands {name} reads from its input", code=INPUT_IF_FED)
    if name in ("emacs", "emacsclient"):
        return option_commands.emacs(name, args)
    if name in ("zip", "split"):
        options = option_commands.ZIP_PROGRAMS if name == "zip" else option_commands.SPLIT_PROGRAMS
        return option_commands.program_options(args, options)
    if name == "man":
        return option_commands.man(args)
    if name == "wget":
        return option_commands.wget(args)
    if name in ("ssh", "scp", "sftp"):
        return option_commands.ssh(name, args)
    if name in _PACKAGE_MANAGERS:
        return _package_manager(name, args)
    if name in ("pytest", "py.test") and (option := load_paths.pytest_loading(args)):
        return _pytest_import(option)
    if name == "mypy" and (option := load_paths.mypy_config(args)):
        return _mypy_config(option)
    if name == "javac" and (option := _javac_code(args)):  # `-processor E`, `@args`
        return Handoff(f"gives javac {option}, code it runs as it compiles", code=option)
    if name in _JDK_TOOLS and (option := _jvm_option(args)):  # `javac -J-javaagent:a.jar`
        return Handoff(f"gives {name} {option}, code for its JVM to load", code=option)
    if name == "javac" and "-proc:none" not in args:  # its class path's processors
        return Handoff(classpath=_javac_classpath(args))
    if "{}" in head:
        return Handoff("runs files found at run time as programs")
    if "/" in head and not head.startswith(_SYSTEM_DIRS):
        return Handoff(f"runs the file {head}")
    return None


def _npx_call(args: list[str]) -> str:
    """The shell line of ``npx``'s (``npm exec``'s) ``-c LINE``/``--call[=]LINE`` ("" if
    none; measured: `npx -c 'touch x'`, `npx --call=…`, `npm exec -c …` ran it, read as a
    program named by the whole line before, unasked under ``Bash(npx:*)``)."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        word, after = args[i], args[i + 1] if i + 1 < len(args) else ""
        if word in ("-c", "--call"):
            return after or " "
        if word.startswith("--call="):
            return word.partition("=")[2] or " "
        i += 2 if word in ("-p", "--package", "-w", "--workspace") else 1
    return ""


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
        if family == "python" and (option := _cache_prefix(word, args[i + 1 : i + 2])):
            return Handoff(f"gives {name} {option} pycache_prefix, bytecode to run", code=option)
        if word in _INLINE_LONG or word.split("=", 1)[0] in _INLINE_LONG:
            option = word.split("=", 1)[0]
            return Handoff(f"runs code given to {name} {option}", code=option)
        if word in valued:
            i += 2
            continue
        if family == "python" and (j := _module_option(word)):  # -m, -um, -bmNAME
            module = word[j + 1 :] or (args[i + 1] if i + 1 < len(args) else "")
            rest = args[i + (1 if word[j + 1 :] else 2) :]
            if module == "pytest" and (option := load_paths.pytest_loading(rest)):
                return _pytest_import(option)
            if module == "mypy" and (option := load_paths.mypy_config(rest)):
                return _mypy_config(option)
            # a module named like a program (python3 -m pytest), from the call's folder
            # first (measured: `python3 -m mod`, `python3 -m json.tool` ran ./mod.py,
            # ./json/__init__.py, unasked), but with -I/-P (an isolated or safe path)
            before = [*args[:i], word[:j]]
            isolated = any(set(w[1:]) & {"I", "P"} for w in before if not w.startswith("--"))
            return None if isolated or not module else Handoff(module=module)
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


def _module_option(word: str) -> int:
    """Where ``-m`` is in Python's short option word (``-m``, ``-um``, ``-bmNAME``: after
    options taking no value), or 0."""
    if word.startswith("--") or not word.startswith("-"):
        return 0
    for j, letter in enumerate(word[1:], start=1):
        if letter == "m":
            return j
        if letter in "cWXQ":  # code or a value follows
            return 0
    return 0


def _cache_prefix(word: str, after: list[str]) -> str:
    """The option word giving Python ``-X pycache_prefix=DIR`` (``-X`` or a cluster ending
    in it), or "": Python runs the bytecode it finds there for the source it imports,
    the standard library's too (measured: `python3 -X pycache_prefix=./c -m argparse` ran
    a planted c/…/argparse.cpython-311.pyc whose header matched the source's)."""
    if word.startswith("--") or "X" not in word[1:]:
        return ""
    option, _, given = word.partition("X")
    if option.strip("-").strip("bBdEhiIOPqsSuvVR") or not option.startswith("-"):
        return ""  # `X` is a value here (`-Wdefault::X`), not the option
    value = given or (after[0] if after else "")
    return option + "X" if value.split("=", 1)[0] == "pycache_prefix" else ""


def _pytest_import(option: str) -> Handoff:
    """pytest given a module to import on its line (``-p mod``: a plugin), which an earlier
    call may have planted: code on the line, exempt by a rule naming the option word. A
    config (``-c x.ini``: its ``addopts``) or ``--confcutdir`` (conftest.py files above the
    rootdir) names code to load."""
    head = option.partition("=")[0]
    if head in ("--config-file", "--inifile", "--confcutdir") or (
        not head.startswith("--") and head.lstrip("-").rstrip("c") != head.lstrip("-")
    ):
        return Handoff(f"gives pytest {option}, which names code to load", code=option)
    return Handoff(f"gives pytest {option}, a module to import", code=option)


def _jvm_option(args: list[str]) -> str:
    """The ``-J<option>`` word of a JDK tool's ``args`` giving its JVM code to load (as
    JAVA_TOOL_OPTIONS would: :data:`_JVM_CODE`), or "" (``-J-Xmx1g`` is everyday)."""
    return next((a for a in args if a.startswith("-J") and _JVM.search(a[2:])), "")


def _javac_code(args: list[str]) -> str:
    """The word of javac's ``args`` naming code it runs as it compiles, or "": annotation
    processors (measured: `javac -processorpath pp -processor E A.java` ran E, unasked
    under ``Bash(javac:*)``), a plugin (``-Xplugin:P``), or an ``@file`` of options that
    may name either."""
    for word in args:
        option = word.partition("=")[0].partition(":")[0]
        if option in _JAVAC_CODE or word.startswith("@"):
            return word
    return ""


def _javac_classpath(args: list[str]) -> str:
    """javac's class path (``-cp``, ``-classpath``, ``--class-path[=]``; the call's folder
    by default), the last given."""
    path = "."
    for word, after in itertools.pairwise([*args, ""]):
        option, eq, value = word.partition("=")
        if word in ("-cp", "-classpath", "--class-path"):
            path = after
        elif option == "--class-path" and eq:
            path = value
    return path


def _mypy_config(option: str) -> Handoff:
    """mypy given a config on its line, whose ``plugins`` it imports (measured: ``mypy
    --config-file x.ini`` ran x.ini's ``plugins = ./evil.py``, unasked under
    ``Bash(mypy:*)``): code named on the line, exempt by a rule naming the option word."""
    return Handoff(f"gives mypy {option}, a config whose plugins it imports", code=option)


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


def make_folder(name: str, args: list[str]) -> str:
    """The folder make given ``args`` runs its recipes in (``-C DIR``, ``--directory``,
    each from the one before; anywhere before ``--``), or "" (measured: ``make -C sub
    PYTHONPATH=. test`` ran sub/sitecustomize.py, unasked: it was looked up here only)."""
    if name not in ("make", "gmake"):
        return ""
    folder = ""
    for word, after in itertools.pairwise([*itertools.takewhile(lambda w: w != "--", args), ""]):
        if word in ("-C", "--directory"):
            value = after
        elif word.startswith("--directory="):
            value = word.partition("=")[2]
        elif word.startswith("-C"):
            value = word[2:]
        else:
            continue
        folder = os.path.join(folder, value) if value else folder
    return folder


def make_exports(name: str, args: list[str]) -> list[str]:
    """The variables make given ``args`` puts in each recipe's environment, as
    ``NAME=value``: those of its command line (measured, GNU make 4.3: `make
    LD_PRELOAD=./x.so test`, `make GIT_SSH_COMMAND='CMD' test`, `make PYTHONPATH=p test`
    each reached the recipe's git or python, which ran x.so, CMD, p/sitecustomize.py)."""
    if name not in ("make", "gmake", "bmake"):
        return []
    out = []
    for word in itertools.takewhile(lambda w: w != "--", args):
        found = _MAKE_ASSIGNMENT.fullmatch(word)
        if found and re.fullmatch(r"[A-Za-z_]\w*", found[1]) and found[2] != "!=":
            out.append(f"{found[1]}={found[3]}")
    return out


def _shell_flags_run(value: str) -> bool:
    """Whether make's ``.SHELLFLAGS`` value, the words before each recipe line on the
    shell's line, names something it runs: a word not an option (`./x.sh`, or `-c
    ./x.sh`; measured, `make .SHELLFLAGS=./x.sh` ran x.sh for each recipe line), but the
    value of ``-o``/``+o``; ``-ec``, ``-o pipefail -c`` ask nothing."""
    words = value.split()
    return any(
        not w.startswith(("-", "+")) and (i == 0 or words[i - 1] not in ("-o", "+o", "-O", "+O"))
        for i, w in enumerate(words)
    )


def _make_variable_code(word: str) -> str | None:
    """What code the variable ``word`` given to make holds (``X!=CMD``: a command it runs
    at once), or None for a plain value (``CC=clang``, ``CFLAGS=-O2 -g``, ``DESTDIR=./out``)."""
    found = _MAKE_ASSIGNMENT.fullmatch(word)
    if found is None:
        return None
    _, operator, value = found.groups()
    if operator == "!=":
        return "a command to run"
    if found[1] in ("SHELL", "MAKESHELL"):  # the program running every recipe line
        return "a shell to run recipes with"
    if found[1] == ".SHELLFLAGS" and _shell_flags_run(value):
        return "a file or command for the recipes' shell to run"
    if found[1] == ".SHELLFLAGS" and load_paths.startup_flags(value):
        return "startup files for the recipes' shell to run"
    if _MAKE_CODE.search(value):
        return "code"
    # A recipe runs the value as a command line: read it as one, wrappers and `sh -c`
    # included (`CC='env perl -e …'` hid the code when only its first word was read).
    return "code" if line_gives_code(value) else None


def _cargo_config(args: list[str]) -> str:
    """cargo's ``--config KEY=VALUE``/``--config FILE`` before a ``--`` ("" if none)."""
    for word in args:
        if word == "--":
            return ""
        if word == "--config" or word.startswith("--config="):
            return "--config"
    return ""


def variable_code(name: str, value: str) -> bool:
    """Whether the variable ``name`` set to ``value`` (before a command, or exported) names
    code a program loads or runs (:data:`CODE_VARIABLES`): a value the shell builds may."""
    code = CODE_VARIABLES.get(name)
    if code is None:
        return False
    if shell_words.UNKNOWN in value or code.search(value):
        return True
    if name in ("MAKEFLAGS", "GNUMAKEFLAGS"):
        return make_flags_code(value)
    check = _CODE_CHECKS.get(name)
    return check is not None and check(value)


def make_flags_code(value: str) -> bool:
    """Whether MAKEFLAGS' (or GNUMAKEFLAGS') ``value`` gives make a variable holding code:
    make reads its words as given on its line, a ``\\ `` kept in a word (measured, GNU
    make 4.3: `MAKEFLAGS='X!=touch\\ x'` ran it, `'SHELL=./x.sh'` ran every recipe with
    x.sh, both also after a `--`)."""
    words = re.split(r"(?<!\\)\s+", value.strip())
    return any(_make_variable_code(re.sub(r"\\(\s)", r"\1", w)) for w in words)


def _npm_options(name: str, args: list[str]) -> str:
    """npm's (and pnpm's) option word naming a program or code its scripts run ("" if
    none; as written, so that a rule naming it, `Bash(npm test --script-shell=x:*)`, exempts it):
    ``--script-shell`` (measured: `npm test --script-shell=./x.sh` ran x.sh, as `npm
    install`'s lifecycle scripts would) and a ``--node-options`` that loads a file."""
    if name not in ("npm", "pnpm"):
        return ""
    for word, after in itertools.pairwise([*args, ""]):
        if word == "--":
            return ""
        option, eq, value = word.partition("=")
        if option == "--script-shell":
            return word
        node = CODE_VARIABLES["NODE_OPTIONS"]
        if option == "--node-options" and node.search(value if eq else after):
            return word
    return ""


_PM_EXECS = frozenset(
    {("npm", "exec"), ("npm", "x"), ("pnpm", "exec"), ("pnpm", "dlx"), ("yarn", "exec")}
    | {("yarn", "dlx"), ("bun", "x")}
)


def _package_manager(name: str, args: list[str]) -> Handoff | None:
    if word := _npm_options(name, args):
        option = word.partition("=")[0]
        return Handoff(f"gives {name} {option}, naming code its scripts run", code=word)
    sub = _first(args)
    if sub is None or sub in _PM_BUILTINS:
        return None
    if sub in _SCRIPT_RUNNERS or name in ("yarn", "pnpm", "bun", "deno"):
        why = f"runs the package script or code of {name} {sub}"
        # the command of `npm exec`/`x` (and pnpm's, yarn's `exec`/`dlx`, `bun x`) is read
        # as npx's is, a rule on them exempting it no more than `Bash(npx:*)` does
        # (measured: `npm exec -- python3 -c …` ran its code, asked nothing under
        # `Bash(npm exec:*)`)
        if (name, sub) in _PM_EXECS:
            inner = _after_runner_options(args[args.index(sub) + 1 :])
            return Handoff(why, argv=(tuple(inner),) if inner else ())
        return Handoff(why)
    return None
