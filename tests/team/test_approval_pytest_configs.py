"""Code an allowed program loads from a place its own line (or a folder the line replaces)
names, measured past appr10/rev13c: pytest's config named on its line (``-c x.ini``: its
``addopts = -p mod``), an ini override whose ``addopts`` loads a plugin, ``--confcutdir``
reaching a conftest.py above the rootdir, a PYTHONPATH folder that is there but which the
line removes and makes again, ``pygments`` (pytest imports it to show a failure), and
PERL5LIB/PERLLIB shadowing a module Perl's own scripts use (``shasum``, ``json_pp``). Each
line is first run for real (bash, no terminal) to show it runs the planted file; then the
real hook, which let each run unasked under a rule on the program before."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from approval_lines import RULE, answer, runs

MARK = 'open("ran-it", "w").close()\n'
PERL_MARK = "open(my $f, '>', 'ran-it'); close $f; 1;\n"
TOOLS = ["Bash", "Bash(pytest:*)", "Bash(python3 -m pytest:*)", "Bash(python3:*)"]


def _home(folder: Path) -> Path:
    (folder / "home").mkdir(exist_ok=True)
    return folder / "home"


def _asks(folder: Path, line: str, tools: list[str], why: str) -> None:
    asked = answer(folder, line, tools, home=_home(folder))[0]
    assert asked == [f"matches {RULE}: {why}: cannot be read"], line


def _silent(folder: Path, line: str, tools: list[str]) -> None:
    assert answer(folder, line, tools, home=_home(folder))[0] == [], line


def _with_pytest(line: str) -> str:
    """``line`` with this venv's pytest first on PATH, its installed plugins not loaded."""
    bin_folder = Path(sys.executable).parent
    return f'export PATH="{bin_folder}:$PATH" PYTEST_DISABLE_PLUGIN_AUTOLOAD=1; {line}'


def test_pytest_config_or_ini_override_loading_a_plugin_asks(tmp_path: Path) -> None:
    """`pytest -c x.ini` reads x.ini's `addopts` (`-p mod`), `-o addopts=-pmod` is `-p mod`:
    each ran ./mod.py unasked; as `PYTEST_ADDOPTS='-c x.ini'` asks, the line's own does."""
    (tmp_path / "mod.py").write_text(MARK)
    (tmp_path / "x.ini").write_text("[pytest]\naddopts = -p mod\npythonpath = .\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    for line, why in (
        ("pytest -q -c x.ini test_a.py", "gives pytest -c, which names code to load"),
        (
            "pytest -q --config-file=x.ini test_a.py",
            "gives pytest --config-file=x.ini, which names code to load",
        ),
        ("python3 -m pytest -q -o addopts=-pmod test_a.py", "gives pytest -o, a module to import"),
        (
            "pytest -q --override-ini='addopts=-p mod' -o pythonpath=. test_a.py",
            "gives pytest --override-ini=addopts=-p mod, a module to import",
        ),
    ):
        assert runs(_with_pytest(line.replace("python3", sys.executable)), tmp_path), line
        _asks(tmp_path, line, TOOLS, why)
    _silent(tmp_path, "pytest -q -c x.ini", [*TOOLS, "Bash(pytest -q -c x.ini)"])
    for line in (  # everyday: no config, an empty addopts, options that load nothing
        "pytest -c /dev/null -q",
        "pytest -o addopts= -q",
        "pytest -o 'addopts=-q --tb=short -p no:cacheprovider'",
        "pytest -o pythonpath=src -q",
        "pytest --rootdir=. -q",
    ):
        _silent(tmp_path, line, TOOLS)


def test_pytest_conftest_above_the_rootdir_asks(tmp_path: Path) -> None:
    """`--confcutdir=/` makes pytest load conftest.py files above the ini's folder, which
    it stops at by default (measured: ./conftest.py ran for sub/test_b.py with it only)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "sub" / "test_b.py").write_text("def test_b():\n    pass\n")
    (tmp_path / "conftest.py").write_text(MARK)
    assert not runs(_with_pytest("pytest -q sub/test_b.py"), tmp_path)
    line = "pytest -q --confcutdir=/ sub/test_b.py"
    assert runs(_with_pytest(line), tmp_path)
    _asks(tmp_path, line, TOOLS, "gives pytest --confcutdir=/, which names code to load")


@pytest.mark.parametrize(
    "first", ["rm -rf q; cp -r s q", "rm -rf q && mv s q", "rm -r q; ln -s s q"]
)
def test_a_load_folder_the_line_replaces_asks(tmp_path: Path, first: str) -> None:
    """A PYTHONPATH folder that is there, empty, when the hook reads the line, which the
    line removes and makes again from one holding a sitecustomize (ran unasked: only a
    folder not there yet was taken as made by the line)."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sitecustomize.py").write_text(MARK)
    (tmp_path / "q").mkdir()
    line = f"{first}; PYTHONPATH=q python3 -c pass"
    why = "PYTHONPATH=q: the line may make the folder it loads from (q)"
    _asks(tmp_path, line, TOOLS, why)
    assert runs(line, tmp_path)


