"""Whose commands a Write must hold still (orchestrator/write_hold.py): only the agents that
could change a folder on the written path.

A command swaps a folder on a path for a symlink (or renames one) by writing the folder
that holds its name: to change where ``/w/a/d/x`` goes, it must write ``/w``, ``/w/a`` or
``/w/a/d``. The kernel looks names up in those folders (and, through a symlink, in the
folders the link leads to), so :func:`lookup_dirs` lists them, resolved as the hook resolves
a path (relative to the writer's folder, ``..`` and symlinks followed; also as the CLI's
``path.resolve`` would read it, ``..`` first); a folder the write will make is looked up in
the last one that exists. An agent is held if one of them lies in one of its writable areas.

A sandboxed agent's areas (:func:`areas`), as its CLI's bubblewrap binds them writable
(measured on CLI 2.1.332, ``bwrap --bind``): its folder (the claude's working folder: its
``cwd`` or worktree), its temp folder (``$CLAUDE_CODE_TMPDIR/claude-<uid>``; the whole of
``CLAUDE_CODE_TMPDIR`` and ``TMPDIR`` count here, and ``/tmp`` when it is unset: a shared
temp folder is shared), ``~/.npm/_logs``, the git folders of its repository (a worktree's
own and the common one), the ``allowWrite`` of its ``--settings`` and of the project's or
the machine's settings files, and ``permissions.additionalDirectories``.

Held always, as before: an agent without the sandbox (``sandbox: false``, or no Bash: a
hook or an MCP server of its runs as the user), one whose claude's settings, environment
or folder cannot be read, and one whose project or machine settings run programs outside
the sandbox (hooks, a status line, helpers, ``.mcp.json`` servers, ``excludedCommands``).
A path that cannot be worked out (a symlink loop, a folder that cannot be read) holds
every agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator import sandbox
from orchestrator.agent_env import MCP_FILE, PROJECT_SETTINGS
from orchestrator.roster import AgentSpec

MAX_LINKS = 40  # the kernel's limit on symlinks in one lookup (ELOOP)
MANAGED_FOLDER = Path("/etc/claude-code")  # the machine's settings, above every other
MANAGED = (MANAGED_FOLDER / "managed-settings.json", MANAGED_FOLDER / "managed-settings.d")
# Settings that make the CLI run a program outside its sandbox, as the user.
UNSANDBOXED_KEYS = (
    "hooks",
    "statusLine",
    "apiKeyHelper",
    "awsAuthRefresh",
    "awsCredentialExport",
    "otelHeadersHelper",
    "enableAllProjectMcpServers",
    "enabledMcpjsonServers",
)
GLOB = "*?[{"


def lookup_dirs(path: str, folder: str) -> set[str] | None:
    """The folders whose entries decide where a write of ``path`` lands; None if that
    cannot be worked out (then everyone is held)."""
    joined = path if os.path.isabs(path) else os.path.join(folder, path)
    found: set[str] = set()
    for form in dict.fromkeys((joined, os.path.normpath(joined))):
        dirs = _walk(form)
        if dirs is None:
            return None
        found |= dirs
    return found


def _parts(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _walk(path: str) -> set[str] | None:
    """As the kernel resolves ``path`` (absolute): each real folder a name is looked up in."""
    todo, cur, dirs, links = _parts(path), "/", set(), 0
    while todo:
        name = todo.pop(0)
        dirs.add(cur)
        if name == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, name)
        try:
            st = os.lstat(nxt)
        except FileNotFoundError:
            # The rest is made by the write (the CLI makes missing folders): each looked up
            # in the one before, all below ``cur``.
            for i in range(len(todo)):
                dirs.add(os.path.normpath(os.path.join(nxt, *todo[:i])))
            return dirs
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            try:
                target = os.readlink(nxt)
            except OSError:
                return None
            if links > MAX_LINKS:
                return None
            todo = _parts(target) + todo
            if target.startswith("/"):
                cur = "/"
            continue
        cur = nxt
    return dirs


def _real(path: str) -> str:
    return os.path.realpath(path)


def _ids(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ancestor_ids(dirs: Iterable[str]) -> set[tuple[int, int]]:
    """(device, inode) of every folder in ``dirs`` and above: an area reached by another
    path (a bind mount on the host) is still found."""
    seen: set[str] = set()
    out: set[tuple[int, int]] = set()
    for start in dirs:
        d = start
        while d not in seen:
            seen.add(d)
            if (i := _ids(d)) is not None:
                out.add(i)
            d = os.path.dirname(d)
    return out


def _covers(area: str, missing: list[str], ids: set[tuple[int, int]]) -> bool:
    """Whether ``area`` is one of the lookup folders or above one. ``ids`` holds every
    existing one and every folder above them, so a folder that exists covers exactly
    when its own ids are there: one stat, not a resolve of each of its names (a third
    of a Write's CPU at 100 agents, measured). One that does not (or cannot be read)
    can only be, or be above, one of the ``missing`` ones (that the write will make)."""
    if (i := _ids(area)) is not None:
        return i in ids
    if not missing:
        return False
    real = _real(area)
    prefix = real.rstrip("/") + "/"
    return any(d == real or d.startswith(prefix) for d in missing)


def racers(
    path: str,
    folder: str,
    clis: Mapping[str, int],
    area_of: Callable[[str, int], list[str] | None],
) -> set[int]:
    """The claudes in ``clis`` (agent -> pid) whose commands could change a folder on
    ``path`` (written by an agent whose folder is ``folder``)."""
    dirs = lookup_dirs(path, folder)
    if dirs is None:
        return set(clis.values())
    ids = _ancestor_ids(dirs)
    missing = [d for d in dirs if _ids(d) is None]
    held = set()
    for name, pid in clis.items():
        found = area_of(name, pid)
        if found is None or any(_covers(a, missing, ids) for a in found):
            held.add(pid)
    return held


def areas(
    spec: AgentSpec | None,
    pid: int,
    given: Path | None = None,
    seen: dict[str, Any] | None = None,
) -> list[str] | None:
    """Where the commands of ``spec``'s claude (``pid``) may write; None if anywhere the
    user may, or unknown. ``given``: the folder its session was given (its supervisor's
    ``Hold.folders``), which its sandbox makes writable, kept should the CLI move.
    ``seen``: settings files already read for this Write (agents share the machine's,
    and those in one folder its project's), filled in."""
    if spec is None or not sandbox.sandboxed(spec):
        return None
    try:
        argv = _proc(pid, "cmdline").split(b"\0")
        environ = _proc(pid, "environ").split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    env: dict[str, str] = {}
    for entry in environ:
        key, sep, value = entry.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    home = env.get("HOME")
    flag = _flag_settings(argv, cwd)
    box = flag.get("sandbox") if flag is not None else None
    if not home or not isinstance(box, dict) or box.get("enabled") is not True:
        return None
    found = [cwd, os.path.join(home, ".npm", "_logs")]
    if given is not None:
        found.append(str(given))
    temp = env.get("CLAUDE_CODE_TMPDIR")
    found += [t for t in (temp, env.get("TMPDIR")) if t] + ([] if temp else ["/tmp"])
    seen = {} if seen is None else seen
    found += _git_dirs(cwd, seen)
    more = _settings_areas(flag, cwd, home, project=False)
    if more is None:
        return None
    found += more
    # Its project's servers run outside the sandbox: any at all holds it everywhere.
    if _settings(os.path.join(cwd, MCP_FILE), seen, parse=False) is not _EMPTY:
        return None
    files = [os.path.join(cwd, p) for p in PROJECT_SETTINGS] + _managed_files(seen)
    for file in files:
        data = _settings(file, seen)
        if data is _EMPTY:
            continue
        more = _settings_areas(data, cwd, home, project=True)
        if more is None:
            return None
        found += more
    return found


def _proc(pid: int, name: str) -> bytes:
    """``/proc/<pid>/<name>`` whole (plain reads: this runs for every agent, every Write)."""
    fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_EMPTY = object()  # a settings file missing or empty (in ``seen``)
_BAD = object()  # one that cannot be read or is not JSON
_MANAGED_KEY = "\0managed"  # the machine's settings files, in ``seen``


def _managed_files(seen: dict[str, Any]) -> list[str]:
    if _MANAGED_KEY not in seen:
        found = [str(MANAGED[0])]
        with contextlib.suppress(OSError):
            found += sorted(e.path for e in os.scandir(MANAGED[1]) if e.name.endswith(".json"))
        seen[_MANAGED_KEY] = found
    return list(seen[_MANAGED_KEY])


def _settings(file: str, seen: dict[str, Any], *, parse: bool = True) -> Any:
    """A settings file's content, once per ``seen``: :data:`_EMPTY` if it is missing or
    empty, :data:`_BAD` if it cannot be read or (``parse``) is not JSON: that holds its
    agent everywhere (``_settings_areas`` of anything but a dict is None)."""
    if file not in seen:
        try:
            text = _text(file)
            seen[file] = _EMPTY if not text else json.loads(text) if parse else text
        except (OSError, ValueError):
            seen[file] = _BAD
    return seen[file]


def _text(file: str) -> str:
    """A settings file's text; empty if it is missing or empty (the CLI's sandbox leaves an
    empty file at each protected path that did not exist: ``.claude/settings.json``,
    ``.mcp.json``, bound read-only from ``/dev/null``, measured on 2.1.332)."""
    try:
        with open(file, encoding="utf-8-sig") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _flag_settings(argv: list[bytes], cwd: str) -> dict[str, Any] | None:
    """The ``--settings`` the claude was started with (JSON, or a file as the SDK allows)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == b"--settings":
            text = argv[i + 1].decode(errors="replace").strip()
            try:
                if not text.startswith("{"):
                    text = _text(os.path.join(cwd, text))
                data = json.loads(text)
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def _settings_areas(data: Any, cwd: str, home: str, *, project: bool) -> list[str] | None:
    """The folders a settings object makes writable; None if it lets programs run outside
    the sandbox (``project``: a settings file, not the supervisor's own)."""
    if not isinstance(data, dict):
        return None
    if project and any(k in data for k in UNSANDBOXED_KEYS):
        return None
    box = data.get("sandbox", {})
    perms = data.get("permissions", {})
    if not isinstance(box, dict) or not isinstance(perms, dict):
        return None
    if box.get("enabled") is False or box.get("allowUnsandboxedCommands") is True:
        return None
    if box.get("excludedCommands"):
        return None
    fs = box.get("filesystem", {})
    if not isinstance(fs, dict):
        return None
    entries = [fs.get("allowWrite", []), perms.get("additionalDirectories", [])]
    if not all(isinstance(e, list) for e in entries):
        return None
    found: list[str] = []
    for entry in (e for group in entries for e in group):
        if not isinstance(entry, str):
            return None
        found += _entry_paths(entry, cwd, home)
    return found


def _entry_paths(entry: str, cwd: str, home: str) -> list[str]:
    """Every reading of a settings path (``//abs``, ``/abs`` or settings-relative, ``~/``,
    relative), up to its first glob character: more areas only hold more."""
    cut = min((entry.index(c) for c in GLOB if c in entry), default=len(entry))
    path = entry[:cut] if cut == len(entry) else os.path.dirname(entry[:cut])
    if path.startswith("~"):
        return [home + path[1:]]
    if path.startswith("//"):
        return [path[1:]]
    if path.startswith("/"):
        return [path, os.path.join(cwd, path[1:]), os.path.join(cwd, ".claude", path[1:])]
    return [os.path.join(cwd, path or "."), os.path.join(cwd, ".claude", path or ".")]


def _git_dirs(folder: str, seen: dict[str, Any] | None = None) -> list[str]:
    """The repository's git folders the CLI's sandbox makes writable to a command in
    ``folder`` (measured: a worktree's own and the common one); ``folder`` as the kernel
    shows a working folder (``/proc/<pid>/cwd``: resolved, no symlink on it). What each
    folder on the way up gave is kept in ``seen`` (agents share the folders above)."""
    seen = {} if seen is None else seen
    d, walked = folder, []
    while (key := "\0git:" + d) not in seen:
        walked.append(key)
        found = _git_here(d)
        if found is not None or d == "/":
            seen[key] = found or []
            break
        d = os.path.dirname(d)
    for key in walked:
        seen[key] = seen["\0git:" + d]
    return list(seen["\0git:" + d])


def _git_here(d: str) -> list[str] | None:
    """The git folders of a checkout at ``d``; None if there is none there."""
    dot = os.path.join(d, ".git")
    if os.path.isdir(dot):
        return [dot]
    if not os.path.isfile(dot):
        return None
    try:
        with open(dot, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return [d]  # cannot tell where its git folder is: the whole checkout
    own = os.path.join(d, text.partition("gitdir:")[2].strip())
    try:
        with open(os.path.join(own, "commondir"), encoding="utf-8") as f:
            common = f.read().strip()
    except OSError:
        return [own]
    return [own, os.path.join(own, common)]
