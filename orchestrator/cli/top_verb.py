"""`top`: the team on one screen (orchestrator.tui). Textual is imported only when the
verb runs, so the other verbs start as fast as before."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli.common import CliFailure
from orchestrator.durations import finite_seconds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "top",
        help="a live view of the team: agents, costs, CPU, events; restart/stop/start keys",
        description="One screen that shows every agent (state and reason, pid, uptime, "
        "restarts, pending, the message in flight and its age, turns, tokens, cost, CPU and "
        "memory of its claude process), the team (supervisor, queue depth, dead letters, "
        "total cost) and its events as they happen. Works with no supervisor running (last "
        "known states, marked) and while agents.yaml is invalid. A team on NATS JetStream "
        "(`queue: nats://...`) is read from its server; pids, CPU, memory, events and "
        "restart/stop/start are this machine's. Press ? for the keys.",
    )
    p.add_argument(
        "-f",
        "--file",
        type=common.roster_file,
        default=None,
        help="the roster (default ./agents.yaml)",
    )
    p.add_argument("--db", type=Path, default=None, help="queue database (default: the roster's)")
    p.add_argument(
        "--logs", type=Path, metavar="DIR", help="logs folder (default: the roster's `logs`)"
    )
    p.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="S",
        help="seconds between refreshes (default 1; at least 0.1)",
    )
    p.set_defaults(func=cmd_top)


def _interval(text: str) -> float:
    try:
        return finite_seconds(text, "the value", least=0.1, most=3600)
    except errors.InvalidSeconds as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_top(args: argparse.Namespace) -> int:
    from orchestrator.tui.data import TeamSource

    source = TeamSource.resolve(args.file, database=args.db, logs=args.logs)
    # A NATS team's queue is on its server: this machine may never have run a supervisor.
    if source.queue is None and not source.database.exists():
        raise CliFailure(
            common.no_team_database(source.database, args.file, args.db is not None),
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    if common.standard_input(terminal=True) is None or not sys.stdout.isatty():
        raise CliFailure(
            "top needs a terminal (use `ps --json` or `logs -f` in scripts)",
            common.EXIT_USAGE,
            "usage",
        )
    if os.environ.get("TERM") == "dumb":
        # Textual draws whatever TERM says; a dumb terminal (Emacs's shell, an editor's
        # output pane) printed its screen as a stream of raw escape sequences.
        raise CliFailure(
            "top draws a screen, and TERM=dumb is a terminal that cannot show one; run it "
            "in a terminal emulator (or set TERM to its type, such as xterm-256color), or use "
            "`ps` and `logs -f`",
            common.EXIT_USAGE,
            "usage",
        )
    from orchestrator.tui.app import run  # Textual: only now

    return run(source, refresh_s=args.interval)