def test_everyday_lines_naming_the_folder_they_load_from_ask_nothing(tmp_path: Path) -> None:
    """The check above took `install` and `git` anywhere on the line for programs that
    replace a folder, and the current folder for one they may replace: `python3 -m pytest .
    && git status` and `python3 -m pip install -e .` asked (found at the merge)."""
    project, home = tmp_path / "project", tmp_path / "home"  # (a HOME in the project is
    (project / "src").mkdir(parents=True)  # written by `pytest .`: git's config asks)
    home.mkdir()
    tools = [*TOOLS, "Bash(pip:*)", "Bash(git status:*)", "Bash(make:*)"]
    for line in (
        "python3 -m pip install -e .",
        "python3 -m pytest . && git status",
        "git stash; python3 -m pytest .",
        "make install && python3 -m pytest .",
        "pip install -e src && PYTHONPATH=src pytest -q",
    ):
        assert answer(project, line, tools, home=home)[0] == [], line


def test_pythonpath_shadowing_pytests_highlighter_asks(tmp_path: Path) -> None:
    """pytest imports pygments to show a failing test's source: ran p/pygments unasked."""
    pytest.importorskip("pygments")
    (tmp_path / "p" / "pygments").mkdir(parents=True)
    (tmp_path / "p" / "pygments" / "__init__.py").write_text(MARK)
    (tmp_path / "test_a.py").write_text("def test_a():\n    assert 0\n")
    line = "PYTHONPATH=p pytest -q test_a.py"
    assert runs(_with_pytest(line), tmp_path)
    planted = tmp_path / "p" / "pygments"
    why = f"PYTHONPATH=p loads {planted}, which Python imports in place of its pygments"
    _asks(tmp_path, line, TOOLS, why)


@pytest.mark.skipif(shutil.which("shasum") is None, reason="no shasum (a Perl script)")
def test_perl_library_path_shadowing_a_module_asks(tmp_path: Path) -> None:
    """PERL5LIB/PERLLIB come before Perl's own library: `strict.pm` there ran for
    `shasum`, a Perl script a rule allows as a reader; a project's own modules (`lib/My/`)
    are everyday."""
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "My").mkdir()
    (tmp_path / "x").write_text("a")
    tools = ["Bash", "Bash(shasum:*)", "Bash(prove:*)"]
    _silent(tmp_path, "PERL5LIB=l shasum x", tools)
    _silent(tmp_path, "PERL5LIB=l:lib prove -l t", tools)
    (tmp_path / "l" / "strict.pm").write_text(PERL_MARK)
    for name in ("PERL5LIB", "PERLLIB"):
        line = f"{name}=l shasum x"
        assert runs(line, tmp_path), line
        planted = tmp_path / "l" / "strict.pm"
        _asks(
            tmp_path,
            line,
            tools,
            f"{name}=l loads {planted}, which Perl loads in place of its strict",
        )


@pytest.mark.skipif(shutil.which("shasum") is None, reason="no shasum (a Perl script)")
def test_perl_library_module_the_line_writes_asks(tmp_path: Path) -> None:
    """A PERL5LIB folder that is there, into which the line writes a module named as one of
    Perl's own before the allowed Perl script runs: read before the line, the folder held
    nothing (measured: it ran the written l/strict.pm under Bash(shasum:*), unasked), as a
    PYTHONPATH line writing its sitecustomize.py asks."""
    (tmp_path / "l").mkdir()
    (tmp_path / "x").write_text("a")
    tools = ["Bash", "Bash(shasum:*)", "Bash(echo:*)", "Bash(cp:*)", "Bash(prove:*)"]
    line = """echo 'open(F, ">ran-it"); close F; 1;' > l/strict.pm && PERL5LIB=l shasum x"""
    assert runs(line, tmp_path)
    (tmp_path / "l" / "strict.pm").unlink()  # as before the line
    _asks(tmp_path, line, tools, "PERL5LIB=l: the line may write a file it loads (l/strict.pm)")
    line = "cp m.pm l/Getopt/Long.pm; PERLLIB=l shasum x"
    _asks(tmp_path, line, tools, "PERLLIB=l: the line may write a file it loads (l/Getopt/Long.pm)")
    _silent(tmp_path, "cp m.pm lib/My/Mod.pm && PERL5LIB=lib prove -r t", tools)


