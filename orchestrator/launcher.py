"""Where the ``claude`` CLI is, and the private wrapper each agent's CLI is started through.

Kept apart from :mod:`orchestrator.session_options` because nothing here needs the
claude-agent-sdk imported: the supervisor writes its launcher and checks leftover
processes while the SDK is still being imported in the background (issue 14.5).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from orchestrator import procid

log = structlog.get_logger()

LAUNCHER_PREFIX = "octy-"  # make_launcher's private folder: the launcher, agents' temp folders
# In that folder: which process made it (its pid, start time, boot and pid namespace), so
# that a later `up` can prove the folder's supervisor is gone (supervision/leftovers.py).
MAKER_FILE = "supervisor"
# Where the launcher writes the pid of the claude process it becomes (cli_pid_file); unset
# before the CLI starts, so no tool an agent runs sees it.
PID_FILE_ENV = "OCTY_CLI_PID_FILE"
SDK_PACKAGE = "claude_agent_sdk"


def bundled_cli() -> str | None:
    """The ``claude`` binary the SDK wheel ships, else one on PATH. Found from the package's
    location (``find_spec``), without importing it: its import takes most of a second."""
    spec = importlib.util.find_spec(SDK_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "_bundled" / "claude"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("claude")


def make_launcher(folder: Path | None = None) -> str | None:
    """A private wrapper that writes its pid where :func:`cli_pid_file` says, then execs
    the CLI in its own session with a parent-death signal (without them where
    util-linux's ``setsid``/``setpriv`` are missing). None without a CLI.

    The wrapper is a sealed in-memory file (:func:`_sealed_script`), started by the path
    ``/proc/<this pid>/fd/<fd>``: no folder holds it, and nobody, not even a process of
    this user, can change it (the seals refuse every write, truncation and growth).
    It was a file in the private folder, beside the agents' temp folders, put back
    before each start: an agent that rewrote it between that check and the exec ran its
    code outside the sandbox at the next start (tests/team/test_launcher_sealed.py).
    ``folder`` (made if missing) holds the pid files, the agents' temp folders and the
    maker record; only where a sealed memory file cannot be executed (no memfd, or
    ``vm.memfd_noexec=2``) is the wrapper written there, as before."""
    cli = bundled_cli()
    if cli is None:
        return None
    setsid, setpriv = shutil.which("setsid"), shutil.which("setpriv")
    folder = folder or Path(tempfile.mkdtemp(prefix=LAUNCHER_PREFIX))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    Maker.this_process().write(folder)
    (folder / "pids").mkdir(mode=0o700, exist_ok=True)
    # exec keeps one pid throughout: the launcher's $$ is the CLI's pid, and its group's
    # (setsid does not fork: the SDK's child is no group leader). The pid is read from
    # here, not from the SDK's private process object.
    chain = (f'"{setsid}" ' if setsid else "") + (
        f'"{setpriv}" --pdeathsig KILL ' if setsid and setpriv else ""
    )
    text = (
        "#!/bin/sh\n"
        f'if [ -n "${PID_FILE_ENV}" ]; then\n'
        f'  (umask 077 && echo $$ > "${PID_FILE_ENV}")\n'
        f"  unset {PID_FILE_ENV}\n"
        "fi\n"
        f'exec {chain}"{cli}" "$@"\n'
    )
    fd = _sealed_script(text)
    if fd is not None:
        path = f"/proc/{os.getpid()}/fd/{fd}"
        _LAUNCHERS[path] = _Launcher(folder, fd, text)
        return path
    path = str(folder / ON_DISK_NAME)
    log.warning("launcher_on_disk", launcher=path)
    _write_script(Path(path), text)
    _LAUNCHERS[path] = _Launcher(folder, None, text)
    return path


ON_DISK_NAME = "claude"  # the wrapper's name in the folder, where it cannot be sealed
MFD_EXEC = 0x0010  # linux/memfd.h (6.3+): executable even where vm.memfd_noexec=1
SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE")


@dataclass(frozen=True)
class _Launcher:
    folder: Path  # the private folder: pids/, tmp/, the maker record
    fd: int | None  # the sealed memory file, or None for a wrapper on disk
    text: str


_LAUNCHERS: dict[str, _Launcher] = {}  # what make_launcher returned -> what it made


def _sealed_script(text: str, label: str = "octy-claude-launcher") -> int | None:
    """``text`` in an executable memory file sealed against any change (an fd kept open,
    close-on-exec); None where that cannot be made and executed."""
    if not hasattr(os, "memfd_create") or not all(hasattr(fcntl, s) for s in SEALS):
        return None
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(label, flags | MFD_EXEC)
    except OSError:  # EINVAL: a kernel before MFD_EXEC (executable by default there)
        try:
            fd = os.memfd_create(label, flags)
        except OSError:
            return None
    try:
        os.write(fd, text.encode("utf-8"))
        os.fchmod(fd, 0o500)
        seals = 0
        for name in SEALS:
            seals |= getattr(fcntl, name)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        if not os.access(f"/proc/self/fd/{fd}", os.X_OK):
            raise OSError("a memory file is not executable here (vm.memfd_noexec)")
    except OSError:
        os.close(fd)
        return None
    return fd


def sealed_program(text: str, label: str) -> str | None:
    """The path (``/proc/<this pid>/fd/<fd>``) of ``text`` as a sealed executable memory
    file (:func:`_sealed_script`), kept open for this process's life and made once per
    text; None where one cannot be made and executed."""
    if text not in _PROGRAMS:
        fd = _sealed_script(text, label)
        if fd is None:
            return None
        _PROGRAMS[text] = f"/proc/{os.getpid()}/fd/{fd}"
    return _PROGRAMS[text]


_PROGRAMS: dict[str, str] = {}


def launcher_folder(cli_path: str | None) -> Path | None:
    """The private folder of the launcher :func:`make_launcher` returned as ``cli_path``:
    None for anything else (a CLI binary we were pointed at)."""
    made = _LAUNCHERS.get(cli_path) if cli_path is not None else None
    return made.folder if made is not None else None


def _write_script(path: Path, text: str) -> None:
    """A fresh 0700 file: whatever was at ``path`` (a planted link) is replaced, never
    written through."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o700)
        f.write(text)


def restore_launcher(path: str | None) -> bool:
    """Put back what :func:`make_launcher` wrote at ``path`` if it was changed (then True),
    just before a CLI is started through it. Only for a wrapper on disk (no sealed memory
    file here): that check-then-exec can still be raced by a process of this user."""
    made = _LAUNCHERS.get(path) if path is not None else None
    if path is None or made is None or made.fd is not None:
        return False
    want = made.text.encode("utf-8")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            same = (
                stat.S_ISREG(st.st_mode)
                and st.st_uid == os.getuid()
                and st.st_nlink == 1
                and stat.S_IMODE(st.st_mode) == 0o700
                and f.read(len(want) + 1) == want
            )
    except OSError:
        same = False
    if not same:
        log.warning("launcher_restored", launcher=path)
        _write_script(Path(path), made.text)
    return not same


@dataclass(frozen=True)
class Maker:
    """The process that made a launcher folder. Gone for certain if the machine was booted
    since, or if no process of that pid and start time runs in our pid namespace; in
    another namespace (a container sharing /tmp) it cannot be told, so never gone."""

    pid: int
    start: int
    boot: str
    pidns: str

    @classmethod
    def this_process(cls) -> Maker:
        pid = os.getpid()
        return cls(pid, procid.start_ticks(pid) or 0, _boot_id(), _pid_namespace())

    def write(self, folder: Path) -> None:
        fd = os.open(
            folder / MAKER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"pid={self.pid} start={self.start} boot={self.boot} pidns={self.pidns}\n")

    @classmethod
    def read(cls, folder_fd: int) -> Maker | None:
        """The maker recorded in the folder open at ``folder_fd``; None without a readable
        record (a folder of an older version, or one being made)."""
        try:
            fd = os.open(MAKER_FILE, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            text = f.read(512).decode("ascii", "replace")
        fields = dict(part.partition("=")[::2] for part in text.split())
        pid, start = fields.get("pid", ""), fields.get("start", "")
        if not (pid.isdigit() and start.isdigit() and fields.get("boot") and fields.get("pidns")):
            return None
        return cls(int(pid), int(start), fields["boot"], fields["pidns"])

    def gone(self) -> bool:
        if not self.start or "unknown" in (self.boot, self.pidns):
            return False  # recorded without /proc: nothing to prove it with
        if self.boot != _boot_id():
            return True
        if self.pidns != _pid_namespace():
            return False
        return procid.start_ticks(self.pid) != self.start


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    """Our PID namespace; "unknown" where ``/proc`` shows another one's pids (``unshare
    --pid --fork`` without ``--mount-proc``: ``/proc/self`` is not our pid): its
    ``/proc/PID`` is another process, whose end read a live maker as gone."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return "unknown"
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def cli_pid_file(cli_path: str | None, agent: str) -> Path | None:
    """Where our launcher writes the pid of ``agent``'s claude process: a folder of the
    supervisor's own (an agent's tools may write to its temp folder, never here). None
    when ``cli_path`` is not our launcher."""
    folder = launcher_folder(cli_path)
    if folder is None or not (folder / "pids").is_dir():
        return None
    return folder / "pids" / agent


def read_cli_pid(path: Path | None) -> int | None:
    """The pid the launcher wrote at ``path``, or None (not launched yet, or no launcher)."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 1 < int(text) < 2**31 else None


def kill_unlaunched(pid_file: Path) -> list[int]:
    """SIGKILL the launcher started to write ``pid_file`` if it has not written it (stuck
    before its first line: stopped, or starved); return the pids killed. Without the pid,
    a claude stuck so early was ended only by the SDK's close, ~15 s after the connect
    timeout (measured). Found by the environment it was started with, which names
    ``pid_file`` (the CLI's own does not: the launcher unsets it before exec), among this
    process's children (the SDK starts the launcher itself); checked again through a
    pidfd before the signal."""
    needle = f"{PID_FILE_ENV}={pid_file}".encode() + b"\0"
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or not _started_for(int(entry.name), needle):
            continue
        try:
            fd = os.pidfd_open(int(entry.name))
        except OSError:
            continue
        try:
            if _started_for(int(entry.name), needle):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:
            pass
        finally:
            os.close(fd)
    return killed


def _started_for(pid: int, needle: bytes) -> bool:
    """``pid`` is a child of this process started with the environment entry ``needle``."""
    if procid.parent(pid) != os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return environ.startswith(needle) or b"\0" + needle in environ


def private_tmpdir(folder: Path, agent: str) -> Path:
    """A temp folder of the agent's own, inside the supervisor's private launcher folder.
    The CLI writes the --settings it is given to ``<tmpdir>/claude-settings-<hash of the
    content>.json``, and the sandbox reads it from there: two agents with the same
    settings shared one file in /tmp/claude-<uid>, and one agent's Bash failed with "No
    such file or directory" once the other's CLI was done with it (seen with two
    worktree agents)."""
    path = folder / "tmp" / agent
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "tmp").chmod(0o700)
    return path


