"""What every verb shares: exit codes, --db/--json options, error reporting."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator import colour, errors
from orchestrator.durations import finite_seconds
from orchestrator.redact import for_people, undecoded_shown

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_NO_SUPERVISOR = 5

DEFAULT_ROSTER = "agents.yaml"
# Set by the supervisor in each agent's claude process: the agent's name and its database, so
# the CLI run from an agent's Bash tool finds the queue and speaks as that agent.
AGENT_ENV = "OCTY_AGENT"
DB_ENV = "OCTY_DB"
DEFAULT_DB = Path("queue") / "team.db"

if TYPE_CHECKING:
    from orchestrator.roster import Roster
    from orchestrator.roster.queue_setting import QueueSetting

# The rosters this run has read, or why each could not be: resolve_db and resolve_place
# (and `ps`, which needs both) parse a file once per run, not once per question (issue 14:
# parsing agents.yaml is a good part of what `send` costs). Emptied by main() per run.
_rosters: dict[Path, Roster | errors.OrchestratorError] = {}


# The databases found in the roster cache this run (cli/roster_cache.py): a roster is only
# remembered when it names a SQLite queue, so a hit also answers resolve_place.
_cached: dict[Path, Path | None] = {}


def forget_rosters() -> None:
    _rosters.clear()
    _cached.clear()


def _cached_database(path: Path) -> Path | None:
    if path not in _cached:
        from orchestrator.cli import roster_cache

        _cached[path] = roster_cache.lookup(path)
    return _cached[path]


def _load_roster(path: Path) -> Roster:
    if path not in _rosters:
        from orchestrator.cli import roster_cache
        from orchestrator.roster import load_roster  # the roster loader only when one is read

        environ = roster_cache.ReadRecorder(os.environ)
        try:
            _rosters[path] = loaded = load_roster(path, environ)
        except errors.OrchestratorError as exc:
            _rosters[path] = exc
        else:
            if loaded.queue is None:
                roster_cache.remember(path, loaded.database, environ.asked)
    found = _rosters[path]
    if isinstance(found, errors.OrchestratorError):
        raise found
    return found


class CliFailure(Exception):
    """Raised by a verb to end with a message and a meaningful exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code


def exit_code_for(exc: errors.OrchestratorError) -> int:
    """Map an error to the exit code a script can branch on."""
    if isinstance(exc, errors.RequestTimeout):
        return EXIT_TIMEOUT
    if isinstance(exc, errors.MessageNotFound | errors.RecipientUnknown | errors.DatabaseMissing):
        return EXIT_NOT_FOUND
    if isinstance(exc, errors.SupervisorNotRunning | errors.SupervisorGone):
        return EXIT_NO_SUPERVISOR
    if isinstance(exc, errors.InvalidName | errors.InvalidBody | errors.InvalidSeconds):
        return EXIT_USAGE  # bad input, as argparse's own refusals
    return EXIT_ERROR


def failure_from(exc: errors.OrchestratorError) -> CliFailure:
    return CliFailure(str(exc), exit_code_for(exc), exc.code)