def test_dotenv_run_with_an_env_file_setting_a_loading_variable_asks(tmp_path: Path) -> None:
    """`dotenv run CMD` (python-dotenv) sets CMD's variables from .env, as `set -a; .
    ./.env` (which asks) would: BASH_ENV or PYTHONPATH there ran a planted file unasked
    under `Bash(dotenv run:*)`; an everyday .env (DEBUG=1), or none, asks nothing."""
    tools = ["Bash", "Bash(dotenv run:*)", "Bash(python3 -m dotenv run:*)"]
    (tmp_path / "x").write_text("touch ran-it\n")
    (tmp_path / "e").write_text("export BASH_ENV=./x\n")
    _silent(tmp_path, "dotenv run -- bash -c true", tools)  # no .env
    if shutil.which("dotenv"):  # the machine's python-dotenv (not a dependency here)
        assert runs("dotenv -f e run bash -c true", tmp_path)
    for line, file in (
        ("dotenv -f e run bash -c true", "e"),
        ("python3 -m dotenv --file=e run -- bash -c true", "e"),
    ):
        why = f"dotenv run sets BASH_ENV from {file}, which may make a program load code"
        _asks(tmp_path, line, tools, why)
    why = "dotenv run sets variables from .env, which the line may write first"
    _asks(tmp_path, "cp e .env; dotenv run -- bash -c true", tools, why)
    (tmp_path / ".env").write_text("DEBUG=1\nDATABASE_URL=sqlite:///db\n")
    _silent(tmp_path, "dotenv run -- bash -c true", tools)
    (tmp_path / ".env").write_text("DEBUG=1\nPYTHONPATH=p\n")
    why = "dotenv run sets PYTHONPATH from .env, which may make a program load code"
    _asks(tmp_path, "dotenv run -- pytest -q", tools, why)
    _silent(tmp_path, "dotenv list", tools)


def test_dotenv_run_with_an_env_file_known_only_at_run_time_asks(tmp_path: Path) -> None:
    """An env file named through a substitution (`-f "$(…)"`, backquotes) or a `.env` read
    after a `cd` into a folder known only at run time cannot be read here: each ran x
    through the BASH_ENV it set, unasked under `Bash(dotenv run:*)` (a substitution's
    space split `-f`'s value, and the folder moved to was not looked at)."""
    tools = ["Bash", "Bash(dotenv run:*)", "Bash(dotenv:*)", "Bash(cd:*)"]
    (tmp_path / "x").write_text("touch ran-it\n")
    (tmp_path / "e").write_text("export BASH_ENV=./x\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".env").write_text("export BASH_ENV=./x\n")
    (tmp_path / "d" / "x").write_text("touch ../ran-it\n")
    why = "dotenv run sets variables from a file known only at run time"
    for line, shown in (
        ('dotenv -f "$(echo e)" run bash -c true', "$(echo e)"),
        ("dotenv -f `echo e` run bash -c true", "a substitution"),
        ('F=e; dotenv -f "$F" run bash -c true', "$F"),
        ("dotenv -f <(cat e) run bash -c true", "a substitution"),
    ):
        if shutil.which("dotenv") and "<(" not in line:  # the machine's python-dotenv
            assert runs(line, tmp_path), line
        _asks(tmp_path, line, tools, f"{why} ({shown})")
    line = 'd=d; cd "$d" && dotenv run bash -c true'
    if shutil.which("dotenv"):
        assert runs(line, tmp_path), line
    why = "dotenv run sets variables from .env: it may be read in a folder known only at run"
    _asks(tmp_path, line, tools, f"{why} time (cd $d)")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / ".env").write_text("DEBUG=1\n")
    _silent(tmp_path, "cd s && dotenv run -- make", tools)  # read there: nothing to run


