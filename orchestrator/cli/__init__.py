"""``octy-orchestrate``: one entry point, verbs registered by the modules below.

Each verb module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (taking the parsed namespace, returning an exit code) as a default.
Exit codes mean something (see :mod:`orchestrator.cli.common`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from orchestrator import __version__, errors
from orchestrator.cli import common
from orchestrator.redact import REDACTOR

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

# Verb modules, in the order their verbs appear in --help.
_VERB_MODULES = (
    "orchestrator.cli.team_verbs",
    "orchestrator.cli.queue_verbs",
    "orchestrator.cli.model_verbs",
    "orchestrator.cli.log_verbs",
    "orchestrator.cli.demo_verbs",
    "orchestrator.cli.workspace_verbs",  # issue 11
    "orchestrator.cli.approval_verbs",  # issue 11
    "orchestrator.cli.top_verb",
    "orchestrator.cli.budget_verbs",
)

# Which module registers each verb, so that a run imports only its verb's module (issue 14:
# scripts and hooks call `send` on every event; importing every verb module costs several
# times what writing the row does). A verb missing here still works, through every module;
# tests/cli/test_cli_imports.py checks that this table matches what the modules register.
VERB_HOMES: dict[str, str] = {
    **dict.fromkeys(
        ("up", "down", "ps", "start", "stop", "restart", "reload", "config"),
        "orchestrator.cli.team_verbs",
    ),
    **dict.fromkeys(
        ("register", "unregister", "send", "ask", "inbox", "reply", "queue"),
        "orchestrator.cli.queue_verbs",
    ),
    "scripted-model": "orchestrator.cli.model_verbs",
    "logs": "orchestrator.cli.log_verbs",
    "trace": "orchestrator.cli.log_verbs",
    "init": "orchestrator.cli.demo_verbs",
    "demo": "orchestrator.cli.demo_verbs",
    "workspaces": "orchestrator.cli.workspace_verbs",
    "approvals": "orchestrator.cli.approval_verbs",
    "approve": "orchestrator.cli.approval_verbs",
    "deny": "orchestrator.cli.approval_verbs",
    "top": "orchestrator.cli.top_verb",
    "resume": "orchestrator.cli.budget_verbs",
}


def modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The verb modules a command line needs: its verb's module; none for ``--version``;
    every one when in doubt (no verb, ``--help`` before it, an option this does not know),
    which is always right, only slower."""
    tokens = iter(argv)
    for token in tokens:
        if token in ("-f", "--file") or (len(token) > 2 and "--file".startswith(token)):
            next(tokens, None)  # the roster's path, whatever it looks like
        elif token.startswith(("-f", "--file=")):
            continue
        elif len(token) > 2 and "--version".startswith(token):
            return ()  # argparse prints the version as it meets the option, and exits
        elif token.startswith("-"):
            return _VERB_MODULES  # --help (lists every verb), `--`, or a usage error
        else:
            home = VERB_HOMES.get(token)
            return (home,) if home else _VERB_MODULES
    return _VERB_MODULES


class _Parser(argparse.ArgumentParser):
    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        """A usage error or help that cannot be written (stderr on a full disk) is dropped,
        as Python 3.11.4 and later drop it, so the exit status (2 for usage) is kept: on
        3.11.2, Debian 12's, the write raised and the verb ended 1 (measured)."""
        with contextlib.suppress(AttributeError, OSError):
            super()._print_message(message, file)


