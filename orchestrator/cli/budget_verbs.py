"""Budget verbs: ``resume`` (run a paused agent again, overriding its budget)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli.common import CliFailure
from orchestrator.control import send_command


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "resume",
        help="run agents paused by a budget again, overriding it until its window rolls over",
        description="An agent over its budget (or the team's) is paused: it claims nothing "
        "and asks to it fail with budget_exceeded. `resume` overrides the budgets it is over "
        "until their window rolls over (for per: run, until the next `up`) and says which; "
        "spending is still counted. Without AGENT: every paused agent.",
    )
    common.add_common(p)
    p.add_argument(
        "-f", "--file", type=Path, default=None, help="the roster (default ./agents.yaml)"
    )
    p.add_argument("agents", nargs="*", metavar="AGENT", help="agents to resume (default: all)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="wait this long for the supervisor's acknowledgement (60 s)",
    )
    p.set_defaults(func=cmd_resume)


def cmd_resume(args: argparse.Namespace) -> int:
    db = common.resolve_db(args, args.file)
    try:
        result = send_command(db, "resume", agents=list(args.agents), timeout_s=args.timeout)
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    if not result.get("ok"):
        code = common.EXIT_NOT_FOUND if result.get("error") == "not_found" else common.EXIT_ERROR
        raise CliFailure(str(result.get("message")), code, str(result.get("error")))
    if args.json:
        common.emit_json(result)
        return common.EXIT_OK
    agents = result.get("agents") or []
    if not agents:
        print("no agent is paused by a budget; nothing to override")
    for entry in agents:
        print(entry.get("message"))
    return common.EXIT_OK