def test_pythonpath_shadowing_a_python_tools_module_asks(tmp_path: Path) -> None:
    """Past the standard library and pytest's: setuptools' distutils-precedence.pth
    imports `_distutils_hack` at every start, mypy imports typing_extensions (each ran
    from a PYTHONPATH folder unasked under `Bash(mypy:*)`)."""
    import sysconfig

    tools = ["Bash", "Bash(mypy:*)", "Bash(pip:*)"]
    bin_folder = Path(sys.executable).parent
    (tmp_path / "x.py").write_text("x = 1\n")
    for module, command in (
        ("typing_extensions", "mypy x.py"),
        ("_distutils_hack", "mypy --version"),
        ("pip", "pip --version"),
    ):
        planted = tmp_path / "p" / module / "__init__.py"
        planted.parent.mkdir(parents=True)
        planted.write_text(MARK)
        line = f"PYTHONPATH=p {command}"
        shim = Path(sysconfig.get_paths()["purelib"]) / "distutils-precedence.pth"
        if module != "_distutils_hack" or shim.exists():  # setuptools' (not always there)
            assert runs(f'export PATH="{bin_folder}:$PATH"; {line}', tmp_path), line
        why = f"PYTHONPATH=p loads {planted.parent}, which Python imports in place of its {module}"
        _asks(tmp_path, line, tools, why)
        shutil.rmtree(tmp_path / "p")


def test_mypy_config_named_on_its_line_asks(tmp_path: Path) -> None:
    """mypy imports the plugins its config names: one given on the line (`--config-file
    x.ini`, argparse's `--config` too) ran x.ini's `plugins = ./evil.py` under
    Bash(mypy:*), unasked, as pytest's `-c x.ini` asks; a run on the project's own config
    is a rule on mypy's."""
    (tmp_path / "evil.py").write_text(MARK + "def plugin(version):\n    return None\n")
    (tmp_path / "x.ini").write_text("[mypy]\nplugins = ./evil.py\n")
    (tmp_path / "x.py").write_text("x = 1\n")
    bin_folder = Path(sys.executable).parent
    line = "mypy --config-file x.ini x.py"
    assert runs(f'export PATH="{bin_folder}:$PATH"; {line}', tmp_path)
    tools = ["Bash", "Bash(mypy:*)", "Bash(python3 -m mypy:*)", "Bash(.venv/bin/mypy:*)"]
    for line, option in (
        ("mypy --config-file x.ini x.py", "--config-file"),
        ("python3 -m mypy --config-file=x.ini src", "--config-file=x.ini"),
        (".venv/bin/mypy --config x.ini .", "--config"),
    ):
        _asks(tmp_path, line, tools, f"gives mypy {option}, a config whose plugins it imports")
    _silent(tmp_path, "mypy --config-file x.ini x.py", [*tools, "Bash(mypy --config-file:*)"])
    for line in ("mypy --strict src", "python3 -m mypy --config-file= --color-output x.py"):
        _silent(tmp_path, line, tools)


def test_dotenv_run_with_an_env_file_not_read_whole_asks(tmp_path: Path) -> None:
    """An env file the hook cannot read whole asks: one past the 1 MiB read (measured:
    BASH_ENV set after 2 MiB of comments ran x, unasked under `Bash(dotenv run:*)`: only
    the first MiB was looked at), or anything but a regular file (python-dotenv refuses a
    FIFO, measured; the hook's open of one waited for a writer: with none, for good)."""
    import os
    import threading
    import time

    tools = ["Bash", "Bash(dotenv run:*)"]
    (tmp_path / "x").write_text("touch ran-it\n")
    (tmp_path / "big").write_text("#" + "x" * (2 << 20) + "\nexport BASH_ENV=./x\n")
    if shutil.which("dotenv"):  # the machine's python-dotenv (not a dependency here)
        assert runs("dotenv -f big run bash -c true", tmp_path)
    big = tmp_path / "big"
    why = f"dotenv run sets variables from big: {big} is 2048 KiB; the limit is 1024 KiB"
    _asks(tmp_path, "dotenv -f big run bash -c true", tools, why)
    os.mkfifo(tmp_path / "f")
    stop = threading.Event()

    def feed() -> None:  # a writer for a reader that waits (else the old hook hung)
        while not stop.is_set():
            try:
                fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.01)
                continue
            os.write(fd, b"DEBUG=1\n")
            os.close(fd)
            return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        fifo = f"{tmp_path / 'f'} is a FIFO (named pipe), not a regular file"
        why = f"dotenv run sets variables from f: {fifo}"
        _asks(tmp_path, "dotenv -f f run bash -c true", tools, why)
    finally:
        stop.set()
        feeder.join()
    (tmp_path / ".env").write_text("DEBUG=1\n")
    _silent(tmp_path, "dotenv run -- bash -c true", tools)
