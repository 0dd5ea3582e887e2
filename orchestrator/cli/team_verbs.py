"""Team verbs: up, down, ps, start, stop, restart, reload, config."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from orchestrator import errors, logconfig, safefs
from orchestrator.cli import common
from orchestrator.cli.budget_verbs import budget_cell, context_cell, ps_fields
from orchestrator.cli.common import CliFailure
from orchestrator.control import send_command
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import SUPERVISOR, USER
from orchestrator.mailbox.opening import QueuePlace, check_queue, open_sync, place_of
from orchestrator.roster import Roster, load_roster

CREDENTIAL_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help="start the team (foreground, or -d detached)",
        description="Validate agents.yaml and run the team until Ctrl-C / SIGTERM / `down`. "
        "A first Ctrl-C stops gracefully (turns finish within --grace, then are "
        "interrupted and requeued); a second forces it.",
    )
    _roster_opt(p)
    p.add_argument(
        "agents", nargs="*", metavar="AGENT", help="start only these agents (default: all)"
    )
    p.add_argument(
        "-d", "--detach", action="store_true", help="run in the background; logs in logs/"
    )
    p.add_argument(
        "--grace", type=float, default=10.0, metavar="S", help="graceful stop budget (10 s)"
    )
    p.add_argument("--no-color", action="store_true", help="plain console output")
    p.add_argument(
        "--no-model-check",
        action="store_true",
        help="start without first checking that the model endpoint answers and takes the key",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop a running team gracefully (as SIGTERM)")
    _roster_opt(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="grace for in-flight turns before they are interrupted and requeued (10 s)",
    )
    p.set_defaults(func=cmd_down)

    p = sub.add_parser(
        "ps", help="agents: state, pid, uptime, restarts, pending, turns, tokens, cost"
    )
    _roster_opt(p)
    p.set_defaults(func=cmd_ps)

    for verb, text in (
        ("start", "start a stopped or failed agent"),
        ("stop", "stop one agent"),
        ("restart", "restart one agent (resumes its conversation)"),
    ):
        p = sub.add_parser(verb, help=text)
        _roster_opt(p)
        p.add_argument("agent", metavar="AGENT")
        p.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            metavar="S",
            help="wait this long for the supervisor's acknowledgement (60 s)",
        )
        p.set_defaults(func=cmd_agent_command, command=verb)

    p = sub.add_parser("reload", help="re-read agents.yaml now and apply the changes")
    _roster_opt(p)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser(
        "config", help="validate agents.yaml and print it resolved (exit 1 on errors)"
    )
    _roster_opt(p)
    p.set_defaults(func=cmd_config)


def _roster_opt(p: argparse.ArgumentParser) -> None:
    common.add_common(p)
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        default=None,
        help="the roster (default ./agents.yaml)",
    )


def load(args: argparse.Namespace) -> Roster:
    path = args.file or Path(common.DEFAULT_ROSTER)
    try:
        return load_roster(path)
    except errors.RosterErrors as exc:
        raise CliFailure(
            f"{len(exc.errors)} problem(s) in {path}:\n" + str(exc),
            common.EXIT_ERROR,
            exc.code,
        ) from None


def db_of(args: argparse.Namespace) -> Path:
    return common.resolve_db(args, args.file)


def _queue(args: argparse.Namespace) -> QueuePlace:
    """Where control commands go: the roster's NATS queue, else its database."""
    return common.resolve_place(args, args.file)