class _VerbParser(_Parser):
    """A verb's parser: options and operands in any order, as compose takes them (`ps a
    --json b`, `logs a -n 5 b`: argparse alone refused the operand after the option), and an
    option it does not know refused by the verb, with the verb's usage (it was the top
    parser's, `usage: octy-orchestrate [-h] [--version] [-f FILE] VERB ...`, which does not
    say what `ps` takes). After `--` every word is an operand, as before and as git takes it:
    the stdlib's parse_known_intermixed_args (3.11) dropped the `--` between its two passes,
    so `send -- bob -x` read -x as an option and `queue show -- -m1` had no ID."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._subparsers is not None:
            # `queue`, `workspaces`: their verb's parser does this.
            parsed, extras = super().parse_known_args(args, namespace)
        else:
            parsed, extras = self._parse_intermixed(
                list(sys.argv[1:] if args is None else args), namespace
            )
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def _parse_intermixed(
        self, args: list[str], namespace: argparse.Namespace | None
    ) -> tuple[argparse.Namespace, list[str]]:
        """The stdlib's two passes (options with the operands set aside, then the operands),
        with the words after the first `--` kept out of the first and given, behind their
        `--`, to the second."""
        after: list[str] = []
        if "--" in args:
            cut = args.index("--")
            args, after = args[:cut], args[cut:]
        operands = self._get_positional_actions()
        options = self._get_optional_actions()
        saved_usage = self.usage
        saved = [(a, a.nargs, a.default, a.required) for a in operands + options]
        saved_groups = [(g, g.required) for g in self._mutually_exclusive_groups]
        try:
            if self.usage is None:
                self.usage = self.format_usage()[len("usage: ") :]  # with the operands
            for action in operands:
                action.nargs = action.default = argparse.SUPPRESS
            namespace, rest = super().parse_known_args(args, namespace)
            for action in operands:
                action.nargs, action.default = next(s[1:3] for s in saved if s[0] is action)
                if getattr(namespace, action.dest, None) == []:
                    delattr(namespace, action.dest)
            # The options were read: none is missing in the second pass.
            for action in options:
                action.required = False
            for group, _ in saved_groups:
                group.required = False
            return super().parse_known_args(rest + after, namespace)
        finally:
            self.usage = saved_usage
            for action, nargs, default, required in saved:
                action.nargs, action.default, action.required = nargs, default, required
            for group, required in saved_groups:
                group.required = required


def build_parser(modules: Sequence[str] = _VERB_MODULES) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="octy-orchestrate",
        description="Run a team of Claude Code agents: supervision, a durable queue, "
        "peer-to-peer ask/reply.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 timeout, "
        "5 no supervisor running.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-f",
        "--file",
        dest="top_file",
        type=common.roster_file,
        default=None,
        metavar="FILE",
        help="the roster, for any verb that reads one (default: ./agents.yaml); also accepted "
        "after the verb (`logs --file`, its -f being --follow)",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_VerbParser)
    import importlib

    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a verb module not written yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """A verb registered without a description shows its one-line help at the top of its
    --help, as `start` does (`send --help`, `queue ls --help`, `approve --help` began with
    the usage and a bare list of options)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, verb in action.choices.items():
                said = helps.get(name)
                if verb.description is None and said:
                    verb.description = said[0].upper() + said[1:] + "."
                _describe(verb)


def main(argv: Sequence[str] | None = None) -> int:
    entered = sys.stderr
    try:
        return _main(argv)
    finally:
        if isinstance(sys.stderr, _Unfailing):
            sys.stderr = entered if entered is not None else sys.stderr.stream
        _settle_standard_streams()


class _Unfailing:
    """Standard error whose writes never fail the verb: what cannot be said there (`2>`
    a full disk or `/dev/full`) is dropped, as argparse's usage is (``_Parser``).

    A warning or an error line that could not be written raised OSError from wherever it
    was printed: `ps 2>/dev/full` with agents.yaml invalid (its one-line warning) ended 1
    and listed nothing, `send` sent nothing, and `send a hi >&- 2>/dev/full` ended 1, not
    2 (measured). The verb's work and its exit status do not depend on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding...: the stream's
        return getattr(self.stream, name)


def _main(argv: Sequence[str] | None) -> int:
    # Whatever a person reads is redacted (see orchestrator.redact): secrets in this
    # environment are known values from the start.
    REDACTOR.add_from_env(os.environ)
    common.forget_rosters()  # a run reads agents.yaml as it is now (tests run main() often)
    stdout_closed = _hold_standard_fds()
    _escape_what_cannot_show()
    sys.stderr = cast("TextIO", _Unfailing(sys.stderr))
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(modules_for(argv))
    bad = next((a for a in argv if _not_utf8(a)), None)
    if bad is not None:
        # Python decodes such bytes as lone surrogates, which fail later, deep in a write.
        shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        parser.print_usage(sys.stderr)
        print(
            f"octy-orchestrate: error: argument {shown!r} is not valid UTF-8 text",
            file=sys.stderr,
        )
        return common.EXIT_USAGE
    agent = os.environ.get(common.AGENT_ENV, "")
    if _not_utf8(agent):
        # The queue verbs speak as this name (and store it): it failed deep in a write.
        shown = agent.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        print(
            f"octy-orchestrate: error: ${common.AGENT_ENV} '{shown}' is not valid UTF-8 text; "
            f"unset it, or set it to the agent's name",
            file=sys.stderr,
        )
        return common.EXIT_USAGE
    args = parser.parse_args(argv)
    if stdout_closed:
        # Every verb reports what it did on stdout: run blind, `send` would send and then
        # fail on its first print (a script retries: a duplicate), `ask` would lose the answer.
        print(
            "octy-orchestrate: error: standard output is closed (>&-), so nothing this verb "
            "does could be reported; nothing was done. Redirect it to /dev/null to discard it",
            file=sys.stderr,
        )
        return common.EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return common.EXIT_USAGE
    if args.top_file is not None:  # `octy-orchestrate -f team.yaml ps`, as compose
        if getattr(args, "file", None) not in (None, args.top_file):
            parser.error("-f/--file given twice, with different files")
        args.file = args.top_file
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `octy-orchestrate ... | head`: the reader left, nothing is wrong. Point stdout at
        # /dev/null so the interpreter's last flush is quiet, and end as a SIGPIPE'd tool.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except common.CliFailure as failure:
        common.report_failure(args, failure)
        return failure.exit_code
    except errors.OrchestratorError as exc:
        # An error with its own message that a verb let through (`approvals --db FILE` with
        # a file that is not a database ended in a traceback): the message, not the stack.
        unforeseen = common.failure_from(exc)
        common.report_failure(args, unforeseen)
        return unforeseen.exit_code
    except sqlite3.Error as exc:
        # SQLite's own error, untranslated (a --db that is a device or a /proc file): say
        # which database, once.
        from orchestrator.mailbox import schema  # only on this rare path

        where = Path(getattr(args, "db", None) or "the queue's database")
        untranslated = common.failure_from(schema.translate(where, exc))
        common.report_failure(args, untranslated)
        return untranslated.exit_code
    except OSError as exc:
        if _stdout_unwritable() or _stdout_full(exc):
            # `>/dev/full`, a full disk under the file stdout goes to (cron's, a unit's): the
            # verb did its work and only its report failed. Said on stderr, not as a file
            # error (`[Errno 28] No space left on device` named no file), and never as JSON
            # on the stdout that fails.
            why = exc.strerror or str(exc)
            print(
                f"octy-orchestrate: error: cannot write to standard output ({why}): "
                "the verb ran, only what it printed is lost (`logs` shows what the team did)",
                file=sys.stderr,
            )
            return common.EXIT_ERROR
        # A file a verb met and no check foresaw (a name too long for the file system, a
        # folder turned unreadable): one line that says which, not a traceback.
        common.report_failure(args, common.CliFailure(str(exc), common.EXIT_ERROR, "os_error"))
        return common.EXIT_ERROR
    return code


def _stdout_unwritable() -> bool:
    """Whether standard output refuses what is waiting for it (tried once more here)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return False


