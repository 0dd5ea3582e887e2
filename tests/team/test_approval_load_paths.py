"""A variable set on the line can make an allowed program load code an earlier call planted:
a module (``PYTEST_PLUGINS=mod pytest``, ``PYTEST_ADDOPTS='-p mod'``, a warning filter's
dotted category, ``PYTHONPATH=.`` with a ``sitecustomize.py``), a makefile (``MAKEFILES=``),
a config (``CARGO_HOME=x``: ``x/config.toml``), a library (``LD_LIBRARY_PATH=./x``,
``GCONV_PATH=./g``), a startup file (make's ``.SHELLFLAGS=-lc``) or a prompt's command
(``PS0='$(CMD)'`` in a tmux window's shell). A rule on the program (``Bash(pytest:*)``)
allowed each unasked; each asks now, everyday values (``PYTHONPATH=src``, ``-p
no:cacheprovider``, ``.SHELLFLAGS=-ec``) ask nothing. So does ``GIT_ALLOW_PROTOCOL=ext`` in
the roster's ``env`` (it reaches the agent's shell), and pytest's own ``-p mod`` (code in an
option, exempt by a rule naming it). Each line is first run for real (bash,
no terminal) to show it runs the planted file; then the real hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from approval_lines import RULE, answer, git, pushable, runs
from gitrepo import git_run

from orchestrator import load_paths

MARK = 'open("ran-it", "w").close()\n'


def _home(folder: Path) -> Path:
    """A HOME of the agent's holding no startup file (the call's folder holds it)."""
    (folder / "home").mkdir(exist_ok=True)
    return folder / "home"


def _asks(folder: Path, line: str, tools: list[str], why: str, home: Path | None = None) -> None:
    asked = answer(folder, line, tools, home=home or _home(folder))[0]
    assert asked == [f"matches {RULE}: {why}: cannot be read"], line


def _silent(folder: Path, line: str, tools: list[str]) -> None:
    assert answer(folder, line, tools, home=_home(folder))[0] == [], line


def _with_pytest(line: str) -> str:
    """``line`` run with this venv's pytest first on PATH (as the agent's would be), its
    installed plugins not loaded (they took seconds; the planted one still is)."""
    bin_folder = Path(sys.executable).parent
    return f'export PATH="{bin_folder}:$PATH" PYTEST_DISABLE_PLUGIN_AUTOLOAD=1; {line}'


def test_pytest_plugin_variables_asks(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "mod.py").write_text(MARK + "class W(Warning):\n    pass\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    for line in (
        "PYTHONPATH=p PYTEST_PLUGINS=mod pytest -q test_a.py",
        "PYTHONPATH=p PYTEST_ADDOPTS='-q -p mod' pytest test_a.py",
    ):
        assert runs(_with_pytest(line), tmp_path), line
        name = line.split(" ")[1].split("=")[0]
        _asks(tmp_path, line, tools, f"gives {name} code to load or run")
    line = "PYTHONPATH=p PYTHONWARNINGS=ignore::mod.W python3 -c pass"
    assert runs(line, tmp_path)  # the module of the warning's class is imported
    _asks(tmp_path, line, tools, "gives PYTHONWARNINGS code to load or run")
    for line in (
        "PYTEST_ADDOPTS='-W ignore::mod.W' pytest",
        "PYTEST_ADDOPTS='-qp mod' pytest",
        "PYTEST_ADDOPTS='-c x.ini' pytest",
        "export PYTEST_PLUGINS=mod; pytest",
    ):
        name = line.removeprefix("export ").split("=")[0]
        _asks(tmp_path, line, tools, f"gives {name} code to load or run")
    for line in (  # everyday: disabling a plugin, a builtin warning class
        "PYTEST_ADDOPTS='-q -p no:cacheprovider --tb=short' pytest",
        "PYTEST_ADDOPTS='-W error::DeprecationWarning -rA' pytest",
        "PYTHONWARNINGS=error::DeprecationWarning python3 -m pytest -q",
    ):
        _silent(tmp_path, line, tools)


def test_pytest_given_a_module_on_its_line_asks(tmp_path: Path) -> None:
    """As code in options (`cargo --config`, `make SHELL=`): a rule on pytest allows running
    it, not a module the line names for it to import; a rule naming the option exempts it."""
    (tmp_path / "mod.py").write_text(MARK + "class W(Warning):\n    pass\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    line = "python3 -m pytest -q -p mod test_a.py"  # -m puts the call's folder on the path
    assert runs(_with_pytest(line.replace("python3", sys.executable)), tmp_path)
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3 -m pytest:*)", "Bash(.venv/bin/pytest:*)"]
    why = "gives pytest -p, a module to import"
    _asks(tmp_path, line, tools, why)
    _asks(tmp_path, "pytest -p mod", tools, why)
    _asks(tmp_path, ".venv/bin/pytest -qp mod", tools, "gives pytest -qp, a module to import")
    _asks(tmp_path, "pytest -W ignore::mod.W", tools, "gives pytest -W, a module to import")
    _silent(tmp_path, "pytest -p mod", [*tools, "Bash(pytest -p:*)"])
    for line in (
        "pytest -q -p no:cacheprovider tests/",
        "python3 -m pytest -x -p no:randomly",
        "pytest -W ignore::pytest.PytestUnraisableExceptionWarning -W error::UserWarning",
        "pytest -c /dev/null -o addopts= -k 'p or q' -m slow",
    ):
        _silent(tmp_path, line, tools)


def test_pythonpath_holding_sitecustomize_asks(tmp_path: Path) -> None:
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    (tmp_path / "src").mkdir()
    _silent(tmp_path, "PYTHONPATH=src:. pytest -q", tools)  # nothing planted: everyday
    (tmp_path / "sitecustomize.py").write_text(MARK)
    assert runs("PYTHONPATH=. python3 -c pass", tmp_path)
    assert not runs("python3 -c pass", tmp_path)  # only through PYTHONPATH
    planted = tmp_path / "sitecustomize.py"
    why = f"PYTHONPATH=src:. loads {planted}, which Python runs at start"
    _asks(tmp_path, "PYTHONPATH=src:. pytest -q", tools, why)
    for line, value in (
        ("export PYTHONPATH=.; pytest", "."),
        ("env PYTHONPATH=. make test", "."),
        ("PYTHONPATH=: pytest", ":"),  # an empty entry is the current folder
    ):
        why = f"PYTHONPATH={value} loads {planted}, which Python runs at start"
        _asks(tmp_path, line, [*tools, "Bash(make:*)"], why)
    _silent(tmp_path, "PYTHONPATH=src pytest -q", tools)
    _silent(tmp_path, "PYTHONPATH= pytest -q", tools)
    # from a folder the line moves to, and a usercustomize (a system Python's user site)
    (tmp_path / "sub").mkdir()
    planted.rename(tmp_path / "sub" / "usercustomize.py")
    why = f"PYTHONPATH=. loads {tmp_path / 'sub' / 'usercustomize.py'}, which Python runs at start"
    _asks(tmp_path, "cd sub && PYTHONPATH=. pytest", tools, why)
    # a line that may write one first, and a value the shell builds
    why = "PYTHONPATH=.: the line may write a file it loads (sitecustomize.py)"
    _asks(tmp_path, "cp x sitecustomize.py; PYTHONPATH=. pytest", tools, why)
    why = "PYTHONPATH names a folder known only at run time (PYTHONPATH=$d) to load code from"
    _asks(tmp_path, "PYTHONPATH=$d pytest", tools, why)
    # the inherited value and the shell's folder are known: read, not asked about
    (tmp_path / "sub" / "usercustomize.py").rename(planted)
    inherited = {"PYTHONPATH": "/nonexistent"}
    for line, asks in (
        ('PYTHONPATH="$PWD/src" pytest', False),
        ("PYTHONPATH=$PYTHONPATH:${PWD}/src pytest", False),
        ("PYTHONPATH=$(pwd) pytest", True),
        ("export PYTHONPATH=${PYTHONPATH}:.; pytest", True),
    ):
        home = _home(tmp_path)
        asked = answer(tmp_path, line, tools, home=home, variables=inherited)[0]
        assert bool(asked) is asks, line
        assert all(f"loads {planted}, which Python runs at start" in a for a in asked), line
    many = ":".join(f"d{i}" for i in range(65))  # a hostile line stays cheap: it asks
    why = f"PYTHONPATH={many} names more than 64 folders to load code from, not looked into"
    _asks(tmp_path, f"PYTHONPATH={many} pytest", tools, why)


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_cargo_home_config_asks(tmp_path: Path) -> None:
    tools = ["Bash", "Bash(cargo:*)"]
    crate = tmp_path / "c"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (crate / "src" / "main.rs").write_text("fn main() {}\n")
    home = tmp_path / "x"
    home.mkdir()
    line = "cd c && CARGO_HOME=../x cargo build -q --offline"
    _silent(tmp_path, line, tools)  # no config there
    wrapper = tmp_path / "w.sh"
    wrapper.write_text(f'#!/bin/sh\ntouch {tmp_path}/ran-it\nexec "$@"\n')
    wrapper.chmod(0o755)
    (home / "config.toml").write_text(f'[build]\nrustc-wrapper = "{wrapper}"\n')
    real = shutil.which("cargo")  # its toolchain: HOME is the test's folder
    env = f'RUSTUP_HOME="{os.environ.get("RUSTUP_HOME", Path.home() / ".rustup")}"'
    assert runs(f"{env}; export RUSTUP_HOME; {line.replace('cargo', str(real), 1)}", tmp_path)
    why = f"CARGO_HOME=../x loads {home / 'config.toml'}, which may name programs cargo runs"
    _asks(tmp_path, line, tools, why)


def test_makefiles_and_shell_flags_ask(tmp_path: Path) -> None:
    tools = ["Bash", "Bash(make:*)"]
    (tmp_path / "Makefile").write_text("all:\n\t@true; true\n")
    (tmp_path / "x.mk").write_text("$(shell touch ran-it)\n")
    assert runs("MAKEFILES=./x.mk make", tmp_path)
    _asks(tmp_path, "MAKEFILES=./x.mk make", tools, "gives MAKEFILES code to load or run")
    # a login (or interactive) recipe shell reads the HOME's startup file: dash's ~/.profile
    (tmp_path / ".profile").write_text("touch ran-it\n")
    assert runs("make .SHELLFLAGS=-lc", tmp_path)
    assert not runs("make .SHELLFLAGS=-ec", tmp_path)
    for flags in ("-lc", "-ic", "'--login -c'", "'-e -i -c'"):
        line = f"make .SHELLFLAGS={flags}"
        shown = flags.strip("'")
        why = "gives make startup files for the recipes' shell to run in the variable "
        why += f".SHELLFLAGS={shown}"
        _asks(tmp_path, line, tools, why)
    _asks(
        tmp_path,
        "MAKEFLAGS=.SHELLFLAGS=-ic make",
        tools,
        "gives MAKEFLAGS code to load or run",
    )
    for line in ("make .SHELLFLAGS=-ec", "make '.SHELLFLAGS=-o pipefail -c'", "make -j4 test"):
        _silent(tmp_path, line, tools)


def test_make_command_line_variables_reach_the_recipes(tmp_path: Path) -> None:
    """make puts its command line's variables in each recipe's environment: read as if
    set before the recipe's command (they were read as make's own only)."""
    tools = ["Bash", "Bash(make:*)"]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "sitecustomize.py").write_text(MARK)
    (tmp_path / "Makefile").write_text(
        "test:\n\t@python3 -c pass\nfetch:\n\t@git ls-remote ssh://h/r >/dev/null 2>&1 || true\n"
    )
    assert runs("make PYTHONPATH=p test", tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'sitecustomize.py'}, which Python runs at start"
    _asks(tmp_path, "make PYTHONPATH=p test", tools, why)
    assert runs("make GIT_SSH_COMMAND='touch ran-it; false' fetch", tmp_path)
    line = "make GIT_SSH_COMMAND='git push -q' fetch"
    asked = answer(tmp_path, line, tools, home=_home(tmp_path))[0]
    assert asked == [f"matches {RULE}: the command is on the line"]
    for line, name in (
        ("make LD_PRELOAD=./x.so test", "LD_PRELOAD"),
        ("make -j2 BASH_ENV=./x test", "BASH_ENV"),
    ):
        _asks(tmp_path, line, tools, f"gives {name} code to load or run")
    for line in ("make -j4 V=1 CC=clang PREFIX=/usr/local CFLAGS='-O2 -g' test", "make test"):
        _silent(tmp_path, line, tools)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_library_paths_ask(tmp_path: Path) -> None:
    """A library of the allowed program's, planted: its constructor runs (`git --version`
    links libpcre2-8, whose real copy the planted one loads); an iconv module likewise."""
    real = subprocess.run(
        ["sh", "-c", "ldd \"$(command -v git)\" | grep -o '/[^ ]*libpcre2-8.so.0'"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not real:
        pytest.skip("git does not link libpcre2-8 here")
    tools = ["Bash", "Bash(git:*)", "Bash(iconv:*)"]
    source = tmp_path / "m.c"
    source.write_text(
        "#include <fcntl.h>\n#include <unistd.h>\n"
        "__attribute__((constructor)) static void m(void) "
        '{ close(open("ran-it", O_CREAT | O_WRONLY, 0600)); }\n'
        'int gconv_init(void *s) { close(open("ran-it", O_CREAT | O_WRONLY, 0600)); return 1; }\n'
        "int gconv(void) { return 1; }\n"
    )
    (tmp_path / "x").mkdir()
    library = tmp_path / "x" / "libpcre2-8.so.0"
    build = ["gcc", "-shared", "-fPIC", "-o", str(library), str(source)]
    subprocess.run([*build, "-Wl,-soname,libpcre2-8.so.0", real], check=True)
    line = "LD_LIBRARY_PATH=./x git --version"
    assert runs(line, tmp_path)
    _asks(tmp_path, line, tools, "gives LD_LIBRARY_PATH code to load or run")
    line = "LD_PRELOAD=./x/libpcre2-8.so.0 git --version"  # asked already: the same file
    assert runs(line, tmp_path)
    _asks(tmp_path, line, tools, "gives LD_PRELOAD code to load or run")
    (tmp_path / "g").mkdir()
    subprocess.run([*build[:4], str(tmp_path / "g" / "pwn.so"), str(source)], check=True)
    (tmp_path / "g" / "gconv-modules").write_text("module PWN// INTERNAL pwn 2\n")
    line = "GCONV_PATH=./g iconv -f PWN -t UTF-8 </dev/null"
    assert runs(line, tmp_path)
    _asks(tmp_path, line, tools, "gives GCONV_PATH code to load or run")
    for line in (
        "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu git --version",
        "LD_LIBRARY_PATH= git --version",
    ):
        _silent(tmp_path, line, tools)
    for line in ("LD_LIBRARY_PATH=/usr/lib: git status", "LD_LIBRARY_PATH=/usr/../tmp git status"):
        _asks(tmp_path, line, tools, "gives LD_LIBRARY_PATH code to load or run")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_prompt_code_asks(tmp_path: Path) -> None:
    """PS0 runs after the window's shell reads a command: keys typed by `send-keys`,
    which a rule naming it allows (measured: the PS1 of the environment did not run in
    tmux's login shell here, Debian's /etc/bash.bashrc setting its own; a shell that keeps
    it runs its substitutions, an octal escape building one)."""
    work, home = tmp_path / "w", _home(tmp_path)  # apart: a line writing above a HOME asks
    work.mkdir()
    socket = tmp_path / "s"
    tools = ["Bash", "Bash(tmux:*)", "Bash(tmux send-keys:*)", "Bash(export:*)"]
    line = f"PS0='$(touch ran-it)' tmux -S {socket} new -d \\; send-keys true Enter"
    wait = "; for i in $(seq 100); do [ -e ran-it ] && break; sleep 0.1; done"
    try:
        assert runs(line + wait, work)
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False)
    _asks(work, line, tools, "gives PS0 code to load or run", home)
    assert runs("echo true | PS1='\\044(touch ran-it)' bash --norc -i", tmp_path)
    for name, value in (("PS1", "'\\044(touch x)'"), ("PS1", "'`touch x`'"), ("PS2", "$p")):
        line = f"{name}={value} tmux new -d"
        _asks(work, line, tools, f"gives {name} code to load or run", home)
    _asks(work, "export PS0='$(x)'; tmux new -d", tools, "gives PS0 code to load or run", home)
    # a variable tmux's own -e sets for the window (new, neww, splitw, respawn…)
    line = f"tmux -S {socket} new -d -e 'PROMPT_COMMAND=touch ran-it; exit'"
    try:
        assert runs(line + wait, work)
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False)
    line = "tmux new -d -e 'PROMPT_COMMAND=git push -q'"
    assert answer(work, line, tools, home=home)[0] == [
        f"matches {RULE}: the command is on the line"
    ]
    for line in ("tmux new -d -e BASH_ENV=./x 'sleep 1'", "tmux new -d \\; neww -d -eBASH_ENV=x"):
        _asks(work, line, tools, "gives BASH_ENV code to load or run", home)
    assert answer(work, "tmux new -d -e LANG=C.UTF-8 'sleep 1'", tools, home=home)[0] == []
    assert answer(work, "PS1='\\u@\\h:\\w\\$ ' tmux new -d", tools, home=home)[0] == []


def test_python_home_and_user_base_ask(tmp_path: Path) -> None:
    """Python's library (``encodings`` is imported at start) and the user site's ``.pth``
    files (their ``import`` lines run; a venv's Python has no user site)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = tmp_path / "u" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (site / "a.pth").write_text("import os; " + MARK)
    (tmp_path / "x" / "lib" / version / "encodings").mkdir(parents=True)
    marker = 'import _io; _io.open("ran-it", "w").close()\n'  # no builtins yet
    (tmp_path / "x" / "lib" / version / "encodings" / "__init__.py").write_text(marker)
    python = Path(sys.base_prefix) / "bin" / "python3"  # not a venv's
    if python.exists():
        assert runs(f"PYTHONUSERBASE=./u {python} -c pass", tmp_path)
        assert runs(f"PYTHONHOME=./x {python} -c pass", tmp_path)
    tools = ["Bash", "Bash(python3:*)", "Bash(pytest:*)"]
    for line in ("PYTHONUSERBASE=./u pytest", "PYTHONHOME=./x python3 -m json.tool f"):
        name = line.split("=")[0]
        _asks(tmp_path, line, tools, f"gives {name} code to load or run")
    _silent(tmp_path, "PYTHONHOME=/usr python3 -m json.tool f", tools)


def test_pythonstartup_asks(tmp_path: Path) -> None:
    """Only an interactive Python runs it (measured), yet setting it is rare: it asks."""
    (tmp_path / "s.py").write_text(MARK)
    assert runs("echo pass | PYTHONSTARTUP=s.py python3 -i", tmp_path)
    assert not runs("PYTHONSTARTUP=s.py python3 -c pass", tmp_path)
    tools = ["Bash", "Bash(python3:*)", "Bash(python3 -i)"]
    line = "PYTHONSTARTUP=s.py python3 -i"
    _asks(tmp_path, line, tools, "gives PYTHONSTARTUP code to load or run")


def test_git_allow_protocol_in_the_roster_env_asks(tmp_path: Path) -> None:
    """The roster's `env` reaches the agent's shell: `GIT_ALLOW_PROTOCOL=ext` there lets
    `git fetch o` run the ext:: URL of `.git/remotes/o` (measured below)."""
    repo = tmp_path / "r"
    git_run("init", "-q", str(repo), cwd=tmp_path)
    (repo / "x.sh").write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-it\nexit 1\n")
    (repo / "x.sh").chmod(0o755)
    (repo / ".git" / "remotes").mkdir()
    (repo / ".git" / "remotes" / "o").write_text("URL: ext::sh x.sh\nPull: refs/heads/*:o/*\n")
    env = {**os.environ, "HOME": str(tmp_path), "GIT_ALLOW_PROTOCOL": "ext"}
    subprocess.run(
        ["bash", "-c", "git fetch o"], cwd=repo, env=env, capture_output=True, check=False
    )
    assert (tmp_path / "ran-it").exists()
    tools = ["Bash", "Bash(git fetch:*)"]
    ext = {"GIT_ALLOW_PROTOCOL": "ext"}
    asked = answer(repo, "git fetch o", tools, home=tmp_path, variables=ext)[0]
    why = "GIT_ALLOW_PROTOCOL=ext in the agent's environment lets git fetch run an ext:: URL's"
    assert asked == [f"matches {RULE}: {why} command: cannot be read"]
    everyday = {"GIT_ALLOW_PROTOCOL": "https:ssh"}
    assert answer(repo, "git fetch o", tools, home=tmp_path, variables=everyday)[0] == []
    assert answer(repo, "git status", tools, home=tmp_path, variables=ext)[0] == []


def test_what_is_read_before_a_shell_body_holds_for_it(tmp_path: Path) -> None:
    """Assignments and wrappers before `sh -c`, `eval`, `env -S` were dropped once the
    body was read: `BASH_ENV=./x bash -c true` ran x, `env -C r bash -c 'git st'` r's
    alias, each unasked (with no allow rule at all)."""
    (tmp_path / "x").write_text("touch ran-it\n")
    assert runs("BASH_ENV=./x bash -c true", tmp_path)
    for line, name in (
        ("BASH_ENV=./x bash -c true", "BASH_ENV"),
        ("LD_PRELOAD=./x.so eval true", "LD_PRELOAD"),
        ("LD_PRELOAD=./x.so env -S true", "LD_PRELOAD"),
        ("strace -o /dev/null -E BASH_ENV=./x bash -c true", "BASH_ENV"),
        ("bwrap --dev-bind / / --setenv BASH_ENV ./x bash -c true", "BASH_ENV"),
    ):
        _asks(tmp_path, line, ["Bash"], f"gives {name} code to load or run")
    line = "GIT_SSH_COMMAND='git push -q' sh -c 'git fetch'"
    assert answer(tmp_path, line, ["Bash"], home=_home(tmp_path))[0] == [
        f"matches {RULE}: the command is on the line"
    ]
    _silent(tmp_path, "LANG=C bash -c 'ls'", ["Bash"])
    remote, repo = pushable(tmp_path)
    git(repo, "config", "alias.st", "push -q origin main")
    line = "env -C repo bash -c 'git st'"
    runs(line, tmp_path)  # bash with no terminal; what shows is the push
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")  # it pushed
    why = f"alias.st in git's config ({repo}) makes it run git push -q origin main"
    assert answer(tmp_path, line, ["Bash"], home=_home(tmp_path))[0] == [f"matches {RULE}: {why}"]


def test_pythonpath_shadowing_a_module_asks(tmp_path: Path) -> None:
    """A PYTHONPATH entry comes before the standard library and pytest's own modules: a
    module named as one of them is imported in its place; a zip archive as the entry is
    imported from (each ran unasked: only a sitecustomize was looked for)."""
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    (tmp_path / "p" / "encodings").mkdir(parents=True)
    (tmp_path / "p" / "mod").mkdir()  # a project's own package: everyday
    (tmp_path / "p" / "mod" / "__init__.py").write_text("")
    (tmp_path / "p" / "json").mkdir()  # no __init__: a namespace, passed over
    (tmp_path / "p" / "argparse.md").write_text("")
    _silent(tmp_path, "PYTHONPATH=p pytest -q", tools)
    planted = tmp_path / "p" / "encodings" / "__init__.py"
    planted.write_text('import _io; _io.open("ran-it", "w").close()\n')
    assert runs("PYTHONPATH=p python3 -c pass", tmp_path)
    why = f"PYTHONPATH=p loads {planted.parent}, which Python imports in place of its encodings"
    _asks(tmp_path, "PYTHONPATH=p python3 -m json.tool f", tools, why)
    planted.unlink()
    (tmp_path / "p" / "pluggy.py").write_text(MARK)
    assert runs(_with_pytest("PYTHONPATH=p pytest -q test_a.py"), tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'pluggy.py'}, which Python imports in place of"
    _asks(tmp_path, "PYTHONPATH=p pytest -q", tools, why + " its pluggy")
    (tmp_path / "p" / "pluggy.py").unlink()
    why = "PYTHONPATH=p: the line may write a file it loads (p/argparse.py)"
    _asks(tmp_path, "cp x p/argparse.py; PYTHONPATH=p pytest", tools, why)
    with zipfile.ZipFile(tmp_path / "lib.txt", "w") as archive:
        archive.writestr("sitecustomize.py", MARK)
    assert runs("PYTHONPATH=lib.txt python3 -c pass", tmp_path)
    why = f"PYTHONPATH=p:lib.txt names the file {tmp_path / 'lib.txt'}, a zip archive Python"
    _asks(tmp_path, "PYTHONPATH=p:lib.txt pytest -q", tools, why + " imports from")


def test_pytest_ini_override_naming_a_warning_module_asks(tmp_path: Path) -> None:
    """`-o filterwarnings=…::mod.W` imports mod to find the class, as `-W` does."""
    (tmp_path / "mod.py").write_text(MARK + "class W(Warning):\n    pass\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    line = "python3 -m pytest -q -o filterwarnings=ignore::mod.W test_a.py"
    assert runs(_with_pytest(line.replace("python3", sys.executable)), tmp_path)
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3 -m pytest:*)"]
    _asks(tmp_path, line, tools, "gives pytest -o, a module to import")
    line = "pytest --override-ini filterwarnings=error::mod.W"
    _asks(tmp_path, line, tools, "gives pytest --override-ini, a module to import")
    _asks(
        tmp_path,
        "pytest -qofilterwarnings=ignore::mod.W",
        tools,
        "gives pytest -qofilterwarnings=ignore::mod.W, a module to import",
    )
    for line in ("pytest -o filterwarnings=error::DeprecationWarning", "pytest -o addopts= -q"):
        _silent(tmp_path, line, tools)


def test_variables_set_past_an_assignment_ask(tmp_path: Path) -> None:
    """Ways the shell sets an exported variable other than `NAME=value`, each of which ran
    x unasked with no allow rule: a loop's variable, `${NAME:=…}`, a name `export` gets
    from a brace or a parameter expansion, a name reference's target; and `~+` (the
    shell's folder) in a PYTHONPATH, read as a user's HOME."""
    (tmp_path / "x").write_text("touch ran-it\n")
    why = "gives BASH_ENV code to load or run"
    for line, asked in (
        ("export BASH_ENV; for BASH_ENV in ./x; do bash -c true; done", why),
        ("export BASH_ENV; : ${BASH_ENV:=./x}; bash -c true", why),
        ("export BASH_ENV; : ${BASH_ENV=./x}; bash -c true", why),
        ("declare -n r=BASH_ENV; export r=./x; bash -c true", why),
        ("export {BASH_ENV,X}=./x; bash -c true", ""),
        ("n=BASH_ENV; export $n=./x; bash -c true", ""),
    ):
        assert runs(line, tmp_path), line
        reasons = answer(tmp_path, line, ["Bash"], home=_home(tmp_path))[0]
        if asked:
            assert reasons == [f"matches {RULE}: {why}: cannot be read"], line
        else:
            assert len(reasons) == 1, line
            assert "cannot be read with confidence" in reasons[0], line
    for line in (
        'export PATH="$HOME/bin:$PATH"; for f in *.py; do echo $f; done',
        "declare -A m=([a]=1); local -a a=(1 2); export -n X; echo ${X:=1} ${Y=2}",
    ):
        _silent(tmp_path, line, ["Bash"])
    (tmp_path / "sitecustomize.py").write_text(MARK)
    tools = ["Bash", "Bash(python3:*)"]
    assert runs("PYTHONPATH=~+ python3 -c pass", tmp_path)
    why = f"PYTHONPATH=~+ loads {tmp_path / 'sitecustomize.py'}, which Python runs at start"
    _asks(tmp_path, "PYTHONPATH=~+ python3 -m json.tool f", tools, why)
    why = "PYTHONPATH names a folder known only at run time (PYTHONPATH=~-) to load code from"
    _asks(tmp_path, "cd sub; PYTHONPATH=~- python3 -m json.tool f", tools, why)


def test_python_m_with_a_module_planted_in_the_call_folder_asks(tmp_path: Path) -> None:
    """`python3 -m NAME` puts the call's folder first on the path: ./NAME.py runs, as
    `python3 NAME.py` would (exempt by a rule on the command, Bash(python3:*) too), and so
    does a module there named as one it imports (./json/ for `-m json.tool`; it ran
    unasked under Bash(python3:*)), which no rule on the command names. -I/-P do not."""
    tools = ["Bash", "Bash(python3:*)", "Bash(python3 -m pytest:*)"]
    (tmp_path / "tests").mkdir()
    _silent(tmp_path, "python3 -m json.tool f", tools)  # nothing named so: everyday
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").write_text(MARK)
    assert runs("python3 -m json.tool /dev/null", tmp_path)
    assert not runs("python3 -I -m json.tool /dev/null", tmp_path)
    why = f"python3 -m json.tool runs with the call's folder first on its path: {tmp_path}/json"
    _asks(tmp_path, "python3 -m json.tool f", tools, why + " is its json")
    _asks(tmp_path, "python3 -um json.tool f", tools, why + " is its json")
    _silent(tmp_path, "python3 -Im json.tool f", tools)
    (tmp_path / "json" / "__init__.py").unlink()
    (tmp_path / "mod.py").write_text(MARK)
    assert runs("python3 -m mod", tmp_path)
    why = f"python3 -m mod runs with the call's folder first on its path: {tmp_path}/mod.py"
    _asks(tmp_path, "python3 -m mod", ["Bash", "Bash(python3 -m pytest:*)"], why + " is its mod")
    _silent(tmp_path, "python3 -m mod", tools)  # as `python3 mod.py`: the rule's to run
    _silent(tmp_path, "python3 -m pytest -q tests", tools)
    why = "python3 -m pytest: the line may write a file it loads (json.py)"
    _asks(tmp_path, "cp x json.py; python3 -m pytest -q", tools, why)
    _silent(tmp_path, "cp x pytest.py; python3 -m pytest -q", tools)  # the rule names it
    why = "python3 -m json.tool: it may be read in a folder known only at run time (cd $d)"
    _asks(tmp_path, 'cd "$d" && python3 -m json.tool', tools, why)


def test_pycache_prefix_asks(tmp_path: Path) -> None:
    """Python runs the bytecode of a pycache prefix in place of a module's source when
    its header matches the source's time and size: a planted one for argparse ran under
    Bash(pytest:*) and Bash(python3:*), unasked (PYTHONPYCACHEPREFIX, -X pycache_prefix)."""
    import argparse
    from importlib import _bootstrap_external

    source = Path(argparse.__file__)
    stat = source.stat()
    code = compile(MARK + source.read_text(), str(source), "exec")
    tag = sys.implementation.cache_tag
    planted = tmp_path / "c" / f"{str(source.with_suffix('')).lstrip('/')}.{tag}.pyc"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(
        _bootstrap_external._code_to_timestamp_pyc(code, stat.st_mtime, stat.st_size)  # type: ignore[attr-defined]
    )
    python = sys.executable
    assert runs(f"{python} -X pycache_prefix=./c -m argparse", tmp_path)
    assert runs(f"PYTHONPYCACHEPREFIX=./c {python} -m argparse", tmp_path)
    assert not runs(f"{python} -m argparse", tmp_path)
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    why = "gives PYTHONPYCACHEPREFIX code to load or run"
    _asks(tmp_path, "PYTHONPYCACHEPREFIX=./c pytest -q", tools, why)
    for line, option in (
        ("python3 -X pycache_prefix=./c -m pytest", "-X"),
        ("python3 -IXpycache_prefix=c t.py", "-IX"),
    ):
        _asks(tmp_path, line, tools, f"gives python3 {option} pycache_prefix, bytecode to run")
    for line in ("python3 -X importtime -m json.tool f", "python3 -W default::X -m json.tool f"):
        _silent(tmp_path, line, tools)


def test_many_load_paths_on_one_line_ask(tmp_path: Path) -> None:
    """Each variable (and `python3 -m`) is looked up from each folder the line moves to:
    a hostile line of 1,000 `python3 -m mN; cd fN` took 20 s; past 256 lookups it asks."""
    tools = ["Bash", "Bash(python3:*)", "Bash(cd:*)"]
    line = "".join(f"python3 -m m{i}; cd f{i % 4}; " for i in range(100))
    why = f"python3 -m m0 and 99 more {load_paths.TOO_MANY_PLACES}"
    _asks(tmp_path, line, tools, why)
    _silent(tmp_path, "python3 -m m0; cd f0; python3 -m m1; PYTHONPATH=src python3 -m m2", tools)


def test_a_load_folder_the_line_makes_asks(tmp_path: Path) -> None:
    """A PYTHONPATH folder not there yet, which the line makes from one holding a
    sitecustomize (a link, a copy): looked up before the line runs, it held nothing."""
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)", "Bash(ln:*)", "Bash(cp:*)"]
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sitecustomize.py").write_text(MARK)
    for line, made in (
        ("ln -s s l; PYTHONPATH=l python3 -m json.tool f", "l"),
        ("cp -r s q/ && PYTHONPATH=src:./q pytest -q", "q/"),
    ):
        why = f"PYTHONPATH={line.split('PYTHONPATH=')[1].split(' ')[0]}: the line may make"
        _asks(tmp_path, line, tools, f"{why} the folder it loads from ({made})")
        assert runs(line.replace("pytest -q", "python3 -c pass"), tmp_path), line
    (tmp_path / "src").mkdir()
    _silent(tmp_path, "PYTHONPATH=src pytest -q src", tools)  # there already: read as it is
    _silent(tmp_path, "PYTHONPATH=build pytest -q", tools)  # not there, not named


