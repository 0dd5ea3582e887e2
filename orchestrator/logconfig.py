"""structlog set-up: JSON lines per agent and for the supervisor, a console for people.

Every event goes to ``logs/supervisor.jsonl``; events bound to an agent also go
to ``logs/<agent>.jsonl``. Files rotate by size (stdlib ``RotatingFileHandler``,
opened 0600 in a 0700 folder). Secrets are redacted before anything is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import errno
import io
import json
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from orchestrator import safefs
from orchestrator.colour import wanted as colour_wanted
from orchestrator.errors import UnsafePath
from orchestrator.redact import REDACTED, REDACTOR, Redactor, for_people

SUPERVISOR_LOG = "supervisor"
# The redactor lived here first; callers still import it from here.
__all__ = [
    "REDACTED",
    "REDACTOR",
    "SUPERVISOR_LOG",
    "Redactor",
    "agent_colour",
    "configure",
    "render_line",
    "shutdown",
]


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A size-rotated file created 0600 (the stdlib opens with the umask's mode)."""

    def _open(self) -> io.TextIOWrapper:
        # No link followed (safefs); refused as an OSError, like any file that cannot be
        # written, so the router's handling of write failures covers it.
        try:
            fd = safefs.open_private(
                Path(self.baseFilename), os.O_WRONLY | os.O_CREAT | os.O_APPEND, "log file"
            )
        except UnsafePath as exc:
            raise PermissionError(errno.EPERM, str(exc)) from None
        return open(fd, "a", encoding="utf-8")

    def doRollover(self) -> None:
        if self.backupCount > 0:
            super().doRollover()
            return
        # `log_backups: 0`: the stdlib renames nothing and opens the same full file again,
        # so the log grew for ever. Keeping no backups means the file starts over: a new
        # file in its place, rather than truncating in place, so a reader holding the old
        # one open (`logs -f`, top) reads it to its end before going on in the new one.
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.baseFilename)
        if not self.delay:
            self.stream = self._open()


_COLOURS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92")


def agent_colour(name: str) -> str:
    return _COLOURS[sum(name.encode()) % len(_COLOURS)]


_QUIET_KEYS = ("timestamp", "level", "event", "agent", "logger")


def render_line(event: MutableMapping[str, Any], *, colour: bool, width: int = 160) -> str:
    """One readable line: ``12:00:01 coordinator | asked to=researcher request_id=…``."""
    ts = str(event.get("timestamp", ""))
    clock = for_people(ts[11:19] if len(ts) >= 19 else ts)
    # Names and fields come from peers and files: escaped, so none can drive the terminal.
    who = for_people(str(event.get("agent") or SUPERVISOR_LOG))
    fields = " ".join(
        f"{for_people(str(k))}={_short(v, width)}"
        for k, v in event.items()
        if k not in _QUIET_KEYS and v is not None
    )
    name = f"{who:<12}"
    level = str(event.get("level", "info"))
    text = f"{for_people(str(event.get('event', '')))} {fields}".rstrip()
    if colour:
        name = f"\x1b[{agent_colour(who)}m{name}\x1b[0m"
        if level in ("error", "critical"):
            text = f"\x1b[31m{text}\x1b[0m"
        elif level == "warning":
            text = f"\x1b[33m{text}\x1b[0m"
    return f"{clock} {name}| {text}"


def _short(value: Any, width: int) -> str:
    # The characters as written (ensure_ascii would turn 'é' into six): for_people below
    # escapes the controls and bidi characters, and the cut counts characters.
    encoded = not isinstance(value, str)
    text = json.dumps(value, ensure_ascii=False, default=str) if encoded else value
    text = text.replace("\n", "⏎")
    if width and len(text) > width:
        text = text[: width - 1]
        if encoded:  # not inside one of JSON's own escapes (a control: \u001b)
            text = _unfinished_escape(text)
        text += "…"
    # Half an emoji (a lone surrogate, valid in the model's JSON) as its escape: no
    # terminal can show it, and an encoder meeting it raises.
    return for_people(text.encode("utf-8", "backslashreplace").decode("utf-8"))


# A JSON text's tail that may be an escape cut short: backslashes, then maybe a partial \uXXXX.
_TAIL_ESCAPE = re.compile(r"(\\+)(u[0-9a-fA-F]{0,3})?$")


def _unfinished_escape(text: str) -> str:
    """``text`` without a JSON escape cut short at its end."""
    tail = _TAIL_ESCAPE.search(text)
    if tail is None or len(tail.group(1)) % 2 == 0:
        return text  # escaped backslashes are whole; "u12" after them is text
    return text[: tail.start() + len(tail.group(1)) - 1]