# The longest name the CLI's sandbox gives a socket in TMPDIR ("claude-socks-" and 16 hex
# digits), and the longest path a Unix socket may have (sun_path: 108 bytes with its NUL).
SANDBOX_SOCKET_NAME = "claude-socks-0123456789abcdef.sock"
MAX_SOCKET_PATH = 107


def private_temp_env(folder: Path, agent: str, own: Mapping[str, str]) -> dict[str, str]:
    """The temp folder variables of ``agent``'s CLI: CLAUDE_CODE_TMPDIR and TMPDIR both in
    :func:`private_tmpdir` (the CLI's own layout, where both default to the system's temp
    folder), unless the roster's ``env`` sets them.

    TMPDIR because the CLI's sandbox makes its proxies' sockets there
    (``claude-http-*.sock``, ``claude-socks-*.sock``, ``srt-mux-*.sock``) and a claude
    that is killed never removes them (hundreds were left in /tmp); the shell's
    ``mktemp`` files go to ``$TMPDIR/claude-<uid>``, which agents shared. In the launcher
    folder they go with it (the supervisor's stop, its watchman, the next `up`). Kept
    as it is where a socket's path there would be too long to bind (a long TMPDIR and a
    long agent name): the sandbox would fail to start, and Bash with it."""
    path = private_tmpdir(folder, agent)
    remove_dead_sockets(path)
    env = {} if "CLAUDE_CODE_TMPDIR" in own else {"CLAUDE_CODE_TMPDIR": str(path)}
    if "TMPDIR" not in own and len(os.fsencode(path / SANDBOX_SOCKET_NAME)) <= MAX_SOCKET_PATH:
        env["TMPDIR"] = str(path)
    return env