def test_make_directory_is_where_its_variables_are_read(tmp_path: Path) -> None:
    """`make -C sub PYTHONPATH=.` runs its recipes in sub: `.` is sub there (it ran
    sub/sitecustomize.py unasked under Bash(make:*), looked up in the call's folder)."""
    tools = ["Bash", "Bash(make:*)"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Makefile").write_text("test:\n\t@python3 -c pass\n")
    _silent(tmp_path, "make -C sub PYTHONPATH=. test", tools)  # nothing planted
    planted = tmp_path / "sub" / "sitecustomize.py"
    planted.write_text(f'open("{tmp_path}/ran-it", "w").close()\n')
    assert runs("make -C sub PYTHONPATH=. test", tmp_path)
    why = f"PYTHONPATH=. loads {planted}, which Python runs at start"
    for line in (
        "make -C sub PYTHONPATH=. test",
        "make --directory=sub PYTHONPATH=. test",
        "make test -Csub PYTHONPATH=.",
        "make -C / -C tmp/.. -C " + str(tmp_path) + " -C sub PYTHONPATH=. test",
    ):
        _asks(tmp_path, line, tools, why)


def test_home_set_on_the_line_holding_a_user_site_asks(tmp_path: Path) -> None:
    """`HOME=./h python3`: Python's user site is under it, whose `.pth` files' `import`
    lines run (a Python not a venv's), as `PYTHONUSERBASE=./h/.local` asked already."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    tools = ["Bash", "Bash(python3:*)", "Bash(git status:*)"]
    site = tmp_path / "h" / ".local" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    _silent(tmp_path, "HOME=./h python3 -m json.tool f", tools)  # an empty user site
    (site / "a.pth").write_text("import os; " + MARK)
    python = Path(sys.base_prefix) / "bin" / "python3"  # not a venv's
    if python.exists():
        assert runs(f"HOME=./h {python} -c pass", tmp_path)
    why = f"HOME=./h holds {site / 'a.pth'}, which Python runs at start"
    _asks(tmp_path, "HOME=./h python3 -m json.tool f", tools, why)
    _asks(tmp_path, "cd h && HOME=. python3 -m json.tool f", tools, why.replace("./h", "."))
    _silent(tmp_path, "HOME=/nonexistent python3 -m json.tool f", tools)


def test_pytest_debugger_class_asks(tmp_path: Path) -> None:
    """`--pdbcls=mod:Class` imports mod when a test fails under `--pdb` (measured: ./mod.py
    ran under Bash(python3 -m pytest:*), unasked), as `-p mod` does."""
    (tmp_path / "mod.py").write_text(MARK + "import pdb\nclass C(pdb.Pdb):\n    pass\n")
    (tmp_path / "test_b.py").write_text("def test_b():\n    assert 0\n")
    line = "python3 -m pytest -q -p no:cacheprovider --pdb --pdbcls=mod:C test_b.py"
    assert runs(_with_pytest(line.replace("python3", sys.executable) + " </dev/null"), tmp_path)
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3 -m pytest:*)"]
    why = "gives pytest --pdbcls=mod:C, a module to import"
    _asks(tmp_path, line, tools, why)
    _asks(
        tmp_path,
        "PYTEST_ADDOPTS='--pdbcls mod:C' pytest",
        tools,
        "gives PYTEST_ADDOPTS code to load or run",
    )
    _silent(tmp_path, "pytest -q --pdb -x", tools)


def test_pythonpath_in_the_roster_env_asks(tmp_path: Path) -> None:
    """The roster's `env` reaches the agent's shell: `PYTHONPATH: .` there makes each
    `pytest` run a planted ./sitecustomize.py (unasked: only the line's were read)."""
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    env = {"PYTHONPATH": "."}
    home = _home(tmp_path)
    assert answer(tmp_path, "pytest -q", tools, home=home, variables=env)[0] == []
    (tmp_path / "sitecustomize.py").write_text(MARK)
    assert runs(_with_pytest("export PYTHONPATH=.; pytest -q test_a.py"), tmp_path)
    why = f"the agent's environment's PYTHONPATH=. loads {tmp_path / 'sitecustomize.py'}"
    asked = answer(tmp_path, "pytest -q", tools, home=home, variables=env)[0]
    assert asked == [f"matches {RULE}: {why}, which Python runs at start: cannot be read"]
    everyday = {"PYTHONPATH": "src"}
    assert answer(tmp_path, "pytest -q", tools, home=home, variables=everyday)[0] == []


def test_pythonpath_shadowing_an_installed_module_asks(tmp_path: Path) -> None:
    """Any top-level module installed for Python is shadowed by one of a PYTHONPATH folder,
    not only the names once listed: pytest imports its autoloaded plugins (measured below:
    p/pytest_timeout.py ran under Bash(pytest:*), unasked). The folder the interpreter
    imports a module from anyway (its site-packages) shadows nothing."""
    pytest.importorskip("pytest_timeout")
    tools = ["Bash", "Bash(pytest:*)", "Bash(python3:*)"]
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    planted = tmp_path / "p" / "pytest_timeout.py"
    planted.parent.mkdir()
    planted.write_text(MARK)
    bin_folder = Path(sys.executable).parent
    line = "PYTHONPATH=p pytest -q -p no:cacheprovider test_a.py"
    assert runs(f'export PATH="{bin_folder}:$PATH"; {line}', tmp_path)
    why = f"PYTHONPATH=p loads {planted}, which Python imports in place of its pytest_timeout"
    _asks(tmp_path, line, tools, why)
    planted.unlink()
    (tmp_path / "p" / "xdist").mkdir()  # a package, written by the line
    why = "PYTHONPATH=p: the line may write a file it loads (p/xdist/__init__.py)"
    _asks(tmp_path, "touch p/xdist/__init__.py; PYTHONPATH=p pytest", tools, why)
    (tmp_path / "p" / "xdist" / "__init__.py").write_text(MARK)
    why = f"PYTHONPATH=src:p loads {tmp_path / 'p' / 'xdist'}, which Python imports in place of"
    _asks(tmp_path, "PYTHONPATH=src:p pytest", tools, why + " its xdist")
    site = Path(pytest_timeout_file()).parent  # its own folder: nothing in its place
    _silent(tmp_path, f"PYTHONPATH={site} pytest -q", tools)


def pytest_timeout_file() -> str:
    import pytest_timeout

    return str(pytest_timeout.__file__)


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK")
def test_java_options_loading_an_agent_ask(tmp_path: Path) -> None:
    """Every JVM reads JAVA_TOOL_OPTIONS and _JAVA_OPTIONS, the `java` launcher
    JDK_JAVA_OPTIONS: `-javaagent:a.jar` there runs a.jar's premain first (measured: under
    Bash(javac:*) and Bash(java -version), each ran it, unasked); `-Xmx2g` or a plain
    property is everyday."""
    agent = tmp_path / "Agent.java"
    agent.write_text(
        "public class Agent { public static void premain(String a) throws Exception"
        ' { new java.io.File("ran-it").createNewFile(); } }\n'
    )
    subprocess.run(["javac", "-d", str(tmp_path), str(agent)], check=True)
    with zipfile.ZipFile(tmp_path / "a.jar", "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nPremain-Class: Agent\n")
        jar.write(tmp_path / "Agent.class", "Agent.class")
    (tmp_path / "A.java").write_text("class A {}\n")
    tools = ["Bash", "Bash(javac:*)", "Bash(java -version)"]
    for line in (
        "JAVA_TOOL_OPTIONS=-javaagent:a.jar javac A.java",
        "export _JAVA_OPTIONS='-Xmx1g -javaagent:a.jar'; javac A.java",
        "JDK_JAVA_OPTIONS=-javaagent:a.jar java -version",
    ):
        assert runs(line, tmp_path), line
        name = line.removeprefix("export ").split("=")[0]
        _asks(tmp_path, line, tools, f"gives {name} code to load or run")
    for line in (
        "JAVA_TOOL_OPTIONS=-Dfile.encoding=UTF-8 javac A.java",
        "_JAVA_OPTIONS='-Xmx2g -Xss4m -Duser.language=en' javac A.java",
        "javac -J-Xmx1g -d out A.java",
    ):
        _silent(tmp_path, line, tools)
    # a JDK tool's -J gives its JVM the same options (measured: ran under Bash(javac:*))
    line = "javac -J-javaagent:a.jar A.java"
    assert runs(line, tmp_path)
    _asks(tmp_path, line, tools, "gives javac -J-javaagent:a.jar, code for its JVM to load")


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK")
def test_javac_given_annotation_processors_asks(tmp_path: Path) -> None:
    """javac runs the annotation processors its options name (measured: `javac
    -processorpath pp -processor E A.java` ran E's static initialiser, unasked under
    Bash(javac:*)), a plugin `-Xplugin:` names, and an `@file` may give either; exempt
    by a rule naming the option. `-proc:none`, `-cp`, `-d` ask nothing."""
    (tmp_path / "E.java").write_text(
        "import javax.annotation.processing.*; import javax.lang.model.element.*;"
        ' @SupportedAnnotationTypes("*") public class E extends AbstractProcessor {'
        ' static { try { new java.io.File("ran-it").createNewFile(); } catch (Exception e)'
        " {} } public boolean process(java.util.Set<? extends TypeElement> a,"
        " RoundEnvironment r) { return false; } }\n"
    )
    subprocess.run(["javac", "-d", str(tmp_path / "pp"), str(tmp_path / "E.java")], check=True)
    (tmp_path / "E.java").unlink()
    (tmp_path / "A.java").write_text("class A {}\n")
    (tmp_path / "args").write_text("-processorpath pp -processor E\n")
    tools = ["Bash", "Bash(javac:*)"]
    for line, option in (
        ("javac -processorpath pp -processor E A.java", "-processorpath"),
        ("javac -cp pp -processor E -d out A.java", "-processor"),
        ("javac --processor-path=pp -processor E A.java", "--processor-path=pp"),
        ("javac @args A.java", "@args"),
    ):
        assert runs(line, tmp_path), line
        _asks(tmp_path, line, tools, f"gives javac {option}, code it runs as it compiles")
    _asks(
        tmp_path,
        "javac -Xplugin:P A.java",
        tools,
        "gives javac -Xplugin:P, code it runs as it compiles",
    )
    for line in ("javac -proc:none -d out A.java", "javac -cp pp:lib/x.jar --release 17 A.java"):
        _silent(tmp_path, line, tools)


def test_pythonpath_project_folder_named_as_an_installed_stray_asks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution installing a top-level `tests` package (sdists do) made every
    `PYTHONPATH=. pytest` of a project with a tests/ package ask: only the project's own
    code imports such a name. Its real modules are still looked for (a distribution
    installed now, read as the hook reads them)."""
    site = tmp_path / "site"
    (site / "stray-1.0.dist-info").mkdir(parents=True)
    (site / "stray-1.0.dist-info" / "METADATA").write_text("Name: stray\nVersion: 1.0\n")
    (site / "stray-1.0.dist-info" / "top_level.txt").write_text("tests\nstraymod\n")
    (site / "tests").mkdir()
    (site / "tests" / "__init__.py").write_text("")
    (site / "straymod.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    load_paths.shadowed.cache_clear()
    load_paths._found.cache_clear()
    try:
        work = tmp_path / "w"
        (work / "tests").mkdir(parents=True)
        (work / "tests" / "__init__.py").write_text("")
        tools = ["Bash", "Bash(pytest:*)", "Bash(python3 -m pytest:*)"]
        _silent(work, "PYTHONPATH=. pytest -q tests", tools)
        _silent(work, "python3 -m pytest -q tests", tools)
        (work / "straymod.py").write_text(MARK)
        why = f"PYTHONPATH=. loads {work / 'straymod.py'}, which Python imports in place of"
        _asks(work, "PYTHONPATH=. pytest -q tests", tools, why + " its straymod")
    finally:
        load_paths.shadowed.cache_clear()
        load_paths._found.cache_clear()


def test_tar_options_giving_a_command_ask(tmp_path: Path) -> None:
    """GNU tar takes options from TAR_OPTIONS as from its line: a command there
    (`--checkpoint-action=exec=…`, `--to-command=…`) ran under Bash(tar:*) while only
    listing an archive, unasked, and `git push` hidden there too (on the line, tar's
    command options are read as a line)."""
    (tmp_path / "f").write_text("a")
    subprocess.run(["tar", "cf", "t.tar", "f"], cwd=tmp_path, check=True)
    tools = ["Bash", "Bash(tar:*)"]
    why = "gives TAR_OPTIONS code to load or run"
    for line in (
        "TAR_OPTIONS='--checkpoint=1 --checkpoint-action=exec=touch\\ ran-it' tar tf t.tar",
        "export TAR_OPTIONS='--to-command=touch\\ ran-it'; tar xf t.tar",
    ):
        assert runs(line, tmp_path), line
        _asks(tmp_path, line, tools, why)
    for line in (
        "TAR_OPTIONS='--checkpoint=1 --checkpoint-act=exec=git\\ push' tar tf t.tar",
        "TAR_OPTIONS='-vI git\\ push' tar tf t.tar.zst",
        "TAR_OPTIONS=--use-compress-program=./z tar tf t.tar",
    ):
        _asks(tmp_path, line, tools, why)
    for line in (
        "TAR_OPTIONS=--no-same-owner tar xf t.tar",
        "TAR_OPTIONS='-v --wildcards' tar tf t.tar",
    ):
        _silent(tmp_path, line, tools)


def test_pythonpath_read_only_folder_of_the_agents_asks(tmp_path: Path) -> None:
    """A module planted in a folder the agent then made read-only shadows all the same: a
    relative folder is the line's, an absolute one the agent owns its own (measured:
    json.tool ran p/argparse.py; an agent not root was not asked, its folder unwritable)."""
    tools = ["Bash", "Bash(python3:*)", "Bash(pytest:*)"]
    planted = tmp_path / "p" / "argparse.py"
    planted.parent.mkdir()
    planted.write_text(MARK)
    planted.parent.chmod(0o555)
    try:
        assert runs("PYTHONPATH=p python3 -m json.tool /dev/null", tmp_path)
        for value in ("p", str(planted.parent)):
            why = f"PYTHONPATH={value} loads {planted}, which Python imports in place of"
            _asks(tmp_path, f"PYTHONPATH={value} pytest -q", tools, why + " its argparse")
    finally:
        planted.parent.chmod(0o755)


_CONSTRUCTOR = """#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void ran(void) {
    close(open("ran-it", O_CREAT | O_WRONLY, 0600));
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_pythonpath_package_whose_init_is_an_extension_asks(tmp_path: Path) -> None:
    """A package is a folder holding ``__init__`` with any suffix Python imports, an
    extension's too: ``p/argparse/__init__.so``, a shared library whose constructor runs
    as Python loads it (measured: `PYTHONPATH=p python3 -m json.tool` ran it, unasked under
    Bash(pytest:*): only ``__init__.py``/``.pyc`` made a package)."""
    tools = ["Bash", "Bash(python3:*)", "Bash(pytest:*)"]
    (tmp_path / "c.c").write_text(_CONSTRUCTOR)
    package = tmp_path / "p" / "argparse"
    package.mkdir(parents=True)
    planted = package / "__init__.so"
    built = subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(planted), str(tmp_path / "c.c")], check=False
    )
    assert built.returncode == 0
    assert runs("PYTHONPATH=p python3 -m json.tool /dev/null", tmp_path)
    why = f"PYTHONPATH=p loads {package}, which Python imports in place of its argparse"
    _asks(tmp_path, "PYTHONPATH=p pytest -q", tools, why)
    _asks(tmp_path, "cd p && PYTHONPATH=: pytest -q", tools, why.replace("=p", "=:"))
    planted.unlink()
    why = "PYTHONPATH=p: the line may write a file it loads (p/argparse/__init__.abi3.so)"
    _asks(tmp_path, "cp x.so p/argparse/__init__.abi3.so; PYTHONPATH=p pytest", tools, why)
    _silent(tmp_path, "PYTHONPATH=p pytest -q", tools)  # a namespace: passed over