def has_credentials(roster: Roster, environ: dict[str, str]) -> bool:
    if any(environ.get(v) for v in CREDENTIAL_VARS):
        return True
    if any(any(spec.env.get(v) for v in CREDENTIAL_VARS) for spec in roster.agents.values()):
        return True
    config = Path(environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return (config / ".credentials.json").exists()


def cmd_up(args: argparse.Namespace) -> int:
    roster = load(args)
    unknown = [a for a in args.agents if a not in roster.agents]
    if unknown:
        raise CliFailure(
            f"no agent named {', '.join(unknown)} in {roster.path}; "
            f"agents: {', '.join(roster.agents)}",
            common.EXIT_USAGE,
            "usage",
        )
    if not has_credentials(roster, dict(os.environ)):
        raise CliFailure(
            "no Claude credentials found: set ANTHROPIC_API_KEY (or log in with `claude` so "
            "~/.claude/.credentials.json exists, or set CLAUDE_CODE_OAUTH_TOKEN). Without them "
            "every "
            "agent would fail at once.\nTo see a team at work offline, run: octy-orchestrate demo",
            common.EXIT_ERROR,
            "no_credentials",
        )
    from orchestrator.sandbox import problems as sandbox_problems

    blocked = sandbox_problems(roster)
    if blocked:
        raise CliFailure("\n".join(blocked), common.EXIT_ERROR, "sandbox_unavailable")
    pid = holder_pid(roster.database)
    if pid is not None:
        raise CliFailure(
            f"a supervisor (pid {pid}) is already running this team ({roster.database}); "
            "use `octy-orchestrate ps`, or `down` first",
            common.EXIT_ERROR,
            "already_running",
        )
    try:  # a NATS queue that cannot be reached: say so here, not in a background log
        check_queue(roster)
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    if args.detach:
        return _detach(args, roster)
    return run_foreground(
        roster,
        args.agents or None,
        grace_s=args.grace,
        colour=False if args.no_color else None,
        check_model=not args.no_model_check,
    )


def _registered(db: QueuePlace, pid: int) -> bool:
    """The supervisor wrote its registry row: it is past its checks (the model's included)."""
    try:
        with open_sync(db, readonly=True) as mailbox:
            info = mailbox.agent(SUPERVISOR)
    except errors.OrchestratorError:
        return False
    return info is not None and info.pid == pid and info.state == "running"


def run_foreground(
    roster: Roster,
    only: list[str] | None,
    *,
    grace_s: float,
    colour: bool | None,
    console: Any = None,
    check_model: bool = False,
) -> int:
    import anyio

    from orchestrator.supervisor import Supervisor

    try:  # a logs folder others can write, a planted link: refused, with what to do
        logconfig.configure(
            roster.logs,
            console=console or sys.stdout,
            colour=colour,
            max_bytes=roster.log_max_bytes,
            backups=roster.log_backups,
        )
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    for spec in roster.agents.values():
        logconfig.REDACTOR.add_from_env(dict(spec.env))
    try:
        anyio.run(Supervisor(roster, only=only, grace_s=grace_s, check_model=check_model).run)
    except errors.OrchestratorError as exc:  # a database it cannot use, a second supervisor...
        raise common.failure_from(exc) from None
    finally:
        logconfig.shutdown()
    return common.EXIT_OK


def _detach(args: argparse.Namespace, roster: Roster) -> int:
    out_path = roster.logs / "supervisor.out"
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "up",
        "-f",
        str(roster.path),
        "--no-color",
        "--grace",
        str(args.grace),
        *(["--no-model-check"] if args.no_model_check else []),
        *args.agents,
    ]
    try:  # no link followed, no folder others can write (safefs)
        safefs.private_folder(roster.logs, "logs folder")
        fd = safefs.open_private(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, "log file")
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = out_path.read_text(errors="replace").splitlines()[-10:]
            raise CliFailure("the supervisor exited at once:\n" + "\n".join(tail))
        if holder_pid(roster.database) == proc.pid and _registered(place_of(roster), proc.pid):
            break
        time.sleep(0.05)
    else:
        raise CliFailure(
            f"the supervisor (pid {proc.pid}) did not start within 60 s; see {out_path}"
        )
    if args.json:
        common.emit_json(
            {
                "ok": True,
                "pid": proc.pid,
                "database": str(roster.database),
                "logs": str(roster.logs),
            }
        )
    else:
        print(
            f"team '{roster.name}' started in the background (supervisor pid {proc.pid}); "
            f"`octy-orchestrate ps`, `logs -f`, `down`"
        )
    return common.EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    db = db_of(args)
    pid = holder_pid(db)
    try:
        send_command(db, "down", grace_s=args.timeout, timeout_s=30.0, queue=_queue(args))
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    deadline = time.monotonic() + args.timeout + 40
    while holder_pid(db) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if holder_pid(db) is not None:
        raise CliFailure(
            f"the supervisor (pid {pid}) is still stopping; check `ps`",
            common.EXIT_TIMEOUT,
            "timeout",
        )
    if args.json:
        common.emit_json({"ok": True, "stopped": pid})
    else:
        print(f"team stopped (supervisor pid {pid})")
    return common.EXIT_OK