def _stdout_full(exc: OSError) -> bool:
    """Whether ``exc`` is a write to standard output that found its device full.

    Unbuffered (PYTHONUNBUFFERED=1, as units for Python services often set) the failed
    print has dropped its text, so trying again proves nothing: a disk-full error that
    names no file, while stdout is `/dev/full` or a file on a file system with no block
    left (common.no_room: a user's disk is full with root's reserved blocks still free,
    and ext4 is, for root too, with f_bfree above 0), is taken as stdout's."""
    import errno
    import stat

    if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or exc.filename is not None:
        return False
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd)
        if stat.S_ISCHR(mode.st_mode):
            return os.major(mode.st_rdev) == 1 and os.minor(mode.st_rdev) == 7  # /dev/full
        return stat.S_ISREG(mode.st_mode) and common.no_room(os.fstatvfs(fd))
    except (OSError, ValueError, AttributeError):
        return False


def _settle_standard_streams() -> None:
    """Flush stdout and stderr now; one that cannot take its text is pointed at /dev/null.

    The interpreter flushes them again as it ends, and a failure there (stdout or stderr
    sent to `/dev/full`, a full disk under a cron job's output file) printed `Exception
    ignored in: <_io.TextIOWrapper name='<stdout>'> OSError: [Errno 28] …` and replaced the
    verb's exit status by 120: `logs nosuch 2>/dev/full` ended 120, not 3."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                held = os.open(os.devnull, os.O_WRONLY)
                os.dup2(held, stream.fileno())
                os.close(held)
            except (OSError, ValueError):  # no descriptor behind it: nothing left to save
                pass


def _hold_standard_fds() -> bool:
    """Point closed standard descriptors (0, 1, 2) at /dev/null; return whether stdout was
    closed when this run started.

    A process started with `>&-` or `<&-` has a free descriptor 0, 1 or 2: the next file it
    opens (the queue's database, a log) takes that number, a print would write into it, and a
    child would inherit it as its stdin or stdout. Python leaves sys.stdout (sys.stdin) None
    then, and every print failed with a traceback."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != fd:  # a lower number was free too: it is held by now, move this one
                os.dup2(held, fd)
                os.close(held)
    if sys.stderr is None:  # errors go nowhere then, but a print to it must not fail
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run
    return sys.stdout is None  # left None: argparse's --help falls back to stderr


def _escape_what_cannot_show() -> None:
    """Characters the terminal's encoding has no bytes for (an ISO-8859-1 or ASCII locale,
    PYTHONIOENCODING=ascii) are written as backslash escapes, on stdout and stderr alike.

    Strict, the first such print failed after the verb had done its work: `send` sent and
    ended in UnicodeEncodeError (exit 1: a script retrying sent twice), `inbox --ack` left
    its messages leased, the `up` console dropped its lines. Every verb prints through
    these two streams (the console of `up`, `logs -f`), so this holds for all of them."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # None when closed at start
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _not_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