def _namespace_installed() -> str:
    """A namespace package installed for this Python (``librt``, mypy's, or ``opentelemetry``),
    or ""."""
    import importlib.util

    for name in ("librt", "opentelemetry"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is None and spec.submodule_search_locations:
            return name
    return ""


def test_pythonpath_portion_of_an_installed_namespace_package_asks(tmp_path: Path) -> None:
    """An installed namespace package (no ``__init__``) takes a portion from each folder on
    the path, a PYTHONPATH folder's first: its submodule is imported in place of the
    installed one's (measured: `PYTHONPATH=p mypy x.py` ran p/librt/internal.py, unasked
    under Bash(mypy:*): a folder with no ``__init__`` was passed over as a namespace)."""
    name = _namespace_installed()
    if not name:
        pytest.skip("no namespace package installed")
    tools = ["Bash", "Bash(python3:*)", "Bash(pytest:*)", "Bash(mypy:*)"]
    portion = tmp_path / "p" / name
    portion.mkdir(parents=True)
    (portion / "internal.py").write_text(MARK)
    line = f"PYTHONPATH=p python3 -c 'import {name}.internal'"
    assert runs(line, tmp_path)  # the portion's module, not the installed one's
    if name == "librt":  # mypy imports it at start
        mypy = Path(sys.executable).parent / "mypy"
        assert runs(f"PYTHONPATH=p {mypy} --version", tmp_path)
    why = f"PYTHONPATH=p loads {portion}, which Python imports in place of its {name}"
    _asks(tmp_path, "PYTHONPATH=p mypy x.py", tools, why)
    (portion / "internal.py").unlink()
    why = f"PYTHONPATH=p: the line may write a file it loads (p/{name}/internal.py)"
    _asks(tmp_path, f"cp e.py p/{name}/internal.py; PYTHONPATH=p mypy x.py", tools, why)
    _silent(tmp_path, "PYTHONPATH=p mypy x.py", tools)  # an empty folder: nothing imported
    (portion / "notes.txt").write_text("")
    _silent(tmp_path, "PYTHONPATH=p pytest -q src/app/json/test_a.py", tools)  # not one


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK")
def test_javac_with_a_processor_planted_on_its_class_path_asks(tmp_path: Path) -> None:
    """javac runs the annotation processors the folders of its class path list in
    META-INF/services, the call's folder by default (measured: `javac A.java` ran a
    planted ./E.class, unasked under Bash(javac:*)); `-proc:none` runs none, a folder
    holding no such list asks nothing, and a line writing one asks."""
    (tmp_path / "E.java").write_text(
        "import javax.annotation.processing.*; import javax.lang.model.element.*;"
        ' @SupportedAnnotationTypes("*") public class E extends AbstractProcessor {'
        ' static { try { new java.io.File("ran-it").createNewFile(); } catch (Exception e)'
        " {} } public boolean process(java.util.Set<? extends TypeElement> a,"
        " RoundEnvironment r) { return false; } }\n"
    )
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "E.java")], check=True)
    (tmp_path / "E.java").unlink()
    (tmp_path / "A.java").write_text("class A {}\n")
    tools = ["Bash", "Bash(javac:*)", "Bash(cp:*)"]
    _silent(tmp_path, "javac A.java", tools)
    services = tmp_path / "META-INF" / "services"
    services.mkdir(parents=True)
    listed = services / "javax.annotation.processing.Processor"
    why = "javac -cp=.: the line may write a file it loads (" + str(listed.relative_to(tmp_path))
    _asks(tmp_path, f"echo E > {listed.relative_to(tmp_path)}; javac A.java", tools, why + ")")
    listed.write_text("E\n")
    assert runs("javac A.java", tmp_path)
    why = f"javac runs the annotation processors {listed} lists (its class path: "
    _asks(tmp_path, "javac A.java", tools, why + ".)")
    _asks(tmp_path, "javac -d out -cp lib.jar:. A.java", tools, why + "lib.jar:.)")
    _silent(tmp_path, "javac -proc:none A.java", tools)
    for line in ("javac -cp lib.jar A.java", "javac -cp 'lib/*' A.java"):
        _silent(tmp_path, line, tools)
    why = "javac -cp=pp: the line may make the folder it loads from (pp)"
    _asks(tmp_path, "cp -r . pp; javac -cp pp A.java", tools, why)
    # CLASSPATH is its class path when no -cp is given (measured: `CLASSPATH=pp javac
    # A.java` ran pp's E, unasked: only the call's folder was looked into)
    (tmp_path / "pp").mkdir()
    listed.rename(tmp_path / "pp" / "list")
    (tmp_path / "pp" / "META-INF" / "services").mkdir(parents=True)
    moved = tmp_path / "pp" / "META-INF" / "services" / listed.name
    (tmp_path / "pp" / "list").rename(moved)
    (tmp_path / "E.class").rename(tmp_path / "pp" / "E.class")
    _silent(tmp_path, "javac A.java", tools)
    for line in ("CLASSPATH=pp javac A.java", "export CLASSPATH=pp; javac A.java"):
        assert runs(line, tmp_path), line
        why = f"CLASSPATH=pp: javac runs the annotation processors {moved} lists"
        _asks(tmp_path, line, tools, why)