def cmd_agent_command(args: argparse.Namespace) -> int:
    db = db_of(args)
    try:
        result = send_command(
            db, args.command, agent=args.agent, timeout_s=args.timeout, queue=_queue(args)
        )
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    if not result.get("ok"):
        code = common.EXIT_NOT_FOUND if result.get("error") == "not_found" else common.EXIT_ERROR
        raise CliFailure(str(result.get("message")), code, str(result.get("error")))
    if args.json:
        common.emit_json(result)
    else:
        print(f"{args.command}: {args.agent} ok")
    return common.EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    db = db_of(args)
    try:
        result = send_command(db, "reload", timeout_s=120.0, queue=_queue(args))
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    if not result.get("ok"):
        raise CliFailure(str(result.get("message")), common.EXIT_ERROR, str(result.get("error")))
    if args.json:
        common.emit_json(result)
    else:
        print("reloaded")
    return common.EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    roster = load(args)
    data = roster.to_dict()
    if args.json:
        common.emit_json(data)
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return common.EXIT_OK


def ps_rows(db: QueuePlace) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    with open_sync(db, readonly=True) as mailbox:
        leased = mailbox.list(status="leased", limit=100_000)
        for info in mailbox.agents():
            if info.name in (USER, SUPERVISOR):
                continue
            meta = info.meta
            running = info.state in ("starting", "ready", "busy", "blocked", "paused", "stopping")
            started = meta.get("started_at")
            rows.append(
                {
                    "name": info.name,
                    "state": info.state,
                    "reason": meta.get("blocked_reason") if info.state == "blocked" else None,
                    "pid": info.pid if running else None,
                    "uptime_s": round(now - started, 1) if running and started else None,
                    "restarts": meta.get("restarts", 0),
                    "pending": mailbox.pending_count(info.name),
                    "in_flight": [m.id for m in leased if m.recipient == info.name],
                    "turns": meta.get("turns", 0),
                    "tokens": int(meta.get("input_tokens", 0)) + int(meta.get("output_tokens", 0)),
                    # The agent's total across sessions, and its last turn's (orchestrator.usage).
                    "cost_usd": round(float(meta.get("cost_usd") or 0.0), 6),
                    "last_turn_cost_usd": round(float(meta.get("last_turn_cost_usd") or 0.0), 6),
                    "session_id": meta.get("session_id"),
                    **ps_fields(meta),  # spend against budget, context against window
                    "model_error": meta.get("model_error"),  # the model's last trouble
                }
            )
    return rows


def cmd_ps(args: argparse.Namespace) -> int:
    db = db_of(args)
    place = common.resolve_place(args, args.file)
    if isinstance(place, Path) and not db.exists():
        raise CliFailure(
            f"no team database at {db}; start the team with `octy-orchestrate up`",
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    try:
        sup = holder_pid(db)
        rows = ps_rows(place)
    except errors.OrchestratorError as exc:  # a file that is no queue, a link, a newer schema
        raise common.failure_from(exc) from None
    if args.json:
        common.emit_json({"supervisor": {"running": sup is not None, "pid": sup}, "agents": rows})
        return common.EXIT_OK
    print(
        "supervisor: " + (f"pid {sup}" if sup else "not running (states below are the last known)")
    )
    header = (
        "AGENT",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "PENDING",
        "IN-FLIGHT",
        "TURNS",
        "TOKENS",
        "COST",
        "BUDGET",
        "CONTEXT",
    )
    table = [header] + [
        (
            r["name"],
            r["state"]
            + (f" ({r['reason']})" if r.get("reason") else "")
            + (f" ({_short(r['model_error'])})" if r["model_error"] else ""),
            str(r["pid"] or "-"),
            _dur(r["uptime_s"]),
            str(r["restarts"]),
            str(r["pending"]),
            ",".join(r["in_flight"]) or "-",
            str(r["turns"]),
            str(r["tokens"]),
            f"${r['cost_usd']:.4f}",
            budget_cell(r),
            context_cell(r),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return common.EXIT_OK


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