class _Router:
    """Final processor: writes the event to its files and the console, then drops it."""

    def __init__(
        self,
        logs_dir: Path | None,
        console: TextIO | None,
        colour: bool,
        max_bytes: int,
        backups: int,
    ) -> None:
        self.logs_dir = logs_dir
        self.console = console
        self.colour = colour
        self.max_bytes = max_bytes
        self.backups = backups
        self._files: dict[str, _PrivateRotatingFile] = {}
        self._sizes: dict[str, int] = {}  # characters written to each file (rotation check)
        self._opened: dict[str, tuple[int, int]] = {}  # (inode, device) of each open file
        self._dropped: dict[str, int] = {}  # lines lost per file that cannot be written
        self._reported = False  # a write failure is on stderr, and nothing got through since
        self._closed = False
        self._lock = threading.Lock()
        self.body_width = 160

    def _file(self, name: str) -> _PrivateRotatingFile:
        handler = self._files.get(name)
        if handler is None:
            assert self.logs_dir is not None
            handler = _PrivateRotatingFile(
                self.logs_dir / f"{name}.jsonl", maxBytes=self.max_bytes, backupCount=self.backups
            )
            self._files[name] = handler
        return handler

    def _append(self, name: str, line: str) -> None:
        """Write one line to ``<name>.jsonl``, rotating first when it would pass max_bytes.

        The handler is used for opening (0600) and rotating only: its emit() would build
        a LogRecord, format it twice and stat the file twice per line to decide on
        rotation (about half the cost of a log line, and log lines run on the event
        loop); the size is counted here instead, as the handler counts it (characters)."""
        handler = self._file(name)
        size = self._sizes.get(name)
        if handler.stream is not None and self._moved(handler):
            with contextlib.suppress(OSError, ValueError):
                handler.stream.close()
            handler.stream = None
        if handler.stream is None:
            assert self.logs_dir is not None
            try:  # `rm -rf logs` meanwhile: made again, 0700 (a link there is refused)
                safefs.private_folder(self.logs_dir, "logs folder")
            except UnsafePath as exc:  # a write failure like any other (_failed_write)
                raise PermissionError(errno.EPERM, str(exc)) from None
            handler.stream = handler._open()
            self._remember(handler)
            size = None
        if size is None:
            handler.stream.seek(0, os.SEEK_END)
            size = handler.stream.tell()
        if self.max_bytes > 0 and size and size + len(line) + 1 >= self.max_bytes:
            handler.doRollover()
            self._remember(handler)
            size = 0
        handler.stream.write(line + "\n")
        handler.stream.flush()
        self._sizes[name] = size + len(line) + 1

    def _remember(self, handler: _PrivateRotatingFile) -> None:
        """Keep which file the handler has open, for :meth:`_moved`."""
        assert handler.stream is not None
        mine = os.fstat(handler.stream.fileno())
        self._opened[handler.baseFilename] = (mine.st_ino, mine.st_dev)

    def _moved(self, handler: _PrivateRotatingFile) -> bool:
        """The open file is no longer the one at its path: deleted (`rm logs/*.jsonl`,
        `rm -rf logs`) or moved away (logrotate without copytruncate). Writing on would
        put every later line in a file nobody can open; the next line opens it again.
        (One stat, ~1 us; a line costs ~15 us and the team writes a few a second.)"""
        assert handler.stream is not None
        try:
            there = os.stat(handler.baseFilename)
        except OSError:  # gone, or no folder there now: opening again says what is wrong
            return True
        return (there.st_ino, there.st_dev) != self._opened.get(handler.baseFilename)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        line = json.dumps(event, default=str, ensure_ascii=False)
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate (a model's half emoji, "\ud83d", in a tool input): no
                # UTF-8 file can hold it, and the failed write ended the session on every
                # redelivery. Escaped, the line is the same JSON.
                line = json.dumps(event, default=str, ensure_ascii=True)
        with self._lock:
            if self._closed:
                # shutdown() closed us, but structlog keeps its processors: a late event
                # (a library's warning) must not reopen files nobody will close again.
                raise structlog.DropEvent
            if self.logs_dir is not None:
                self._write(SUPERVISOR_LOG, line)
                agent = event.get("agent")
                if isinstance(agent, str) and agent and agent != SUPERVISOR_LOG:
                    self._write(agent, line)
            if self.console is not None:
                try:
                    self.console.write(
                        render_line(event, colour=self.colour, width=self.body_width) + "\n"
                    )
                    self.console.flush()
                except (OSError, ValueError):  # a full disk under supervisor.out, a closed pipe
                    pass
        raise structlog.DropEvent

    # --- a log file that cannot be written (issue 16, A.4) -----------------------------
    # A full filesystem (ENOSPC), a file-size limit (EFBIG), an I/O error: the team keeps
    # running. The first failure is reported once on stderr (not once per file or per
    # line); lines for a failing file are dropped and counted while each new line tries
    # again on a freshly opened file; the first line that gets through is preceded by a
    # `log_resumed` event, and stderr says writing resumed.

    def _write(self, name: str, line: str) -> None:
        try:
            if name in self._dropped:
                self._resume(name)  # first the note saying what was lost, then the line
            self._append(name, line)
        except OSError as exc:
            self._failed_write(name, exc)

    def _failed_write(self, name: str, exc: OSError) -> None:
        handler = self._files.get(name)
        if handler is not None and handler.stream is not None:
            stream, handler.stream = handler.stream, None
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # its buffer cannot be flushed; the next line reopens
        self._sizes.pop(name, None)
        self._dropped[name] = self._dropped.get(name, 0) + 1
        if self._reported:
            return
        self._reported = True
        assert self.logs_dir is not None
        _warn(
            f"octy-orchestrate: cannot write the log file {self.logs_dir / (name + '.jsonl')}: "
            f"{exc.strerror or exc}; the team keeps running, and log lines are dropped "
            "until they can be written again"
        )

    def _resume(self, name: str) -> None:
        """Write the ``log_resumed`` note before the first line that gets through; raises
        OSError (and nothing is counted as resumed) if the file still cannot be written."""
        assert self.logs_dir is not None
        path = self.logs_dir / f"{name}.jsonl"
        dropped = self._dropped[name]
        note = {
            "event": "log_resumed",
            "level": "warning",
            "agent": name,
            "dropped": dropped,
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        # The line that failed may have been written in part: end it, so the lines after
        # it are whole JSON lines again.
        if _last_byte(path) not in (b"", b"\n"):
            self._append(name, "")
        self._append(name, json.dumps(note))
        del self._dropped[name]
        if self._reported:
            self._reported = False
            _warn(f"octy-orchestrate: writing {path} again ({dropped} log line(s) dropped)")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for handler in self._files.values():
                handler.close()
            self._files.clear()
            self._sizes.clear()


def _last_byte(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, 1, size - 1) if size else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def _warn(text: str) -> None:
    """A line on stderr about the logs themselves (they cannot carry it)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


_ROUTER: _Router | None = None


# One connect's flag (connect.connect_within): set once it killed that claude because a stop
# was asked while it connected. The SDK's message reader, started inside that connect (its
# context carries the same list), then logs "Fatal error in message reader: Command failed
# with exit code -9": an error nobody made, which `down` or Ctrl-C during start-up used to
# print among the team's events. The session's end (`stopped while connecting`) says it.
KILLED_ON_STOP: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "octy_killed_on_stop", default=None
)
_READER_FATAL = "Fatal error in message reader"


class _FromStdlib(logging.Handler):
    """Libraries' stdlib log records (the SDK's "Fatal error in message reader: ...")
    into the same pipeline, instead of raw lines on stderr and nothing in the files."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            killed = KILLED_ON_STOP.get()
            if killed and killed[0] and record.getMessage().startswith(_READER_FATAL):
                return
            structlog.get_logger().log(
                record.levelno, "library_log", logger=record.name, message=record.getMessage()
            )
        except Exception:  # a log call must never break the caller
            self.handleError(record)


_STDLIB = _FromStdlib(logging.WARNING)


def configure(
    logs_dir: Path | None = None,
    *,
    console: TextIO | None = None,
    colour: bool | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    level: int = logging.INFO,
) -> None:
    """Route structlog events to ``logs_dir`` (created 0700) and optionally a console."""
    global _ROUTER  # noqa: PLW0603 - structlog's configuration is process-global by design
    if _ROUTER is not None:
        _ROUTER.close()
    if logs_dir is not None:
        # Created 0700; an existing folder is checked, never chmod-ed (it may be shared,
        # like /tmp): one that others can write is refused (UnsafePath).
        safefs.private_folder(logs_dir, "logs folder")
        # The supervisor's own log is opened now, so a link planted there is refused at
        # start-up, not at the first event.
        os.close(
            safefs.open_private(
                logs_dir / f"{SUPERVISOR_LOG}.jsonl",
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                "log file",
            )
        )
    if colour is None:
        colour = console is not None and colour_wanted(console)
    REDACTOR.add_from_env(dict(os.environ))
    _ROUTER = _Router(logs_dir, console, colour, max_bytes, backups)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _default_agent,
            REDACTOR,
            _ROUTER,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if _STDLIB not in root.handlers:
        root.addHandler(_STDLIB)


def _default_agent(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every event names its agent; the supervisor's own events name it."""
    event.setdefault("agent", SUPERVISOR_LOG)
    return event


def shutdown() -> None:
    global _ROUTER  # noqa: PLW0603 - see configure()
    logging.getLogger().removeHandler(_STDLIB)
    if _ROUTER is not None:
        _ROUTER.close()
        _ROUTER = None


def stderr_console() -> TextIO:
    return sys.stderr