_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _venv(folder: Path, *modules: str, plugin: str = "") -> Path:
    """A real venv at ``folder`` (no pip: fast), each of ``modules`` installed in it as an
    installer lays a distribution out (the module, its dist-info: top_level.txt, RECORD),
    ``plugin`` as a pytest plugin (its pytest11 entry point); pytest importable there
    (its packages linked from this venv's) and its console script ``bin/pytest``."""
    python = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([python, "-m", "venv", "--without-pip", folder], check=True)
    site = folder / "lib" / _VERSION / "site-packages"
    for module in [*modules, *([plugin] if plugin else [])]:
        (site / f"{module}.py").write_text("VALUE = 'installed'\n")
        info = site / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "top_level.txt").write_text(module + "\n")
        (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n")
        if module == plugin:
            (info / "entry_points.txt").write_text(f"[pytest11]\n{module} = {module}\n")
    ours = Path(pytest.__file__).parents[1]  # this venv's site-packages
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py"):
        if (ours / name).exists():
            (site / name).symlink_to(ours / name)
    script = folder / "bin" / "pytest"
    script.write_text(
        f"#!{folder / 'bin' / 'python'}\nimport sys\nfrom pytest import console_main\n"
        "sys.exit(console_main())\n"
    )
    script.chmod(0o755)
    return site


def test_pythonpath_shadowing_a_module_of_the_lines_venv_asks(tmp_path: Path) -> None:
    """A module installed only in the agent's project venv (not in the hook's Python),
    shadowed by a PYTHONPATH folder: the venv's Python imports the planted one (measured
    before: each line below ran p/fakemod.py or p/fakeplug.py, unasked under a rule on its
    program). The program's venv is read from its path, a script's `#!`, the agent's PATH."""
    site = _venv(tmp_path / "v", "fakemod", plugin="fakeplug")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fakemod.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import fakemod\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    app = tmp_path / "run.py"
    app.write_text(f"#!{tmp_path / 'v' / 'bin' / 'python'}\nimport fakemod\n")
    app.chmod(0o755)
    home = _home(tmp_path)
    mod_why = "PYTHONPATH=p loads {}, which Python imports in place of its {}"
    for line, rule in (
        ("PYTHONPATH=p v/bin/python app.py", "Bash(v/bin/python app.py:*)"),
        ("PYTHONPATH=p ./run.py", "Bash(./run.py:*)"),
        ("cd v/.. && PYTHONPATH=p v/bin/python3 app.py", "Bash(v/bin/python3:*)"),
    ):
        assert runs(line, tmp_path), line
        asked = answer(tmp_path, line, ["Bash", rule], home=home)[0]
        why = mod_why.format(tmp_path / "p" / "fakemod.py", "fakemod")
        assert asked == [f"matches {RULE}: {why}: cannot be read"], line
    (tmp_path / "p" / "fakemod.py").unlink()
    # the line may write it first (planted by the line itself: not there to be found)
    line = "cp mark.py p/fakemod.py && PYTHONPATH=p v/bin/python app.py"
    (tmp_path / "mark.py").write_text(MARK)
    assert runs(line, tmp_path)
    (tmp_path / "p" / "fakemod.py").unlink()
    asked = answer(tmp_path, line, ["Bash", "Bash(cp:*)", "Bash(v/bin/python:*)"], home=home)[0]
    why = "PYTHONPATH=p: the line may write a file it loads (p/fakemod.py)"
    assert asked == [f"matches {RULE}: {why}: cannot be read"]
    (tmp_path / "p" / "fakeplug.py").write_text(MARK)
    why = mod_why.format(tmp_path / "p" / "fakeplug.py", "fakeplug")
    line = "PYTHONPATH=p v/bin/pytest -q test_a.py"  # the plugin autoloads from p
    assert runs(line, tmp_path)
    asked = answer(tmp_path, line, ["Bash", "Bash(v/bin/pytest:*)"], home=home)[0]
    assert asked == [f"matches {RULE}: {why}: cannot be read"]
    # bare: the venv's python first on the agent's PATH (the roster's env)
    path = f"{tmp_path / 'v' / 'bin'}:{os.environ['PATH']}"
    line = "PYTHONPATH=p python -m pytest -q test_a.py"
    assert runs(f'export PATH="{path}"; {line}', tmp_path)
    tools = ["Bash", "Bash(python -m pytest:*)", "Bash(pytest:*)"]
    asked = answer(tmp_path, line, tools, home=home, variables={"PATH": path})[0]
    assert asked == [f"matches {RULE}: {why}: cannot be read"]
    asked = answer(tmp_path, "PYTHONPATH=p pytest -q", tools, home=home, variables={"PATH": path})
    assert asked[0] == [f"matches {RULE}: {why}: cannot be read"]
    asked = answer(tmp_path, "VIRTUAL_ENV=v PYTHONPATH=p pytest -q", tools, home=home)[0]
    assert asked == [f"matches {RULE}: {why}: cannot be read"]
    # everyday: the project's own modules, the venv's own site-packages as the folder
    (tmp_path / "p" / "fakeplug.py").unlink()
    (tmp_path / "p" / "mypkg").mkdir()
    (tmp_path / "p" / "mypkg" / "__init__.py").write_text("")
    # the project installed editable (setuptools' finder maps mypkg to p/mypkg): its own
    info = site / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("mypkg\n")
    finder = site / "__editable___mypkg_0_1_finder.py"
    finder.write_text(f"MAPPING = {{'mypkg': '{tmp_path / 'p' / 'mypkg'}'}}\n")
    for line in (
        "PYTHONPATH=p v/bin/python app.py",
        "PYTHONPATH=p:. v/bin/pytest -q",
        f"PYTHONPATH={site.relative_to(tmp_path)} v/bin/python app.py",
    ):
        asked = answer(
            tmp_path, line, ["Bash", "Bash(v/bin/python:*)", "Bash(v/bin/pytest:*)"], home=home
        )[0]
        assert asked == [], line
    # a Python that is not the venv's (python3 first on this PATH) imports no fakemod
    (tmp_path / "p" / "fakemod.py").write_text(MARK)
    line = "PYTHONPATH=p python3 app.py"
    assert answer(tmp_path, line, ["Bash", "Bash(python3:*)"], home=home)[0] == []


def test_a_venv_too_large_to_read_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site-packages of more entries than the hook reads (a hostile venv: 100,000
    files) is taken as holding every module: a PYTHONPATH folder's module asks."""
    site = _venv(tmp_path / "v")
    monkeypatch.setattr(load_paths, "MAX_SITE_ENTRIES", 40)
    for i in range(41):
        (site / f"m{i}.py").write_text("")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "mine.py").write_text(MARK)
    line = "PYTHONPATH=p v/bin/python -c 'import mine'"  # (app.py there: a module word)
    asked = answer(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"], home=_home(tmp_path))[0]
    mine = tmp_path / "p" / "mine.py"
    why = f"PYTHONPATH=p loads {mine}, which Python imports in place of its mine"
    assert asked == [f"matches {RULE}: {why}: cannot be read"]


@pytest.mark.timeout(60)
def test_a_fifo_in_a_venv_or_as_a_script_word_is_not_waited_on(tmp_path: Path) -> None:
    """The files read to find a line's venv (a script word's `#!`, a dist-info's
    top_level.txt, a .pth) may be FIFOs the agent made: opened for reading, each would
    block the hook until a writer came (as the hook hung here before); each is passed
    over, the module beside it still read."""
    site = _venv(tmp_path / "v", "fakemod")
    os.remove(site / "fakemod-1.0.dist-info" / "top_level.txt")
    os.mkfifo(site / "fakemod-1.0.dist-info" / "top_level.txt")
    os.mkfifo(site / "x.pth")
    os.mkfifo(tmp_path / "run.py")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fakemod.py").write_text(MARK)
    home = _home(tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'fakemod.py'}, which Python imports in place"
    for line in ("PYTHONPATH=p v/bin/python app.py", "PYTHONPATH=p ./run.py"):
        tools = ["Bash", "Bash(v/bin/python:*)", "Bash(./run.py:*)"]
        asked = answer(tmp_path, line, tools, home=home)[0]
        if line.endswith("run.py"):  # a FIFO names no venv: nothing of v's is counted
            assert asked == [], line
            continue
        assert asked == [f"matches {RULE}: {why} of its fakemod: cannot be read"], line


def test_a_venv_named_from_its_bin_a_link_home_or_pwd_is_read(tmp_path: Path) -> None:
    """The line's venv named other ways than ``v/bin/python`` (measured before: each line
    ran p/fakemod.py, fakemod only in v, unasked): its Python run from inside ``v/bin``,
    a symlink to it, ``~/v/bin``, a PATH of ``$PWD/v/bin`` (set or exported)."""
    _venv(tmp_path / "v", "fakemod")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fakemod.py").write_text(f"open({str(tmp_path / 'ran-it')!r}, 'w').close()\n")
    (tmp_path / "app.py").write_text("import fakemod\n")
    (tmp_path / "py").symlink_to(tmp_path / "v" / "bin" / "python")
    tools = ["Bash", "Bash(python:*)", "Bash(./python:*)", "Bash(./py:*)", "Bash(~/v/bin/python:*)"]
    tools += ["Bash(export:*)", "Bash(cd:*)"]
    for line, shown in (
        ("cd v/bin && PYTHONPATH=../../p ./python ../../app.py", "../../p"),
        ("PYTHONPATH=p ./py app.py", "p"),
        ("PYTHONPATH=p ~/v/bin/python app.py", "p"),  # (HOME: the call's folder)
        ("PATH=$PWD/v/bin:$PATH PYTHONPATH=p python app.py", "p"),
        ("export PATH=${PWD}/v/bin:$PATH && PYTHONPATH=p python app.py", "p"),
    ):
        assert runs(line, tmp_path), line
        asked = answer(tmp_path, line, tools, home=tmp_path)[0]
        why = f"PYTHONPATH={shown} loads {tmp_path / 'p' / 'fakemod.py'}, which Python imports"
        assert asked == [f"matches {RULE}: {why} in place of its fakemod: cannot be read"], line


def test_a_venv_with_system_site_packages_reads_its_bases_too(tmp_path: Path) -> None:
    """A venv made with ``--system-site-packages`` imports its base Python's site-packages
    too (measured before: basemod only there, ``PYTHONPATH=p v/bin/python app.py`` ran
    p/basemod.py, unasked). The base: this Python's standard library linked into a
    prefix of the test's own, its pyvenv.cfg's ``home``."""
    stdlib = Path(os.__file__).parent
    base = tmp_path / "base"
    lib = base / "lib" / stdlib.name
    (lib / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages"):
            (lib / entry.name).symlink_to(entry)
    (lib / "site-packages" / "basemod.py").write_text("VALUE = 'installed'\n")
    (base / "bin").mkdir()
    python = Path(sys.base_prefix) / "bin" / "python3"
    (base / "bin" / "python3").symlink_to(python.resolve())
    venv = ["-m", "venv", "--without-pip", "--system-site-packages", tmp_path / "v"]
    subprocess.run([python, *venv], check=True)
    config = tmp_path / "v" / "pyvenv.cfg"
    lines = config.read_text().splitlines()
    home = f"home = {base / 'bin'}"
    config.write_text("\n".join(home if x.startswith("home") else x for x in lines) + "\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "basemod.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import basemod\n")
    line = "PYTHONPATH=p v/bin/python app.py"
    assert runs(line, tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'basemod.py'}, which Python imports in place"
    _asks(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"], f"{why} of its basemod")
    # without it, the base's modules are not the venv's: p's basemod shadows none
    config.write_text(config.read_text().replace("= true", "= false"))
    _silent(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"])


def test_a_pth_folder_of_the_venv_shadowing_its_site_module_asks(tmp_path: Path) -> None:
    """A module in the venv's site-packages is imported from there, not from a folder a
    ``.pth`` file (an editable install's) adds after it: that folder, as PYTHONPATH, puts
    its own first (measured before: src/fakemod.py ran, unasked; without PYTHONPATH the
    site's ran). The project's own package there stays silent."""
    site = _venv(tmp_path / "v", "fakemod")
    (tmp_path / "src" / "proj").mkdir(parents=True)
    (tmp_path / "src" / "proj" / "__init__.py").write_text("")
    (site / "__editable__.proj-0.1.pth").write_text(f"{tmp_path / 'src'}\n")
    info = site / "proj-0.1.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("proj\n")
    (tmp_path / "src" / "fakemod.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import fakemod\n")
    line = "PYTHONPATH=src v/bin/python app.py"
    assert runs(line, tmp_path)
    assert not runs("v/bin/python app.py", tmp_path)
    why = f"PYTHONPATH=src loads {tmp_path / 'src' / 'fakemod.py'}, which Python imports"
    _asks(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"], f"{why} in place of its fakemod")
    (tmp_path / "src" / "fakemod.py").unlink()
    _silent(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"])


def test_a_module_in_a_venvs_pth_folder_its_metadata_does_not_name_asks(tmp_path: Path) -> None:
    """An editable install whose metadata names no module (hatchling's: a ``.pth`` adding
    src, a RECORD of that file only): src's modules are the venv's (measured before:
    ``PYTHONPATH=p v/bin/python app.py`` ran p/proj/__init__.py in place of src/proj,
    unasked), src read by itself, so a module added there after a first line (the site's
    folder unchanged, its reading cached) is seen too."""
    site = _venv(tmp_path / "v")
    (tmp_path / "src" / "proj").mkdir(parents=True)
    (tmp_path / "src" / "proj" / "__init__.py").write_text("")
    (site / "_proj.pth").write_text(f"{tmp_path / 'src'}\n")
    info = site / "proj-0.1.dist-info"
    info.mkdir()
    (info / "RECORD").write_text(f"_proj.pth,,\n{info.name}/RECORD,,\n")
    (tmp_path / "p" / "proj").mkdir(parents=True)
    (tmp_path / "p" / "proj" / "__init__.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import proj\n")
    tools = ["Bash", "Bash(v/bin/python:*)"]
    line = "PYTHONPATH=p v/bin/python app.py"
    assert runs(line, tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'proj'}, which Python imports in place of its"
    _asks(tmp_path, line, tools, f"{why} proj")
    _silent(tmp_path, "PYTHONPATH=src v/bin/python app.py", tools)  # the project's own
    (tmp_path / "p" / "helper.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import helper\n")
    shutil.rmtree(tmp_path / "p" / "proj")
    _silent(tmp_path, line, tools)  # helper: in no folder of v's, p's is the only one
    mtime = os.stat(site).st_mtime_ns
    (tmp_path / "src" / "helper.py").write_text("")
    assert os.stat(site).st_mtime_ns == mtime
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'helper.py'}, which Python imports in place"
    _asks(tmp_path, line, tools, f"{why} of its helper")


def test_a_venv_site_replaced_with_its_old_mtime_is_read_again(tmp_path: Path) -> None:
    """The reading of a site-packages is cached by its folder's times: one replaced
    between two lines by another given the old one's mtime (``cp -a``, ``touch -d``:
    measured before, the second line, p/fakemod.py shadowing the new site's fakemod, ran
    it unasked: the cached reading had no fakemod) is read again (its ctime, which no
    one sets, changed)."""
    site = _venv(tmp_path / "v")
    other = _venv(tmp_path / "w", "fakemod")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fakemod.py").write_text(MARK)
    (tmp_path / "app.py").write_text("import fakemod\n")
    tools = ["Bash", "Bash(v/bin/python:*)"]
    line = "PYTHONPATH=p v/bin/python app.py"
    _silent(tmp_path, line, tools)  # v has no fakemod: p's is the only one
    times = os.stat(site)
    shutil.rmtree(site)
    shutil.copytree(other, site, symlinks=True)
    os.utime(site, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert os.stat(site).st_mtime_ns == times.st_mtime_ns
    assert runs(line, tmp_path)
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'fakemod.py'}, which Python imports in place"
    _asks(tmp_path, line, tools, f"{why} of its fakemod")


def test_pth_folders_of_the_same_names_count_toward_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folders a venv's .pth files add are read within one budget of names, the
    same names in each counted each time (a hostile venv: 64 folders of 20,000 same
    names each would each be read in full): past it, every module is taken as installed."""
    site = _venv(tmp_path / "v")
    monkeypatch.setattr(load_paths, "MAX_SITE_ENTRIES", 60)  # (v's own: fewer than 20)
    for i in range(4):  # 80 names read, 20 of them distinct
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        for j in range(20):
            (folder / f"m{j}.py").write_text("")
        (site / f"f{i}.pth").write_text(f"{folder}\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "mine.py").write_text(MARK)
    line = "PYTHONPATH=p v/bin/python -c 'import mine'"
    why = f"PYTHONPATH=p loads {tmp_path / 'p' / 'mine.py'}, which Python imports in place"
    _asks(tmp_path, line, ["Bash", "Bash(v/bin/python:*)"], f"{why} of its mine")