SANDBOX_SOCKETS = ("claude-http-", "claude-socks-", "srt-mux-")


def remove_dead_sockets(folder: Path) -> list[str]:
    """Remove the sandbox sockets in ``folder`` (an agent's TMPDIR) that no process listens
    on any more (absent from /proc/net/unix): a claude that crashed, or was killed, left
    them; called as the agent's next claude starts. Return the names removed."""
    try:
        with open("/proc/net/unix", "rb") as f:
            bound = {os.fsdecode(line.split()[-1]) for line in f.read().splitlines()[1:]}
    except OSError:
        return []  # cannot tell which are live: left for the launcher folder's removal
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(SANDBOX_SOCKETS) or entry.path in bound:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def remove_launcher(path: str) -> None:
    """Remove what :func:`make_launcher` made: the wrapper (its memory file closed), the
    maker record, the agents' private temp folders (:func:`private_tmpdir`) and the pids
    the launcher wrote (:func:`cli_pid_file`), then the folder."""
    made = _LAUNCHERS.pop(path, None)
    if made is None:
        return
    if made.fd is not None:
        os.close(made.fd)
    else:
        Path(path).unlink(missing_ok=True)
    (made.folder / MAKER_FILE).unlink(missing_ok=True)
    for beside in ("tmp", "pids"):
        shutil.rmtree(made.folder / beside, ignore_errors=True)
    with contextlib.suppress(OSError):
        made.folder.rmdir()
