"""What every verb shares: exit codes, --db/--json options, error reporting."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import errors

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
    from orchestrator.roster.queue_setting import QueueSetting


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
    if isinstance(exc, errors.MessageNotFound | errors.RecipientUnknown):
        return EXIT_NOT_FOUND
    if isinstance(exc, errors.SupervisorNotRunning):
        return EXIT_NO_SUPERVISOR
    return EXIT_ERROR


def failure_from(exc: errors.OrchestratorError) -> CliFailure:
    return CliFailure(str(exc), exit_code_for(exc), exc.code)


def add_common(parser: argparse.ArgumentParser, *, db: bool = True) -> None:
    """--json on every verb; --db where the verb touches the queue."""
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (one JSON document)"
    )
    if db:
        parser.add_argument(
            "--db",
            type=Path,
            default=None,
            help="queue database (default: the one named in agents.yaml, else queue/team.db)",
        )


def resolve_db(args: argparse.Namespace, roster_file: Path | None = None) -> Path:
    """The queue database a verb uses, first found of: ``--db``; the ``database`` of the
    roster named with ``-f``; ``$OCTY_DB`` (set inside an agent's session); the ``database``
    of ./agents.yaml; ``queue/team.db``. A named or present roster with errors is reported,
    not skipped over."""
    explicit: Path | None = getattr(args, "db", None)
    if explicit is not None:
        return explicit
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
    from orchestrator.roster import load_roster  # the roster loader only when one is read

    try:
        return load_roster(path).database
    except errors.OrchestratorError as exc:
        raise failure_from(exc) from exc


def resolve_place(
    args: argparse.Namespace, roster_file: Path | None = None
) -> Path | QueueSetting:
    """Like :func:`resolve_db`, but a roster with ``queue: nats://...`` gives that queue
    (``--db`` and ``$OCTY_DB`` still name a SQLite file)."""
    db = resolve_db(args, roster_file)
    if getattr(args, "db", None) is not None or (roster_file is None and os.environ.get(DB_ENV)):
        return db
    path = roster_file or Path(DEFAULT_ROSTER)
    if not path.is_file():
        return db
    from orchestrator.roster import load_roster  # the roster loader only when one is read

    roster = load_roster(path)  # loaded (and checked) once already by resolve_db
    return db if roster.queue is None else roster.queue


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def report_failure(args: argparse.Namespace, failure: CliFailure) -> None:
    if getattr(args, "json", False):
        emit_json({"ok": False, "error": failure.code, "message": failure.message})
    else:
        print(f"octy-orchestrate: {failure.message}", file=sys.stderr)