MAX_COUNT = 1_000_000_000  # SQLite integers are 64-bit; a limit this big lists everything


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more (``nan``, ``inf``, ``-1`` and
    ``1e400`` are usage errors, not tracebacks; argparse names the option)."""
    try:
        return finite_seconds(text, "the value")
    except errors.InvalidSeconds as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def no_room(st: os.statvfs_result) -> bool:
    """Whether a file system (its ``statvfs``) has no block left that a write may take.

    ``f_bavail``, not ``f_bfree``: ext4 counts in ``f_bfree`` the blocks it keeps for
    root (5% by default) and, beside them, ~2% that no file write may take at all. Filled
    by a user, an 8 MiB ext4 with 25% reserved showed f_bfree 2211, f_bavail 0; filled on
    by root, f_bfree 164, f_bavail 0 (measured): ``f_bfree == 0`` never came true, for
    anyone. A root that still has reserved blocks to write is taken as full too: the
    question is asked after a write failed with ENOSPC."""
    return st.f_bavail == 0


def message_id(text: str, lists: str = "queue ls") -> str:
    """An id a person typed (`approve ID`, `reply ID`, `queue show ID`, `trace ID`): one that
    no message can have (empty, a space, a control character, 129 characters) is a usage
    error, exit 2, as argparse's refusals; it was "no message ''" with exit 3, as if looked
    up and not found. Any other is looked up: a plain-SQL writer may choose its message's
    id (queue/README.md), a UUID or `Job_42`. ``lists``: the verb that lists such ids."""
    from orchestrator.mailbox.model import is_address

    if not is_address(text):
        raise CliFailure(
            f"{text!r} is not a message id (1 to 128 letters, digits, '-' and '_', "
            f"as `octy-orchestrate {lists}` shows them)",
            EXIT_USAGE,
            "usage",
        )
    return text


def standard_input(*, terminal: bool = False) -> TextIO | None:
    """Standard input if there is one to use, else None: closed when the run started
    (``<&-``: Python leaves ``sys.stdin`` None, and descriptor 0 is held on /dev/null,
    :func:`orchestrator.cli._hold_standard_fds`), or with ``terminal``, no terminal (a
    pipe or a file: nobody there to ask)."""
    stream = sys.stdin
    if stream is None or (terminal and not stream.isatty()):
        return None
    return stream


def count(text: str) -> int:
    """An argparse type: a whole number from 0 to :data:`MAX_COUNT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r}: must be from 0 to {MAX_COUNT}")
    return value


def add_common(parser: argparse.ArgumentParser, *, db: bool = True) -> None:
    """--json on every verb; --db where the verb touches the queue."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output: one JSON document, exact (nothing escaped or redacted)",
    )
    if db:
        parser.add_argument(
            "--db",
            type=Path,
            default=None,
            help="queue database (default: $OCTY_DB, else the one agents.yaml names, "
            "else queue/team.db)",
        )


def add_colour(p: argparse.ArgumentParser) -> None:
    """--color / --no-color, for every verb that colours what it prints (logs, trace, ps)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--color",
        "--colour",
        dest="colour",
        action="store_const",
        const=True,
        default=None,
        help="colour even when not writing to a terminal",
    )
    group.add_argument(
        "--no-color",
        "--no-colour",
        dest="colour",
        action="store_const",
        const=False,
        help="never colour (as NO_COLOR in the environment does on a terminal)",
    )


def colour_wanted(args: argparse.Namespace, stream: TextIO) -> bool:
    """What --color / --no-color say, else colour.wanted (a terminal, NO_COLOR unset)."""
    if args.colour is not None:
        return bool(args.colour)
    return colour.wanted(stream)


def roster_file(text: str) -> Path:
    """An argparse type for -f/--file: a path written as a folder (``myteam/``) means its
    agents.yaml, there or not yet (Path drops the slash: `init -f myteam/` wrote the roster
    to a file named myteam, prompts/ beside it). An empty one is refused: Path('') is '.',
    so `down -f "$ROSTER"` with ROSTER unset stopped the team of the current folder, and
    `init --force -f "$ROSTER"` overwrote its agents.yaml."""
    if not text:
        raise argparse.ArgumentTypeError(
            "an empty path; name the roster (like team/agents.yaml), or leave the option out for "
            "./agents.yaml"
        )
    if text.endswith(("/", os.sep)):
        return Path(text) / DEFAULT_ROSTER
    return Path(text)


def add_roster(parser: argparse.ArgumentParser) -> None:
    """``-f/--file FILE`` after the verb, as before it (``octy-orchestrate -f FILE VERB``):
    the roster whose ``database`` (or ``queue``) the verb uses."""
    parser.add_argument(
        "-f",
        "--file",
        type=roster_file,
        default=None,
        metavar="FILE",
        help="the roster whose queue to use (default: ./agents.yaml, see --db)",
    )


def resolve_db(args: argparse.Namespace, roster_file: Path | None = None) -> Path:
    """The queue database a verb uses, first found of: ``--db``; the ``database`` of the
    roster named with ``-f``; ``$OCTY_DB`` (set inside an agent's session); the ``database``
    of ./agents.yaml; ``queue/team.db``.

    A roster with errors does not lock the operator out of a team that runs its last good
    version: the database recorded when that team started is used, with one warning line
    (see :mod:`orchestrator.cli.team_record`). With no such record the errors are reported."""
    explicit: Path | None = getattr(args, "db", None)
    if explicit is not None:
        if explicit.is_dir():  # `--db /` ended in a traceback (a path with no file name)
            raise CliFailure(
                f"--db {explicit} is a folder; pass the queue's database file, like queue/team.db",
                EXIT_USAGE,
                "usage",
            )
        return explicit
    roster_file = roster_file or getattr(args, "file", None)
    if roster_file is None and os.environ.get(DB_ENV):
        path = Path(os.environ[DB_ENV])
        agent = os.environ.get(AGENT_ENV)
        if agent and not path.exists():  # the sandbox hides it (see orchestrator/sandbox.py)
            raise CliFailure(
                f"this runs inside agent '{agent}''s sandbox, where the team's database is out "
                "of reach: talk to the team with the mcp__octy__ tools (send, ask, reply, "
                "broadcast, agents)",
                EXIT_ERROR,
                "sandboxed",
            )
        return path
    path = roster_file or Path(DEFAULT_ROSTER)
    if roster_file is None and not path.is_file():
        return DEFAULT_DB
    if (known := _cached_database(path)) is not None:
        return known
    try:
        return _load_roster(path).database
    except errors.OrchestratorError as exc:
        from orchestrator.cli import team_record  # only for a broken roster

        record = team_record.read(path)
        if record is None:
            raise failure_from(exc) from exc
        problems = len(exc.errors) if isinstance(exc, errors.RosterErrors) else 0
        team_record.warn_invalid(path, problems, record)
        return record.database


def no_team_database(db: Path, roster_file: Path | None, explicit_db: bool) -> str:
    """What `ps` and `top` say where there is no team database. With no roster here either,
    `up` would fail too ("agents.yaml: file not found"): say where a team is found instead
    of sending the user to a verb that cannot work in this folder."""
    roster = roster_file or Path(DEFAULT_ROSTER)
    if explicit_db or roster.exists() or (roster_file is None and os.environ.get(DB_ENV)):
        return f"no team database at {db}; start the team with `octy-orchestrate up`"
    return (
        f"no team here: no {roster} and no team database at {db}; run this in the team's "
        "folder or name its roster with -f FILE (`octy-orchestrate init` writes a starter)"
    )


def resolve_place(args: argparse.Namespace, roster_file: Path | None = None) -> Path | QueueSetting:
    """Like :func:`resolve_db`, but a roster with ``queue: nats://...`` gives that queue
    (``--db`` and ``$OCTY_DB`` still name a SQLite file)."""
    roster_file = roster_file or getattr(args, "file", None)
    db = resolve_db(args, roster_file)
    if getattr(args, "db", None) is not None or (roster_file is None and os.environ.get(DB_ENV)):
        return db
    path = roster_file or Path(DEFAULT_ROSTER)
    if not path.is_file() or _cached.get(path) is not None:
        return db
    try:
        roster = _load_roster(path)  # loaded (and checked) once already by resolve_db
    except errors.OrchestratorError:
        # Invalid on disk: resolve_db found the running team's recorded database and
        # warned once. (The record keeps paths only: a NATS team's verbs need a valid file.)
        return db
    return db if roster.queue is None else roster.queue


def emit_json(data: Any) -> None:
    # dumps, not dump: dump always takes the pure-Python encoder, which recurses a few frames
    # a level (a deeply nested body stored by plain SQL ended `queue ls --json` in
    # RecursionError); dumps takes the C one.
    sys.stdout.write(json.dumps(data, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def quoted(names: Sequence[str]) -> str:
    """Names a user typed, each quoted (an empty one shows as '', not as nothing)."""
    return ", ".join(repr(n) for n in names)


MAX_ERROR_LINE = 300
"""Characters of one error line a person is shown; the rest is cut (a message quotes
what it was given, and a 5,000-character id would bury the one useful line)."""


def clip_lines(text: str, width: int = MAX_ERROR_LINE) -> str:
    """Each line over ``width`` characters cut in the middle (its start says what went wrong,
    its end often what to do), saying how much was left out."""
    head, tail = width // 2, width // 3

    def clip(line: str) -> str:
        if len(line) <= width:
            return line
        cut = len(line) - head - tail
        return f"{line[:head]} …({cut:,} characters left out)… {line[-tail:]}"

    return "\n".join(clip(line) for line in text.split("\n"))


def undecodable_folder(
    roster: Path, *, what: str = "the roster's path", fix: str = "rename its folder"
) -> str | None:
    """Why a team cannot live where ``roster`` is, or None: its folder's path is not UTF-8
    (a byte such as 0xff in a folder's name). The queue records the team's paths as text,
    and `up` there ended in a traceback (UnicodeEncodeError registering the supervisor);
    `up -d` handed the path to its background supervisor, which refused it as an
    argument. One rule for every verb that judges a roster (`up`, `config`, `demo`'s
    own): `config` called such a roster valid while `up` refused it."""
    where = str(roster.absolute())
    try:
        where.encode("utf-8")
    except UnicodeEncodeError:
        # The byte shown as `\xff`, in --json too (a lone surrogate there is refused by
        # strict JSON readers).
        return (
            f"{what} {undecoded_shown(where)} is not valid UTF-8 text: the queue and the logs "
            f"record the team's paths as text; {fix}"
        )
    return None


def undecodable_paths(roster: Roster) -> list[str]:
    """Why the team cannot run with the paths ``roster`` names, beyond its folder's own
    (:func:`undecodable_folder`: nothing more is said then): a ``database`` path that is
    not UTF-8 (from a ``${VAR}``: `up` ended in a traceback, UnicodeEncodeError opening
    the budget ledger, its queue already made), or agents' working folder whose real path
    is not (a ``cwd`` from a ``${VAR}``, or the team's folder reached through a symlink:
    the claude CLI, which runs where a folder really is, said `Can't access working
    directory` and the agent restarted until it failed, measured), or what the agents'
    sandbox hides or keeps read-only (its rules could not name it: a sandboxed Bash wrote
    into such a `logs` folder, measured), the queue's secret files among them. `config`
    called them valid, `up` started them."""
    if undecodable_folder(roster.path) is not None:
        return []
    # only for the verbs that load a roster (not on every verb's start path)
    from orchestrator import sandbox

    real = os.path.realpath(roster.folder)
    if not is_utf8(real):  # reached through a symlink: what is in it is named by its real path
        return [
            f"the team's folder {undecoded_shown(str(roster.folder))} is really "
            f"{undecoded_shown(real)}, which is not valid UTF-8 text: the claude CLI cannot "
            "start its agents there, nor their sandbox name what it hides there; move the team "
            "to a folder whose real path is UTF-8 text"
        ]
    problems = []
    database = str(roster.database)
    if not is_utf8(database):
        problems.append(
            f"the database path {undecoded_shown(database)} is not valid UTF-8 text: the "
            "queue records the team's paths as text; set 'database' to a path that is"
        )
    # What the agents' tools may not touch, as their sandbox and permission rules name it
    # (real paths, in JSON): a `logs: ${VAR}` folder so named was neither hidden nor
    # read-only, a sandboxed Bash listed it and wrote a file into it (measured; the same
    # rules hid a UTF-8 one).
    # The queue's `creds` and TLS `key` files too (a CA or certificate is public: its path
    # may hold such a byte, the NATS client opens it by it).
    hidden = [*sandbox.private_folders(roster), *sandbox.secret_files(roster)]
    said = [] if is_utf8(database) else [roster.database.parent.resolve()]
    for path in dict.fromkeys([*hidden, *sandbox.read_only_files(roster)]):
        what = "hide" if path in hidden else "keep read-only"
        if not is_utf8(str(path)) and path not in said:
            problems.append(
                f"{undecoded_shown(str(path))} is not valid UTF-8 text: the agents' sandbox "
                f"and permission rules cannot name it, to {what} it; give the team paths "
                "(and real paths) that are UTF-8 text"
            )
        elif "\\" in str(path):
            # A permission rule names no path with a backslash, escaped or not: the Read
            # tool returned a creds file in a `n\x` folder (measured on 2.1.332).
            problems.append(
                f"{undecoded_shown(str(path))} has a backslash: the agents' permission rules "
                f"cannot name it, to {what} it; give the team paths (and real paths) "
                "without one"
            )
    for path in sandbox.secret_files(roster):
        with contextlib.suppress(OSError):
            if (links := path.stat().st_nlink) > 1:
                # Hidden by its path: another name for it (a hard link made before `up`)
                # let the Read tool and a sandboxed `cat` return it (measured).
                problems.append(
                    f"{undecoded_shown(str(path))} has {links} names (hard links): the "
                    "agents' sandbox hides it by this one, they could read it by another; "
                    "give the queue a secret file with one name (copy it)"
                )
    return problems + unusable_working_folders(roster)


def unusable_working_folders(roster: Roster, names: Sequence[str] | None = None) -> list[str]:
    """The agents among ``names`` (default all) whose working folder's real path is not
    UTF-8 text, one line per folder: the claude CLI cannot start there (`reload` adding
    one: it restarted until it failed, measured)."""
    unusable: dict[Path, list[str]] = {}  # a working folder -> its agents
    for name, spec in roster.agents.items():
        if (names is None or name in names) and not is_utf8(os.path.realpath(spec.cwd)):
            unusable.setdefault(spec.cwd, []).append(name)
    problems = []
    for cwd, agents in unusable.items():
        real = os.path.realpath(cwd)
        via = "" if real == str(cwd) else f" (really {undecoded_shown(real)})"
        problems.append(
            f"the working folder {undecoded_shown(str(cwd))}{via} of {', '.join(agents)} is "
            "not valid UTF-8 text: the claude CLI cannot start there; set 'cwd' to a folder "
            "whose real path is UTF-8 text, or move the team to one"
        )
    return problems


def unusable_for_agents(roster: Roster, names: Sequence[str]) -> list[str]:
    """What `reload` refuses in the agents ``names`` it would start: a working folder
    (:func:`unusable_working_folders`), or a prompt file, whose real path is not UTF-8
    text (the sandbox could not keep that file read-only: the agent could rewrite its
    own instructions, which the watched file would then reload)."""
    problems = unusable_working_folders(roster, names)
    for name in names:
        source = roster.agents[name].prompt_file if name in roster.agents else None
        if source is not None and not is_utf8(real := str(source.resolve())):
            problems.append(
                f"the prompt file of {name}, {undecoded_shown(real)}, is not valid UTF-8 text: "
                "the agents' sandbox and permission rules cannot name it, to keep it "
                "read-only; give it a path (and real path) that is UTF-8 text"
            )
    return problems


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refuse_undecodable_folder(roster: Path) -> None:
    """`up`'s refusal of :func:`undecodable_folder`: a usage error (exit 2)."""
    problem = undecodable_folder(roster)
    if problem is not None:
        raise CliFailure(problem, EXIT_USAGE, "invalid_path")


def report_failure(args: argparse.Namespace, failure: CliFailure) -> None:
    try:
        if getattr(args, "json", False):
            emit_json({"ok": False, "error": failure.code, "message": failure.message})
        else:
            # Messages quote names and paths that others chose: escaped, secrets masked, clipped.
            shown = clip_lines(for_people(failure.message, multiline=True))
            print(f"octy-orchestrate: {shown}", file=sys.stderr)
    except (OSError, ValueError):
        # Where it goes cannot take it (`2>/dev/full`): there is nowhere else to say it, and
        # the exit status still must (it ended 1, the status of an escaped OSError, not 3).
        pass
