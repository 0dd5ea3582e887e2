"""Variables that make a program load code from a place the line names, for the reading of
:mod:`orchestrator.bash_commands` and :mod:`orchestrator.approve_rules`.

A rule such as ``Bash(pytest:*)`` allows running pytest, not a module an earlier call
planted and the line then names through a variable. Measured (bash with no terminal, as the
CLI's Bash; each ran the planted file, unasked under a rule on the program before):

- ``PYTHONPATH=p pytest`` and ``PYTHONPATH=p python3 -c pass`` ran ``p/sitecustomize.py``
  (Python's ``site`` imports it at start; ``python3 -I``/``-S`` did not). A venv's Python
  ignores ``usercustomize`` (no user site), a system one imports it: both are looked up.
  ``PYTHONPATH=src pytest`` with no such file is everyday and asks nothing. Read at call
  time, where the call runs, as git's config is (:data:`PLANTED`).
- ``CARGO_HOME=../x cargo build`` ran the ``build.rustc-wrapper`` of ``../x/config.toml``.
- ``PYTEST_PLUGINS=mod pytest`` and ``PYTEST_ADDOPTS='-p mod' pytest`` imported ``mod``
  from ``PYTHONPATH`` (and ``python3 -m pytest -p mod`` from the call's folder);
  ``PYTEST_ADDOPTS='-W ignore::mod.W'`` and ``PYTHONWARNINGS=ignore::mod.W`` imported
  ``mod`` to find the warning's class (:func:`pytest_options_load`, :func:`warnings_import`).
- ``LD_LIBRARY_PATH=./x git --version`` ran the constructor of ``./x/libpcre2-8.so.0``,
  ``GCONV_PATH=./g iconv -f PWN`` the ``gconv_init`` of a module ``./g/gconv-modules``
  names: a folder outside the system's asks (:data:`LIBRARY_FOLDERS`).
- ``MAKEFILES=./x.mk make`` ran the ``$(shell …)`` of x.mk.
- ``make .SHELLFLAGS=-lc`` (dash: ``~/.profile``), ``SHELL=/bin/bash .SHELLFLAGS=-ic``
  (``~/.bashrc``), ``ENV=f make .SHELLFLAGS=-ic`` (dash: f) ran the startup file of each
  recipe's shell (:func:`startup_flags`); ``-ec`` none.
- pytest's own ``-p mod``/``-W …::mod.W`` (:func:`pytest_loading`): ``python3 -m pytest -p
  mod`` ran ./mod.py (``-m`` puts the call's folder on the path): code in an option.
- ``PYTHONHOME=./x python3`` ran ``x/lib/python3.11/encodings/__init__.py``, and
  ``PYTHONUSERBASE=./u`` the ``import`` line of a ``.pth`` file of its site-packages (a
  system Python: a venv's has no user site).
- ``PYTHONSTARTUP=s.py``: only an interactive Python runs it (``echo … | python3 -i``
  ran s.py; ``python3 -c``, ``python3 x.py`` did not): it asks whenever set, as rare.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from orchestrator import shell_words

# A folder variable and the names of the files a program loads from it (a name's stem for
# PYTHONPATH: `sitecustomize.py`, `.pyc`, a package folder, an extension module).
PLANTED: Final[dict[str, tuple[str, ...]]] = {
    "PYTHONPATH": ("sitecustomize", "usercustomize"),
    "CARGO_HOME": ("config.toml", "config"),
    "PERL5LIB": (),  # a module shadowing one of PERL_SHADOWED
    "PERLLIB": (),
    # javac's class path when no -cp is given: a folder listing annotation processors
    # (measured: `CLASSPATH=pp javac A.java` ran pp's, unasked)
    "CLASSPATH": (),
}
_STEMS: Final = frozenset({"PYTHONPATH"})  # matched by a file name's stem
# Modules a PYTHONPATH folder shadows: its entries come before the standard library and the
# site-packages (measured: `PYTHONPATH=p pytest` ran p/argparse.py, p/pluggy.py and, with
# plugins autoloaded, p/pytest_timeout.py; `PYTHONPATH=p python3 -m json.tool`
# p/encodings/__init__.py; `PYTHONPATH=p mypy --version` p/_distutils_hack/__init__.py,
# each unasked): any top-level module of Python's own or of a distribution installed
# (:func:`shadowed`), once the interpreter would import it from another folder. The hook's
# Python stands for the agent's; pytest's and its plugins' are named too, as the hook's
# own install need not hold them (pytest is the program the variable is mostly set for).
_TOOLS: Final = frozenset(
    {"pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py", "exceptiongroup", "tomli"}
    | {"pygments", "_distutils_hack", "_virtualenv", "setuptools", "pkg_resources", "pip"}
    | {"typing_extensions", "mypy_extensions", "pathspec", "mypy"}
)


# A project's own folders, which some distributions install at the top level by mistake
# (a `tests` package): a tool imports none of them, only the project's own code does (its
# tests, which a rule on pytest runs), so a folder so named is not one in its place.
_PROJECT_NAMES: Final = frozenset(
    {"tests", "testing", "test_utils", "conftest", "docs", "doc", "examples", "example"}
    | {"scripts", "benchmarks", "bench", "src", "build", "tools", "utils", "samples"}
)


@functools.cache
def shadowed() -> frozenset[str]:
    """The top-level module names a PYTHONPATH folder may shadow: the standard library's,
    pytest's, and those of every distribution installed in the hook's Python (read once:
    importing importlib.metadata and reading them took ~0.1 s, off the CLI's start path)."""
    import importlib.metadata  # noqa: PLC0415  (only when a load path is read)

    try:
        installed = frozenset(importlib.metadata.packages_distributions()) - _PROJECT_NAMES
    except Exception:  # a broken dist-info: the names above still hold
        installed = frozenset()
    return frozenset(sys.stdlib_module_names) | _TOOLS | installed


def _home_of(module: str) -> str:
    """The folder the interpreter imports the top-level ``module`` from (the hook's
    Python's path, the current folder left out: it is the supervisor's, not the line's),
    or "" (a builtin, or none found)."""
    return _found(module)[0]


def _portions(module: str) -> frozenset[str]:
    """The folders of ``module`` when the interpreter imports it as a namespace package
    (:func:`_home_of`'s path), or none (a module, a package, none found)."""
    return _found(module)[1]


@functools.cache
def _found(module: str) -> tuple[str, frozenset[str]]:
    """:func:`_home_of` and :func:`_portions` of ``module``, looked up once."""
    from importlib.machinery import PathFinder  # noqa: PLC0415

    try:
        here = os.getcwd()
        path = [e for e in sys.path if e and os.path.isabs(e) and e != here]
        spec = PathFinder.find_spec(module, path)
    except (ImportError, ValueError, OSError):
        return "", frozenset()
    if spec is None:
        return "", frozenset()
    places = list(spec.submodule_search_locations or [])  # a package: its folder's parent
    origin = places[0] if places else spec.origin
    home = os.path.realpath(os.path.dirname(origin)) if origin else ""
    if spec.origin not in (None, "namespace"):
        return home, frozenset()
    return home, frozenset(os.path.realpath(p) for p in places)


# Perl's modules its own scripts use (`shasum`, `json_pp`, `prove` are Perl: measured,
# `PERL5LIB=l shasum x`, `PERLLIB=l json_pp` ran a planted l/strict.pm, unasked): a PERL5LIB
# folder holding one shadows the system's, as PYTHONPATH's do Python's (`Getopt/Long.pm`: a
# folder named as the first part).
PERL_SHADOWED: Final = frozenset(
    {"strict", "warnings", "vars", "lib", "utf8", "feature", "constant", "overload", "parent"}
    | {"base", "integer", "bytes", "open", "locale", "bigint", "Carp", "Exporter", "Config"}
    | {"Getopt", "Digest", "File", "IO", "Scalar", "List", "POSIX", "Fcntl", "Encode", "JSON"}
    | {"Text", "Time", "Cwd", "Data", "Storable", "Term", "Pod", "Symbol", "SelectSaver"}
    | {"XSLoader", "DynaLoader", "Errno", "Tie", "Sys", "Test", "Test2", "TAP", "App", "MIME"}
)
_PERL: Final = frozenset({"PERL5LIB", "PERLLIB"})
_IMPORTED: Final = re.compile(r"[^.]+(\.[^.]*)*\.(py|pyc|pyw|so)")  # a module's file
_WHAT: Final = {"PYTHONPATH": "Python runs at start", "CARGO_HOME": "may name programs cargo runs"}
_LISTS: Final = frozenset({"PYTHONPATH"}) | _PERL  # `:`-separated folders
# A search path with an entry outside the system's folders (an empty one is the current
# folder; `..` may leave them): the dynamic loader's, iconv's.
_SYSTEM: Final = r"(?!/(usr|lib|lib32|lib64|libx32|opt|nix)(/|[:;]|$))"
LIBRARY_FOLDERS: Final = rf"^(?=.){_SYSTEM}|[:;]{_SYSTEM}|\.\."
# A warning filter (`action:message:category:module:lineno`, comma-separated) whose
# category is a dotted name: Python imports its module to find the class.
# (pytest's own classes excepted: `-W ignore::pytest.PytestUnraisableExceptionWarning` is
# everyday, and pytest is imported already)
_DOTTED = re.compile(r"(^|,)[^:,]*:[^:,]*:\s*(?!(builtins|warnings|_?pytest)\.)[A-Za-z_]\w*\.")
JAVAC: Final = "javac -cp"  # javac's class path, read as a load path (its processors)
_PROCESSORS: Final = "META-INF/services/javax.annotation.processing.Processor"
MAX_ENTRIES: Final = 64  # folders of one PYTHONPATH looked into (a longer one asks)
TOO_MANY: Final = f"more than {MAX_ENTRIES} folders"
# Variables (and `python3 -m`) times the folders the line moves to, looked into for one
# line: a hostile line of 1,000 each took 20 s; a longer one asks.
MAX_LOOKUPS: Final = 256
TOO_MANY_PLACES: Final = f"name code to load from more than {MAX_LOOKUPS} places, not looked into"
_PYTEST_VALUED = frozenset("kmrncopW")  # pytest's short options that take a value


class Installed(NamedTuple):
    """The top-level modules of the venvs (or interpreter prefixes) a line's programs
    belong to (:func:`line_venvs`): each with the folders the interpreter imports it from
    (its site-packages, a ``.pth`` file's folder: an editable install's project)."""

    homes: dict[str, frozenset[str]]
    everything: bool = False  # too much to read (a hostile venv): any module shadows
    folders: tuple[str, ...] = ()  # a site's .pth files' folders (each read on its own)


NONE: Final = Installed({})
MAX_VENVS: Final = 16  # venvs (prefixes) of one line read; more: everything shadows
MAX_SITE_ENTRIES: Final = 20_000  # entries (names) of one site-packages read; more: likewise
MAX_METADATA: Final = 2_000  # dist-info folders whose top_level.txt/RECORD are read
_METADATA_BYTES: Final = 1 << 13  # of one top_level.txt, RECORD, .pth or finder
MAX_RECORD: Final = 256  # lines of one RECORD read (an editable install's is short)
_PYTHON: Final = re.compile(r"python[0-9.]*")  # an interpreter's name
_SCRIPT_WORDS: Final = 16  # words of one line read as scripts (their #! line)
_MAPPING: Final = re.compile(r"""['"]([A-Za-z_]\w*)['"]\s*:\s*['"]([^'"]+)['"]""")


def line_venvs(
    words: Sequence[str],
    programs: Sequence[str],
    env: dict[str, str],
    bases: Sequence[str],
    where: Callable[[str], str],
) -> Installed:
    """The modules of the venvs (or interpreter prefixes) the line's programs belong to,
    which a ``PYTHONPATH`` folder shadows as it does the hook's own (measured: with
    ``fakemod`` only in ``v/``, ``PYTHONPATH=p v/bin/python app.py`` ran a planted
    ``p/fakemod.py``, unasked): from a word naming a program in a venv's ``bin``
    (``v/bin/python``, ``.venv/bin/pytest``), a ``PATH=…/bin`` or ``VIRTUAL_ENV=`` word, a
    script word whose ``#!`` names one; for a bare program (``python``, ``pytest``), the
    first on the agent's PATH (``env``) and its ``VIRTUAL_ENV``. Read from their
    site-packages' files (:func:`_site_modules`), never by running their Python; bounded."""
    roots: dict[str, None] = {}
    if venv := env.get("VIRTUAL_ENV"):
        roots[os.path.normpath(venv)] = None
    scripts = 0
    home = env.get("HOME", "")
    for word in words:
        name, eq, value = word.partition("=")
        if eq and name == "VIRTUAL_ENV" and value:
            roots.update(dict.fromkeys(_places(value, bases, where, home)))
            continue
        if eq and name == "PATH":
            for entry in value.split(":"):
                if entry.rstrip("/").endswith("/bin") or entry in ("bin", "bin/"):
                    top = os.path.dirname(entry.rstrip("/")) or "."
                    roots.update(dict.fromkeys(_places(top, bases, where, home)))
            continue
        if "/" not in word or eq:
            continue
        places = _places(word, bases, where, home)
        if tops := [os.path.dirname(p) for p in map(os.path.dirname, places) if _bin(p)]:
            roots.update(dict.fromkeys(tops))
        elif scripts < _SCRIPT_WORDS and not word.startswith("-"):
            scripts += 1
            for place in places:
                if linked := _linked_bin(place):  # `cd v/bin && ./python`, a link to it
                    roots[linked] = None
                elif interpreter := _shebang(place):
                    roots[os.path.dirname(os.path.dirname(interpreter))] = None
        if len(roots) > MAX_VENVS:
            return Installed({}, everything=True)
    bare = list(dict.fromkeys(p for p in programs if "/" not in p))
    if len(bare) > 2 * MAX_VENVS:  # each looked up on PATH: bounded (a hostile line)
        return Installed({}, everything=True)
    for program in bare:
        if found := _on_path(program, env.get("PATH", "")):
            folder = os.path.dirname(found)
            top = os.path.dirname(folder)
            if _PYTHON.fullmatch(program) or os.path.isfile(os.path.join(top, "pyvenv.cfg")):
                roots[top] = None
            elif interpreter := _shebang(found):
                roots[os.path.dirname(os.path.dirname(interpreter))] = None
        if len(roots) > MAX_VENVS:
            return Installed({}, everything=True)
    for root in list(roots):  # a venv made with --system-site-packages: its base's too
        roots.update(dict.fromkeys(_system_prefixes(root)))
    if len(roots) > MAX_VENVS:
        return Installed({}, everything=True)
    homes: dict[str, set[str]] = {}
    sites = list(dict.fromkeys(s for root in roots for s in _sites(root)))
    if len(sites) > MAX_VENVS:
        return Installed({}, everything=True)
    scanned = 0  # names read from .pth folders, all sites'
    for site in sites:
        read = _site_modules(site, _mtime(site))
        if read.everything or len(homes) + len(read.homes) > MAX_SITE_ENTRIES:
            return Installed({}, everything=True)
        for module, folders in read.homes.items():
            homes.setdefault(module, set()).update(folders)
        for folder in read.folders:  # its modules, unless the site's own (imported first)
            listing = _folder_modules(folder, _mtime(folder))
            scanned += len(listing.homes)  # (the same names in each folder: bounded too)
            if listing.everything or scanned > MAX_SITE_ENTRIES:
                return Installed({}, everything=True)
            for module in listing.homes:
                if site not in homes.get(module, ()):
                    homes.setdefault(module, set()).add(folder)
    return Installed({m: frozenset(p) for m, p in homes.items()})


@functools.lru_cache(maxsize=64)
def _folder_modules(folder: str, mtime: tuple[int, int, int, int]) -> Installed:
    """The top-level modules in a folder a venv's ``.pth`` file adds to its path (an
    editable install's ``src``: measured, with hatchling's, whose metadata names none,
    ``PYTHONPATH=p v/bin/python app.py`` ran p/proj/__init__.py in place of src/proj,
    unasked): read by itself, cached by its own ``mtime`` (a module added there later
    is seen), bounded as a site is."""
    homes: dict[str, frozenset[str]] = {}
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_SITE_ENTRIES:
                    return Installed({}, everything=True)
                name = entry.name
                if _IMPORTED.fullmatch(name) or ("." not in name and name != "__pycache__"):
                    homes[name.split(".", 1)[0]] = frozenset([folder])
    except (OSError, ValueError):
        return NONE
    for module in _PROJECT_NAMES:
        homes.pop(module, None)
    return Installed(homes)


def _places(word: str, bases: Sequence[str], where: Callable[[str], str], home: str) -> list[str]:
    """The absolute paths a line's path word names from each of ``bases``: ``~/…``,
    ``$HOME/…`` the agent's HOME, ``$PWD/…`` each base (measured: ``PYTHONPATH=p
    ~/v/bin/python``, ``PATH=$PWD/v/bin:$PATH python`` ran p's module, unasked)."""
    out: dict[str, None] = {}
    for base in bases:
        path = word.removeprefix(shell_words.UNKNOWN)
        for name in ("$PWD", "${PWD}"):
            if path == name or path.startswith(name + "/"):
                path = base + path[len(name) :]
        for name in ("$HOME", "${HOME}"):
            if home and (path == name or path.startswith(name + "/")):
                path = home + path[len(name) :]
        absolute = path.startswith(("/", "~"))
        out[where(path if absolute else os.path.join(base, path))] = None
    return list(out)


def _bin(folder: str) -> bool:
    return os.path.basename(folder) == "bin"


def _linked_bin(path: str) -> str:
    """The prefix of the first ``bin`` folder ``path`` or the symlinks it leads through
    lie in (``cd v/bin && ./python``; ``./py``, a link to ``v/bin/python``: measured,
    each imported v's modules), or ""."""
    for _ in range(8):  # (a loop of links: bounded)
        if _bin(os.path.dirname(path)):
            return os.path.dirname(os.path.dirname(path))
        try:
            path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        except (OSError, ValueError):
            return ""
    return ""


def _system_prefixes(root: str) -> list[str]:
    """The prefixes whose site-packages the venv ``root`` imports from too, when its
    ``pyvenv.cfg`` says ``include-system-site-packages = true``: its ``home`` and the folder
    above (measured: with basemod only in the base's site-packages, ``PYTHONPATH=p
    v/bin/python app.py`` ran p/basemod.py, unasked); else none."""
    settings = {}
    for line in _head(os.path.join(root, "pyvenv.cfg")).splitlines()[:MAX_ENTRIES]:
        key, eq, value = line.partition("=")
        if eq:
            settings[key.strip().lower()] = value.strip()
    home = settings.get("home", "")
    if settings.get("include-system-site-packages", "").lower() != "true" or not home:
        return []
    home = os.path.normpath(os.path.join(root, home))
    return [home, os.path.dirname(home)]


def _mtime(path: str) -> tuple[int, int, int, int]:
    """The cache key of a folder's reading: its times and inode (measured: a site replaced
    by one given the old mtime, ``cp -a``/``touch -d``, was read from the cache; its ctime,
    which no call sets, changes)."""
    try:
        got = os.stat(path)
    except (OSError, ValueError):
        return (0, 0, 0, 0)
    return (got.st_dev, got.st_ino, got.st_mtime_ns, got.st_ctime_ns)


def _on_path(program: str, path: str) -> str:
    """The first executable ``program`` on ``path`` (the agent's PATH), or ""."""
    for entry in path.split(":")[:MAX_ENTRIES]:
        if entry and os.path.isabs(entry):
            candidate = os.path.join(entry, program)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return ""


def _shebang(path: str) -> str:
    """The interpreter a script's ``#!`` line names when it is a Python in a ``bin``
    folder (``#!/p/v/bin/python3``), made absolute, or "" (``#!/usr/bin/env python3``:
    the PATH's, read as a bare program's)."""
    first = _head(path, 512).split("\n", 1)[0]
    if not first.startswith("#!"):
        return ""
    words = first[2:].split()
    if not words or not _PYTHON.fullmatch(os.path.basename(words[0])):
        return ""
    folder = os.path.dirname(os.path.normpath(words[0]))
    if os.path.basename(folder) != "bin" or not os.path.isabs(words[0]):
        return ""
    return os.path.normpath(words[0])


def _sites(root: str) -> list[str]:
    """The site-packages (and Debian's dist-packages) folders of the prefix ``root``."""
    out = []
    for lib in ("lib", "lib64"):
        try:
            names = os.listdir(os.path.join(root, lib))
            versions = sorted(n for n in names if n.startswith("python"))
        except (OSError, ValueError):
            continue
        for version in versions[:MAX_ENTRIES]:
            for kind in ("site-packages", "dist-packages"):
                site = os.path.realpath(os.path.join(root, lib, version, kind))
                if site not in out and os.path.isdir(site):
                    out.append(site)
    return out[:MAX_ENTRIES]


def _head(path: str, size: int = _METADATA_BYTES) -> str:
    """The first ``size`` bytes of the regular file ``path``, or "": a FIFO the agent
    made is not waited on (opened for reading, one hung the hook), nor a device read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, size).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=64)
def _site_modules(site: str, mtime: tuple[int, int, int, int]) -> Installed:
    """The top-level modules a Python with the site-packages ``site`` imports from it, each
    with its folders: the modules and packages there (the site), those its distributions'
    ``top_level.txt`` (or ``RECORD``) name (the site and its ``.pth`` files' folders), and
    an editable install's finder's (its project). Read once per ``site`` and ``mtime``
    (cached: an install changes it), bounded: more than :data:`MAX_SITE_ENTRIES` entries
    or names, or :data:`MAX_METADATA` metadata files (each read up to
    :data:`_METADATA_BYTES`), and it is taken as naming every module (a hostile venv;
    measured: 1,999 RECORDs of 3,000 names each took 43 s, unbounded)."""
    homes: dict[str, set[str]] = {}
    named: dict[str, None] = {}  # by metadata: imported from the site or a .pth folder
    folders = {site}
    metadata = 0
    try:
        with os.scandir(site) as entries:
            for count, entry in enumerate(entries):
                name = entry.name
                reads = name.endswith((".dist-info", ".egg-info", ".pth", "finder.py"))
                metadata += reads
                if count >= MAX_SITE_ENTRIES or metadata > MAX_METADATA:
                    return Installed({}, everything=True)
                if name.endswith((".dist-info", ".egg-info")):
                    named.update(dict.fromkeys(_distribution(entry.path)))
                elif name.endswith(".pth"):
                    # its first lines (a folder past them is not a home: it asks)
                    lines = dict.fromkeys(_head(entry.path).split("\n", MAX_ENTRIES)[:MAX_ENTRIES])
                    for line in lines:
                        if len(folders) > MAX_ENTRIES:  # (measured: 2,000 of 64 folders
                            return Installed({}, everything=True)  # each took 2.3 s)
                        if line.strip() and not line.startswith(("#", "import ", "import\t")):
                            folders.add(os.path.realpath(os.path.join(site, line.strip())))
                elif name.startswith("__editable__") and name.endswith("finder.py"):
                    for module, path in _MAPPING.findall(_head(entry.path))[:MAX_ENTRIES]:
                        home = os.path.realpath(os.path.dirname(path))
                        homes.setdefault(module, set()).add(home)
                elif _IMPORTED.fullmatch(name) or ("." not in name and name != "__pycache__"):
                    homes.setdefault(name.split(".", 1)[0], set()).add(site)
                if len(named) + len(homes) > MAX_SITE_ENTRIES:
                    return Installed({}, everything=True)
    except (OSError, ValueError):
        return NONE
    for module in named:  # one in the site itself is imported from there, not from a
        if module not in homes:  # .pth folder after it: that folder's shadows it (measured)
            homes[module] = set(folders)
    for module in _PROJECT_NAMES:
        homes.pop(module, None)
    listed = tuple(f for f in folders if f != site)
    return Installed({m: frozenset(p) for m, p in homes.items()}, folders=listed)


def _distribution(folder: str) -> list[str]:
    """The top-level module names a dist-info (egg-info) folder's ``top_level.txt`` lists,
    or, with none, the first parts of its ``RECORD``'s paths (each read up to
    :data:`_METADATA_BYTES`: a big wheel's own package is in the site already, an
    editable install's RECORD is short)."""
    listed = _head(os.path.join(folder, "top_level.txt"))
    if listed:
        names = [n.strip() for n in listed.splitlines()]
    else:
        names = []
        for line in _head(os.path.join(folder, "RECORD")).split("\n", MAX_RECORD)[:MAX_RECORD]:
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first.endswith((".dist-info", ".pth", ".data")) or first.startswith(".."):
                continue
            names.append(first.split(".", 1)[0] if _IMPORTED.fullmatch(first) else first)
    return [n for n in dict.fromkeys(names) if n.isidentifier()]


def warnings_import(value: str) -> bool:
    """Whether a ``PYTHONWARNINGS`` value (or a ``-W`` filter) names a dotted category."""
    return _DOTTED.search(value) is not None


def pytest_options_load(value: str) -> bool:
    """Whether ``PYTEST_ADDOPTS``' words load code: ``-p NAME`` but ``-p no:NAME`` (a
    plugin to import), a ``-W`` filter naming a dotted category, ``-c``/``--config-file``
    (a config whose ``addopts`` may), ``-o``/``--override-ini`` (its ``pythonpath``…)."""
    try:
        words = shlex.split(value)
    except ValueError:
        return True  # unsure: it asks
    return bool(pytest_loading(words, configs=True))


def pytest_loading(words: Sequence[str], *, configs: bool = False) -> str:
    """The option word of pytest's ``words`` that makes it import a module named there
    (``-p mod``, ``-qp mod``, ``-W ignore::mod.W``; with ``configs``, also a config file or
    an ini override), or "". On pytest's own line (measured: ``python3 -m pytest -p mod``
    ran ./mod.py; ``pytest -p mod`` a mod of PYTHONPATH), exempt by a rule naming it."""
    for i, word in enumerate(words):
        if word == "--":
            return ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if word.startswith("--"):
            option, eq, given = word.partition("=")
            if configs and option in ("--config-file", "--override-ini", "--inifile"):
                return word
            if option in ("--config-file", "--inifile") and _config(given if eq else after):
                return word
            if option == "--override-ini" and _ini_imports(given if eq else after):
                return word
            if option == "--confcutdir":  # conftest.py files above the rootdir (measured:
                return word  # `pytest --confcutdir=/ sub/test_b.py` ran ./conftest.py)
            if option == "--pdbcls":  # `mod:Class`, imported once a test fails under --pdb
                return word  # (measured: `python3 -m pytest --pdb --pdbcls=mod:C` ran ./mod.py)
            if option == "--pythonwarnings" and warnings_import(given if eq else after):
                return word
            continue
        if not word.startswith("-") or word == "-":
            continue
        for j, letter in enumerate(word[1:], start=1):
            if letter not in _PYTEST_VALUED:
                continue
            given = word[j + 1 :].lstrip("=") or after
            if configs and letter in "co":
                return word
            if letter == "o" and _ini_imports(given):
                return word
            if letter == "c" and _config(given):
                return word
            if letter == "p" and not given.startswith("no:"):
                return word
            if letter == "W" and warnings_import(given):
                return word
            break  # the rest of the word (or the next one) is the option's value
    return ""


def mypy_config(words: Sequence[str]) -> str:
    """The option word of mypy's ``words`` naming a config file (``--config-file X``, one
    of its abbreviations argparse takes: ``--config X``), whose ``plugins`` it imports, or
    "" (none, ``--config-file=``: no config, or ``/dev/null``)."""
    for i, word in enumerate(words):
        if word == "--":
            return ""
        option, eq, given = word.partition("=")
        if len(option) >= 5 and "--config-file".startswith(option):
            value = given if eq else words[i + 1] if i + 1 < len(words) else ""
            if value not in ("", "/dev/null"):
                return word
    return ""


def _config(path: str) -> bool:
    """Whether pytest's ``-c PATH`` names a config that may load code: its ``addopts``
    (measured: ``pytest -c x.ini`` with ``addopts = -p mod`` ran ./mod.py, unasked);
    ``-c /dev/null`` (no config at all) is everyday."""
    return path != "/dev/null"


def _ini_imports(value: str) -> bool:
    """Whether pytest's ``-o NAME=VALUE`` sets a warning filter naming a dotted category
    (measured: ``pytest -o filterwarnings=ignore::mod.W`` imported ./mod.py, unasked) or
    ``addopts`` that load code (``python3 -m pytest -o addopts=-pmod`` ran ./mod.py)."""
    key, _, given = value.partition("=")
    if key.strip() == "addopts":
        return pytest_options_load(given)
    return key.strip() == "filterwarnings" and warnings_import(given)


def startup_flags(value: str) -> bool:
    """Whether make's ``.SHELLFLAGS`` make each recipe's shell read a startup file: an
    interactive (``-i``) or login (``-l``, ``--login``) shell, in a cluster too (``-ic``),
    but the value of ``-o``/``-O``."""
    words = value.split()
    for i, word in enumerate(words):
        if i and words[i - 1] in ("-o", "+o", "-O", "+O"):
            continue
        if word in ("--login", "-login") or (
            word.startswith("-") and not word.startswith("--") and set(word[1:]) & {"i", "l"}
        ):
            return True
    return False


def planted(
    name: str,
    value: str,
    bases: Sequence[str],
    where: Callable[[str], str],
    others: Installed = NONE,
) -> str | None:
    """The file the folder variable ``name`` (:data:`PLANTED`) set to ``value`` makes a
    program load, looked up from each of ``bases`` (the call's folder and those the line
    moves to: a relative entry is read from each), or None. ``others``: the modules of the
    line's programs' own venvs (:func:`line_venvs`), shadowed as the hook's are."""
    if not value:  # unset in effect (measured: `PYTHONPATH= python3` imported none)
        return None
    if name in (JAVAC, "CLASSPATH"):
        return _processors(value, bases, where)
    entries = value.split(":") if name in _LISTS else [value]  # `:`: the current folder
    if len(set(entries)) > MAX_ENTRIES:  # each read from each folder: bounded, and it asks
        return TOO_MANY
    module = name.partition(" -m ")[2].split(".")[0]  # `python3 -m mod`'s folder: `.`
    for entry in dict.fromkeys(entries):
        fixed = entry.startswith(("/", "~"))  # `~/x`: the agent's HOME, as the shell expands it
        for base in ["."] if fixed else bases:
            folder = where(entry if fixed else os.path.join(base, entry or "."))
            try:
                names = sorted(os.listdir(folder), key=lambda n: (n.split(".")[0] != module, n))
            except NotADirectoryError:  # a zip archive: Python imports from it (measured)
                if name == "PYTHONPATH":
                    return folder
                continue
            except (OSError, ValueError):  # no folder there (a NUL: none either)
                continue
            mine = not fixed or _agents(folder)  # a relative one is the line's
            for found in names:
                if name in _PERL:
                    if found.removesuffix(".pm") in PERL_SHADOWED:
                        return os.path.join(folder, found)
                    continue
                if module:
                    if _shadows(folder, found, module, mine=mine, others=others):
                        return os.path.join(folder, found)
                    continue
                key = found.split(".")[0] if name in _STEMS else found
                shadows = name == "PYTHONPATH" and _shadows(folder, found, mine=mine, others=others)
                if key in PLANTED[name] or shadows:
                    return os.path.join(folder, found)
    return None


def _processors(value: str, bases: Sequence[str], where: Callable[[str], str]) -> str | None:
    """The list of annotation processors in a folder of javac's class path ``value``, which
    it runs as it compiles (measured: `javac A.java` ran a planted ./E.class listed in
    ./META-INF/services), looked up from each of ``bases``, or None (a jar is not read)."""
    entries = list(dict.fromkeys(value.split(":")))
    if len(entries) > MAX_ENTRIES:
        return TOO_MANY
    for entry in entries:
        fixed = entry.startswith(("/", "~"))
        for base in ["."] if fixed else bases:
            folder = where(entry if fixed else os.path.join(base, entry or "."))
            try:
                if os.path.isfile(path := os.path.join(folder, _PROCESSORS)):
                    return path
            except (OSError, ValueError):
                continue
    return None


def _agents(folder: str) -> bool:
    """Whether the agent may have written in ``folder``: it can, or owns it (a folder it
    made read-only after planting a module there is its own all the same)."""
    try:
        return os.access(folder, os.W_OK) or os.stat(folder).st_uid == os.geteuid()
    except (OSError, ValueError):
        return False


def _shadows(
    folder: str, found: str, module: str = "", *, mine: bool = True, others: Installed = NONE
) -> bool:
    """Whether ``found`` in the PYTHONPATH folder ``folder`` is a module (a file, an
    extension, a package) named as one of :func:`shadowed` or ``others``' (or ``module``)
    and imported in its place: in a folder that is ``mine`` (the agent's: relative, or one
    it can write), not the one the interpreter imports it from anyway (``PYTHONPATH=.venv/
    lib/…``: the hook's, or a site-packages of ``others``)."""
    stem = found.split(".", maxsplit=1)[0]
    known = stem in shadowed()
    theirs = others.everything or stem in others.homes
    if stem != module and (not (known or theirs) or not mine):
        return False
    if _IMPORTED.fullmatch(found) or ("." not in found and _package(folder, found)):
        here = os.path.realpath(folder)
        if stem == module:
            return True
        if theirs and here in others.homes.get(stem, ()):
            return False  # the venv's own (`PYTHONPATH=v/lib/…/site-packages`)
        return theirs or _home_of(stem) != here
    # a folder with no `__init__`: a portion of a namespace package installed so, first
    # on the path (measured: `PYTHONPATH=p mypy x.py` ran p/librt/internal.py, unasked)
    portions = _portions(stem) if stem in shadowed() else frozenset()  # a bounded cache
    path = os.path.join(folder, found)
    return bool(portions) and os.path.realpath(path) not in portions and _holds_modules(path)


def _holds_modules(folder: str) -> bool:
    """Whether ``folder`` holds a module's file or a folder (a subpackage) Python may import."""
    try:
        with os.scandir(folder) as entries:
            return any(
                ("." not in e.name and e.name != "__pycache__") or _IMPORTED.fullmatch(e.name)
                for e in entries
            )
    except (OSError, ValueError):
        return False


def _init(name: str) -> bool:
    """Whether ``name`` is a package's ``__init__`` file: source, bytecode or an extension
    of any Python's (``__init__.so``, ``__init__.cpython-312-x86_64-linux-gnu.so``)."""
    return name.startswith("__init__.") and _IMPORTED.fullmatch(name) is not None


def _package(folder: str, found: str) -> bool:
    """Whether ``found`` in ``folder`` is a package, not a namespace (passed over): it holds
    an ``__init__`` Python imports (measured: ``p/argparse/__init__.so``, a library whose
    constructor runs as it loads, ran under `PYTHONPATH=p python3 -m json.tool`)."""
    try:
        with os.scandir(os.path.join(folder, found)) as entries:
            return any(_init(entry.name) for entry in entries)
    except (OSError, ValueError):
        return False


def user_site(home: str, bases: Sequence[str], where: Callable[[str], str]) -> str:
    """A ``.pth`` file or a ``usercustomize`` module of Python's user site under ``home``
    (``.local/lib/pythonX.Y/site-packages``), looked up from each of ``bases``, or "".
    Measured: ``HOME=./h /usr/bin/python3 -m json.tool`` ran the ``import`` line of
    ``h/.local/lib/python3.11/site-packages/a.pth``, unasked (a venv's Python has no user
    site; ``PYTHONUSERBASE=./h/.local`` asked already)."""
    fixed = home.startswith(("/", "~"))
    for base in ["."] if fixed else bases:
        lib = os.path.join(where(home if fixed else os.path.join(base, home)), ".local", "lib")
        try:
            versions = sorted(n for n in os.listdir(lib) if n.startswith("python"))
        except (OSError, ValueError):
            continue
        for version in versions[:MAX_ENTRIES]:
            site = os.path.join(lib, version, "site-packages")
            try:
                names = sorted(os.listdir(site))
            except (OSError, ValueError):
                continue
            for found in names:
                if found.endswith(".pth") or found.split(".", maxsplit=1)[0] == "usercustomize":
                    return os.path.join(site, found)
    return ""


def resolved(name: str, value: str, inherited: str, unknown: str) -> str:
    """``value`` with the parts the shell builds that are known here put in: the variable's
    own inherited value (``$PYTHONPATH``, ``${PYTHONPATH}``: the agent's environment's) and
    the shell's folder (``$PWD``, ``${PWD}``, ``$(pwd)``: ``.``, the folder the command runs
    in). Other built parts stay unknown (``PYTHONPATH=$d`` asks)."""
    for own in (f"${name}", f"${{{name}}}"):
        value = value.replace(unknown + own, inherited)
    for here in ("$PWD", "${PWD}", "$(pwd)", "`pwd`"):
        value = value.replace(unknown + here, ".")
    # the shell's tilde prefixes at an entry's start: `~+` its folder, `~-` the one it left
    # (measured: `PYTHONPATH=~+ pytest` ran ./sitecustomize.py; `~+` was read as a user's)
    entries = value.split(":")
    for i, entry in enumerate(entries):
        prefix = entry.split("/", 1)[0]
        if prefix == "~+":
            entries[i] = "." + entry[2:]
        elif prefix == "~-" or (prefix[:2] in ("~+", "~-") and prefix[2:].isdigit()):
            entries[i] = unknown + entry  # `~-`, `~+1`, `~-2`: the directory stack's
    return ":".join(entries)


def why_planted(name: str, value: str, path: str, others: Installed = NONE) -> str:
    """What the approver reads: the file found, or that the folders were too many."""
    if path == TOO_MANY:
        return f"{name}={value} names {TOO_MANY} to load code from, not looked into"
    if name == JAVAC:
        return f"javac runs the annotation processors {path} lists (its class path: {value})"
    if name == "CLASSPATH":
        return f"{name}={value}: javac runs the annotation processors {path} lists"
    folder, found = os.path.split(path)
    stem = found.split(".")[0]
    if name in _PERL:
        return f"{name}={value} loads {path}, which Perl loads in place of its {stem}"
    if " -m " in name:
        return f"{name} runs with the call's folder first on its path: {path} is its {stem}"
    if name == "PYTHONPATH" and stem not in PLANTED[name]:
        if _shadows(folder, found, others=others):
            return f"{name}={value} loads {path}, which Python imports in place of its {stem}"
        return f"{name}={value} names the file {path}, a zip archive Python imports from"
    return f"{name}={value} loads {path}, which {_WHAT[name]}"


def word_index(words: Sequence[str]) -> dict[str, str]:
    """The line's words by what :func:`named` looks for, read once for the line (read
    for each variable, 250 of them and 25,000 words took 19 s): ``stem:NAME`` (a word
    whose file name has that stem), ``module:NAME`` (a Python module's file or package),
    ``path:PATH`` (each word, normalised), ``config``."""
    index: dict[str, str] = {}
    names = shadowed()
    for word in words:
        base = os.path.basename(word)
        stem = base.split(".", maxsplit=1)[0]
        index.setdefault("stem:" + stem, word)
        if _IMPORTED.fullmatch(base):
            index.setdefault("module:" + stem, word)
        parent = os.path.basename(os.path.dirname(word))
        if _init(base) or (_IMPORTED.fullmatch(base) and parent in names and _portions(parent)):
            # `p/argparse/__init__.py`, `…/__init__.so`: a package so named;
            # `p/librt/internal.py`: a portion of a namespace package installed
            index.setdefault("module:" + parent, word)
        if base == "config.toml" or (base == "config" and "/" in word):
            index.setdefault("config", word)
        path = os.path.normpath(word)
        index.setdefault("path:" + path, word)
        if base.endswith(".pm"):  # `l/strict.pm`, `l/Getopt/Long.pm`: by the folder above
            parts = path.split("/")  # which it shadows one of Perl's own
            if len(parts) > MAX_ENTRIES:  # a key per part as long as the word: bounded
                # (measured: a 100 KB `IO/IO/…/x.pm` took 28 s), and it asks
                index.setdefault("perl-deep", word)
                continue
            for i, part in enumerate(parts):
                if part.removesuffix(".pm") in PERL_SHADOWED:
                    index.setdefault("perl:" + ("/".join(parts[:i]) or "."), word)
    # the first module word named as one a PYTHONPATH folder shadows (once for the line)
    first = (w for k, w in index.items() if k.startswith("module:") and k[7:] in names)
    index["shadowing"] = next(first, "")
    return index


# Programs that may replace a folder that is there (measured: `rm -rf q; cp -r s q;
# PYTHONPATH=q pytest` and `rm -rf q && mv s q && …` ran s/sitecustomize.py with q there
# before, unasked): a line naming one and the folder asks whether or not it is there now.
# Not `install` and `git`: as words they are mostly `pip install -e .` and `git status`
# (`python3 -m pytest . && git status` asked), and what they write into a folder is the
# project's files, as the agent's Write tool writes them. Not the current folder itself:
# the shell's own folder is not replaced by a line that names `.`.
_MAKERS: Final = ("rm", "rmdir", "mv", "cp", "ln", "rsync", "tar", "unzip")


def made(name: str, value: str, index: dict[str, str], exists: Callable[[str], bool]) -> str:
    """A folder of ``value`` that is not there yet and that the line names elsewhere: it
    may make it from one holding such a file (measured: ``ln -s s l; PYTHONPATH=l pytest``
    and ``cp -r s q; PYTHONPATH=q pytest`` ran s/sitecustomize.py, unasked), or ""."""
    entries = value.split(":") if name in _LISTS or name in (JAVAC, "CLASSPATH") else [value]
    moves = any("stem:" + program in index for program in _MAKERS)
    for entry in dict.fromkeys(e for e in entries if e):
        word = index.get("path:" + os.path.normpath(entry))
        if word is None:
            continue
        # javac's class path word is on its line, and an entry not there (`lib/*`, a
        # jar to come) is everyday: only a line that may move one there asks
        if (name != JAVAC and not exists(entry)) or (moves and os.path.normpath(entry) != "."):
            return word
    return ""


def named(name: str, index: dict[str, str], value: str = "", others: Installed = NONE) -> str:
    """A word of the line naming a file the folder variable ``name`` makes a program load
    (``echo … > sitecustomize.py; PYTHONPATH=. pytest``: it may write it first), or "";
    ``index`` is the line's :func:`word_index`, ``value`` the variable's, ``others`` the
    modules of the line's venvs (measured: ``cp m.py p/fakemod.py && PYTHONPATH=p
    v/bin/python app.py``, fakemod only in v, ran it, unasked)."""
    module = name.partition(" -m ")[2].split(".")[0]
    if name == "CARGO_HOME":
        return index.get("config", "")
    if name in (JAVAC, "CLASSPATH"):  # `echo E > META-INF/services/javax.annotation.…`
        return index.get("stem:javax", "")
    if name in _PERL:  # `echo … > l/strict.pm; PERL5LIB=l shasum x`: as planted() reads
        return _perl_named(value, index)
    if name in _STEMS:
        for stem in PLANTED[name]:
            if "stem:" + stem in index:
                return index["stem:" + stem]
    if module and "module:" + module in index:
        return index["module:" + module]
    if name == "PYTHONPATH" or module:  # `cp x argparse.py`
        if index.get("shadowing") or not (others.homes or others.everything):
            return index.get("shadowing", "")
        for key, word in index.items():
            if key.startswith("module:") and (others.everything or key[7:] in others.homes):
                return word
    return ""


def _perl_named(value: str, index: dict[str, str]) -> str:
    """A ``.pm`` word of the line under a folder of the PERL5LIB ``value`` whose first part
    there (``strict.pm``, ``Getopt/…``) is one of :data:`PERL_SHADOWED`, or "": the line
    may write it before Perl reads the folder (measured: ``echo … > l/strict.pm && PERL5LIB=l
    shasum x`` ran it, unasked). ``lib/My/Mod.pm`` under ``lib`` is a project's own."""
    for entry in dict.fromkeys(value.split(":")):
        if word := index.get("perl:" + os.path.normpath(entry)):
            return word
    return index.get("perl-deep", "")  # one too deep to index: under any folder
