"""Team verbs: up, down, ps, start, stop, restart, reload, config."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import errors, procid
from orchestrator.agent_meta import QUEUE_LOST, AgentMeta
from orchestrator.cli import common, ps_view, team_record, up_detach, user_folders
from orchestrator.cli.budget_verbs import (
    budget_cell,
    context_cell,
    held_reason,
    paused_reason,
    ps_fields,
)
from orchestrator.cli.common import CliFailure
from orchestrator.held_wait import supervisor_silence
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import SUPERVISOR, USER
from orchestrator.mailbox.opening import QueuePlace, check_queue, open_sync
from orchestrator.redact import REDACTOR, for_people, undecoded_shown

# `ps` runs often (scripts poll it): what only `up`, `config` and the control verbs need
# (structlog and rich through logconfig and control, yaml, the roster's modules) is
# imported inside those verbs (issue 14: the CLI's start-up).
if TYPE_CHECKING:
    import threading

    from orchestrator.mailbox.backend import MailboxBackend
    from orchestrator.mailbox.model import AgentInfo
    from orchestrator.roster import Roster

DOWN_ACK_S = 30.0  # for the supervisor to take `down`'s request
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
        "agents",
        nargs="*",
        metavar="AGENT",
        help="start only these agents (default: all); on a NATS queue, several supervisors "
        "may share one team this way, and an agent another supervisor holds is refused, "
        "naming its host and pid",
    )
    up_detach.add_up_options(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "down",
        help="stop a running team gracefully (as SIGTERM)",
        description="Stop the team's supervisor gracefully and wait until it has exited. "
        "With nothing running it says so and exits 0.",
    )
    _roster_opt(p)
    p.add_argument(
        "--timeout",
        type=common.seconds,
        default=10.0,
        metavar="S",
        help="grace for in-flight turns before they are interrupted and requeued (default 10)",
    )
    p.set_defaults(func=cmd_down)

    p = sub.add_parser(
        "ps",
        help="agents: state, pid, uptime, CPU, memory, restarts, pending, turns, tokens, cost",
        description="One line per agent, from the team's registry (works without a running "
        "supervisor: the last known states). CPU% is the claude process's CPU time over its "
        "life (as ps(1)); MEM its resident memory. States are coloured on a terminal unless "
        "NO_COLOR is set or --no-color given (--color: also into a pipe, as `watch -c`). A "
        "participant that joined with `register` shows the pid it "
        "registered, 'exited' once that process is gone and 'stale' once its heartbeat is "
        f"older than {ps_view.STALE_AFTER_S:g}s.",
    )
    _roster_opt(p)
    common.add_colour(p)
    p.add_argument(
        "agents", nargs="*", metavar="AGENT", help="only these agents (default: every one)"
    )
    p.set_defaults(func=cmd_ps)

    for verb, text in (
        ("start", "start stopped or failed agents (a running one is left alone)"),
        ("stop", "stop agents (their current turn finishes first)"),
        ("restart", "restart agents (each resumes its conversation)"),
    ):
        p = sub.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        _roster_opt(p)
        p.add_argument(
            "agents", nargs="*", metavar="AGENT", help="these agents (default: all of the team)"
        )
        p.add_argument(
            "--timeout",
            type=common.seconds,
            default=60.0,
            metavar="S",
            help="wait this long for the supervisor's acknowledgement of each (default 60)",
        )
        p.set_defaults(func=cmd_agent_command, command=verb)

    p = sub.add_parser(
        "reload",
        help="re-read agents.yaml now and apply the changes",
        description="Ask the running supervisor to re-read agents.yaml now (it also watches "
        "the file). An invalid file changes nothing: the team keeps its last good version.",
    )
    _roster_opt(p)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser(
        "config",
        help="validate agents.yaml and print it resolved (exit 1 on errors)",
        description="Validate agents.yaml and print it with defaults and ${VAR} applied. "
        "Secrets are masked: env values whose names look secret, known secret values, "
        "key- and token-shaped strings, passwords in URLs. Exit 1 with every error, a "
        "folder path that is not UTF-8 text among them (`up` refuses it).",
    )
    _roster_opt(p)
    p.set_defaults(func=cmd_config)


def _roster_opt(p: argparse.ArgumentParser) -> None:
    common.add_common(p)
    p.add_argument(
        "-f",
        "--file",
        type=common.roster_file,
        default=None,
        help="the roster (default: ./agents.yaml; also accepted before the verb)",
    )


def load(args: argparse.Namespace, also: str | None = None) -> Roster:
    """The roster ``args`` name, or every problem in it; ``also``: one more problem, found
    outside the file (it fails the load by itself too)."""
    from orchestrator.roster import load_roster

    path = args.file or Path(common.DEFAULT_ROSTER)
    found = [also] if also else []
    try:
        roster = load_roster(path)
    except errors.RosterErrors as exc:
        count = len(found) + len(exc.errors)
        raise CliFailure(
            f"{count} problem(s) in {path}:\n" + "\n".join([*found, str(exc)]),
            common.EXIT_ERROR,
            exc.code,
        ) from None
    if found:
        raise CliFailure(found[0], common.EXIT_ERROR, "invalid_path")
    paths = common.undecodable_paths(roster)
    if paths:
        # Settings of the file (a `${VAR}` in `database` or `cwd`), or the folder's real
        # path: one of the file's problems, exit 1, in `config` as in `up`.
        raise CliFailure(
            f"{len(paths)} problem(s) in {path}:\n" + "\n".join(paths),
            common.EXIT_ERROR,
            "invalid_path",
        )
    return roster


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
    config = user_folders.claude_config_dir(environ)
    return config is not None and (config / ".credentials.json").exists()


def cmd_up(args: argparse.Namespace) -> int:
    # `up -d` starts its child with Ctrl-C blocked (up_detach.detach holds it across the
    # fork), and a blocked signal stays blocked across exec: lifted here, or the
    # supervisor would never see a SIGINT (its forced stop). SIGTERM too (held with it).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    roster = load(args)
    common.refuse_undecodable_folder(roster.path)
    unknown = [a for a in args.agents if a not in roster.agents]
    if unknown:
        raise CliFailure(
            f"no agent named {common.quoted(unknown)} in {roster.path}; "
            f"agents: {', '.join(roster.agents)}",
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    user_folders.settle_home()
    user_folders.settle_path()
    # Before the credentials: they are looked for in that folder.
    for problem in dict.fromkeys(
        p
        for spec in roster.agents.values()
        if (p := user_folders.claude_folder_problem({**os.environ, **spec.env})) is not None
    ):
        print(for_people(f"octy-orchestrate: warning: {problem}"), file=sys.stderr)
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
    _check_memory(roster, args.agents, force=args.no_memory_check)
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
    # So that verbs still reach this team if agents.yaml is later edited into an invalid
    # state. Here, before `up -d` detaches: its child's warning that the team could not be
    # recorded (HOME a file, say) reached only logs/supervisor.out, never the terminal.
    # The child (this verb again) writes it once more, with its own pid.
    team_record.write(roster.path, roster.database, roster.logs, tuple(roster.agents))
    if args.detach:
        return up_detach.detach(args, roster)
    return run_foreground(
        roster,
        args.agents or None,
        grace_s=args.grace,
        colour=False if args.no_color else None,
        check_model=not args.no_model_check,
    )


def _check_memory(roster: Roster, only: list[str], *, force: bool) -> None:
    """Refuse to start more claudes than the memory available holds (each ~200 MiB): past
    it the kernel's OOM killer ends agents, or the supervisor, mid-turn. A warning when
    they take most of it, or when ``force`` starts them anyway."""
    from orchestrator import capacity

    fit = capacity.fit(sum(len(layer) for layer in roster.start_layers(only or None)))
    if not fit.fits and not force:
        raise CliFailure(
            f"not enough memory: {fit.describe()}; start fewer agents (`up AGENT…`), free "
            "memory, or pass --no-memory-check to start them anyway",
            common.EXIT_ERROR,
            "not_enough_memory",
        )
    if fit.tight:
        print(
            f"octy-orchestrate: warning: {fit.describe()}; agents may be killed when memory "
            "runs out",
            file=sys.stderr,
        )


def run_foreground(
    roster: Roster,
    only: list[str] | None,
    *,
    grace_s: float,
    colour: bool | None,
    console: Any = None,
    check_model: bool = False,
) -> int:
    from orchestrator import preflight

    # The model check waits on the network: begun first, it overlaps everything below
    # (the supervisor's imports, the SDK's import in the background: sdk_import.py); its
    # answer is read where it was.
    wanted = [n for layer in roster.start_layers(only) for n in layer]
    model_check = preflight.start_check(roster, wanted) if check_model else None

    import threading

    import anyio
    import anyio.lowlevel

    from orchestrator import logconfig
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
        supervisor = Supervisor(
            roster,
            only=only,
            grace_s=grace_s,
            check_model=check_model,
            model_check=model_check,
            freeze_start_up=True,
        )
        reader_left = threading.Event()

        async def supervise() -> None:
            if console is None:
                _stop_when_the_reader_leaves(
                    anyio.lowlevel.current_token(), supervisor.stop, reader_left
                )
            await supervisor.run()

        anyio.run(supervise)
    except errors.OrchestratorError as exc:  # a database it cannot use, a second supervisor...
        raise common.failure_from(exc) from None
    finally:
        logconfig.shutdown()
    return 128 + signal.SIGPIPE if reader_left.is_set() else common.EXIT_OK


def _stop_when_the_reader_leaves(
    token: Any, stop: Callable[[], None], left: threading.Event
) -> None:
    """`up | head -3`: once the pipe's reader left, the team is stopped as `down` stops it,
    and `up` ends 141 as every verb does there. It ran on unseen (its console writes
    failing quietly), the pipeline hanging until Ctrl-C; an idle team wrote nothing that
    could fail. A pipe's writing end reports its reader's leaving to poll()
    at once, not at the next write; a terminal, a file or a socket is not watched."""
    import select
    import stat
    import threading

    import anyio.from_thread

    try:
        kind = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError):
        return
    if not stat.S_ISFIFO(kind):
        return  # a socket (journald's stream) going away is a logger's restart, not `head`
    fd = sys.stdout.fileno()

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no event asked: POLLERR and POLLHUP are always reported
        while True:
            events = [e for _, e in poller.poll()]
            if any(e & select.POLLNVAL for e in events):
                return  # the descriptor is gone: nothing left to watch
            if any(e & (select.POLLERR | select.POLLHUP) for e in events):
                break
        left.set()
        with contextlib.suppress(OSError, ValueError):  # stderr in the same pipe (2>&1)
            print(
                "octy-orchestrate: standard output's reader left (the pipe was closed); "
                "stopping the team as `down` does",
                file=sys.stderr,
                flush=True,
            )
        with contextlib.suppress(RuntimeError):  # the run ended meanwhile
            anyio.from_thread.run_sync(stop, token=token)

    threading.Thread(target=watch, name="stdout-reader", daemon=True).start()


def cmd_down(args: argparse.Namespace) -> int:
    db = db_of(args)
    pid = holder_pid(db)
    if pid is None and isinstance(_queue(args), Path):  # NATS: the supervisor may be elsewhere
        # As `docker compose down` with nothing up: the wanted state holds already.
        if args.json:
            common.emit_json({"ok": True, "stopped": None, "running": False})
        else:
            print(for_people(f"no team running ({db}); nothing to stop"))
        return common.EXIT_OK
    if pid is not None:
        _refuse_if_frozen(pid, "nothing was sent")
    who = "the supervisor" if pid is None else f"the supervisor (pid {pid})"
    progress = _DownProgress()
    try:
        _stop_team(args, db, pid, progress)
    except KeyboardInterrupt:
        # Ctrl-C ended `down` (130) without a word, though the stop was under way: a person
        # took the team for still running, or for stopped. What was sent stands.
        print(
            f"octy-orchestrate: interrupted: {who} "
            + (
                "was asked to stop the team and is stopping it"
                if progress.stop_asked
                else f"is asked to stop the team: it does if it takes the request within "
                f"{DOWN_ACK_S:g} s"
            )
            + "; `octy-orchestrate ps` shows whether it still runs",
            file=sys.stderr,
        )
        raise
    if args.json:
        common.emit_json({"ok": True, "stopped": pid, "running": False})
    else:
        print(f"team stopped (supervisor pid {pid})")
    return common.EXIT_OK


@dataclass
class _DownProgress:
    """How far a `down` got, for what a Ctrl-C that ends it says: ``stop_asked`` once the
    supervisor took the request or was sent SIGTERM (it stops the team whatever `down`
    does next)."""

    stop_asked: bool = False


def _stop_team(
    args: argparse.Namespace, db: Path, pid: int | None, progress: _DownProgress
) -> None:
    """Ask the supervisor to stop (SIGTERM when the queue cannot carry it) and wait for it
    to exit, saying in ``progress`` when the stop was asked."""
    from orchestrator.control import send_command

    try:
        send_command(db, "down", grace_s=args.timeout, timeout_s=DOWN_ACK_S, queue=_queue(args))
    except (errors.SupervisorNotRunning, errors.SupervisorGone):
        pass  # it stopped between our look and the command: what was asked
    except errors.RequestTimeout as exc:
        # The command is queued but not taken: a supervisor that is stopped or writes no
        # heartbeat acts on SIGTERM no more than on the queue (review F, L2: 72 s, then
        # "the queue did not take the command"); one that beats on, its queue broken, does.
        if pid is not None:
            _refuse_if_frozen(pid, "the command stays queued", place=_queue(args))
        _terminate_instead(db, pid, exc, progress)
    except errors.QueueError as exc:
        _terminate_instead(db, pid, exc, progress)
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    progress.stop_asked = True
    deadline = time.monotonic() + args.timeout + 40
    while holder_pid(db) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if holder_pid(db) is not None:
        raise CliFailure(
            f"the supervisor (pid {pid}) is still stopping; check `ps`",
            common.EXIT_TIMEOUT,
            "timeout",
        )


def _refuse_if_frozen(pid: int, sent: str, *, place: QueuePlace | None = None) -> None:
    """Fail at once, saying what to do, when this machine's supervisor ``pid`` cannot act:
    stopped (seen in /proc), or, given its queue, silent past its heartbeat (its own row:
    a supervisor still starting has not written one yet)."""
    if procid.stopped(pid):
        why = "it is stopped (SIGSTOP, Ctrl-Z or a debugger)"
        todo = f"resume it with `kill -CONT {pid}` and run `down` again"
    else:
        silent = None if place is None else _own_silence(place, pid)
        if silent is None:
            return
        why = f"it has written no heartbeat for {silent:.0f}s (stuck?)"
        todo = "see logs/supervisor.jsonl"
    raise CliFailure(
        f"the supervisor (pid {pid}) is not responding: {why}; {sent}. To stop the team, "
        f"{todo}, or end it without a graceful stop with `kill -KILL {pid}`",
        common.EXIT_ERROR,
        "supervisor_not_responding",
    )


def _own_silence(place: QueuePlace, pid: int) -> float | None:
    """Seconds the supervisor ``pid`` has written no heartbeat in its row, when too long."""
    try:
        with open_sync(place, readonly=True) as mailbox:
            row = mailbox.agent(SUPERVISOR)
    except errors.OrchestratorError:
        return None
    if row is None or row.pid != pid:
        return None
    return supervisor_silence(row.heartbeat_at, time.time())


def _terminate_instead(
    db: Path, pid: int | None, exc: errors.QueueError, progress: _DownProgress
) -> None:
    """The queue cannot carry the command (a full disk, a write lock held, a NATS server
    out of reach, a damaged file): SIGTERM to this machine's supervisor does the same
    stop (with the grace `up` was given), so `down` never depends on the queue."""
    held = holder_pid(db)
    if held is None:
        return  # it stopped meanwhile: what was asked
    if pid is None or held != pid or pid <= 1:
        raise common.failure_from(exc) from None
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as kill_error:
        raise CliFailure(
            f"{exc}; and SIGTERM to the supervisor (pid {pid}) failed: {kill_error.strerror}"
        ) from None
    progress.stop_asked = True  # before the note: a Ctrl-C as it is read says so
    note = f"the queue did not take the command ({exc}); sent SIGTERM to pid {pid} instead"
    shown = common.clip_lines(for_people(note, multiline=True))
    print(f"octy-orchestrate: warning: {shown}", file=sys.stderr)


_RUNNING = ("waiting", "starting", "ready", "busy", "blocked", "paused")


def _roster_agents(args: argparse.Namespace) -> list[str]:
    """The agents of the roster on disk, or none when it is missing or invalid."""
    from orchestrator.roster import load_roster

    path = args.file or Path(common.DEFAULT_ROSTER)
    try:
        return list(load_roster(path).agents) if path.is_file() else []
    except errors.OrchestratorError:
        return []


def cmd_agent_command(args: argparse.Namespace) -> int:
    """start/stop/restart AGENT…; no AGENT means every agent the supervisor manages."""
    from orchestrator.control import send_command

    db = db_of(args)
    queue = _queue(args)
    running = holder_pid(db) is not None or not isinstance(queue, Path)
    rows: dict[str, AgentInfo] = {}
    if running or db.is_file():  # no team database yet: the roster alone names the team
        with open_sync(queue, readonly=True) as mailbox:
            rows = {a.name: a for a in mailbox.agents() if a.name not in (USER, SUPERVISOR)}
    team = [n for n, a in rows.items() if a.meta.get("supervised")]
    # A roster agent whose registry row another process deleted is still the team's (the
    # supervisor writes the row again): the valid roster on disk counts too.
    team += [n for n in _roster_agents(args) if n not in team]
    names = list(dict.fromkeys(args.agents)) or team
    unknown = [n for n in names if n not in team]
    # A name not in the team is said first, supervisor or not: `start nosuch` said "no
    # supervisor" (exit 5), and once `up` ran, "no agent named 'nosuch'". With no team
    # known at all (no roster, no registry) only the missing supervisor can be said.
    if unknown and (running or team):
        raise CliFailure(
            f"no agent named {common.quoted(unknown)} in the {'running ' if running else ''}"
            f"team; agents: {', '.join(team) or 'none'}",
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    if not running:
        raise common.failure_from(errors.SupervisorNotRunning(str(db)))
    results: list[dict[str, Any]] = []
    failure: CliFailure | None = None
    for name in names:
        if (
            args.command == "start"
            and name in rows
            and rows[name].state in _RUNNING
            and isinstance(_queue(args), Path)  # NATS: maybe another supervisor's: ask ours
        ):
            result: dict[str, Any] = {
                "ok": True,
                "command": "start",
                "agent": name,
                "result": "already running",
                "already_running": True,
            }
            human = f"start: {name} is already running ({rows[name].state})"
        else:
            try:
                result = send_command(
                    db, args.command, agent=name, timeout_s=args.timeout, queue=_queue(args)
                )
            except errors.OrchestratorError as exc:
                raise common.failure_from(exc) from None
            human = f"{args.command}: {name} {result.get('result', 'ok')}"
            if not args.agents and result.get("error") == errors.AgentHeldElsewhere.code:
                # Every agent: on a shared NATS team, one another supervisor runs is not
                # this one's to start or stop (named, it is refused: exit 1).
                human = f"{args.command}: {name} left alone: {result.get('message')}"
            elif not result.get("ok"):
                code = common.EXIT_NOT_FOUND if result.get("error") == "not_found" else 1
                failure = failure or CliFailure(
                    str(result.get("message")), code, str(result.get("error"))
                )
                human = f"{args.command}: {name} failed: {result.get('message')}"
        results.append(result)
        if not args.json:
            print(for_people(human))
    if args.json:
        common.emit_json({"ok": failure is None, "results": results})
        return failure.exit_code if failure else common.EXIT_OK
    if failure is not None:
        raise failure
    return common.EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    from orchestrator.control import send_command

    db = db_of(args)
    try:
        result = send_command(db, "reload", timeout_s=120.0, queue=_queue(args))
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    if not result.get("ok"):
        # The supervisor's answer lists every problem it found, read in its environment
        # (the one whose ${VAR}s count): not parsed again here.
        raise CliFailure(str(result.get("message")), common.EXIT_ERROR, str(result.get("error")))
    if args.json:
        common.emit_json(result)
    else:
        print(reload_summary(result))
    return common.EXIT_OK


def reload_summary(result: dict[str, Any]) -> str:
    """What a reload did, a line per kind of change, or "no change"."""
    changes = result.get("changes") or {}
    lines = [f"{kind}: {', '.join(names)}" for kind, names in changes.items() if names]
    if result.get("changed_not_running"):
        lines.append(f"changed, left stopped: {', '.join(result['changed_not_running'])}")
    if result.get("team_changed"):
        lines.append(
            f"team settings changed ({', '.join(result['team_changed'])}): "
            "they take effect at the next `up`"
        )
    earlier = result.get("already_applied")
    if lines and isinstance(earlier, dict) and isinstance(earlier.get("at"), int | float):
        # Nothing left to do: the same file was applied a moment ago (by the watcher).
        at = time.strftime("%H:%M:%S", time.localtime(earlier["at"]))
        lines.insert(0, f"already applied by {earlier.get('by')} at {at}:")
    return "\n".join(lines) or "no change"


def cmd_config(args: argparse.Namespace) -> int:
    # `up`'s rule for the folder (common.undecodable_folder): such a roster was "valid"
    # here and refused there. One of config's errors (exit 1), listed with the file's own.
    roster = load(args, also=common.undecodable_folder(args.file or Path(common.DEFAULT_ROSTER)))
    # Secret-named env values are masked by to_dict(); a secret can still hide elsewhere (a
    # token interpolated into a prompt, a password in a URL): the logs' redaction applies.
    for spec in roster.agents.values():
        REDACTOR.add_from_env(dict(spec.env))
    # A value with a byte that is not UTF-8 (`${VAR}` from such an environment value) is
    # shown as that byte, `\xff`, as every other message shows it (YAML wrote "w\uDCFFv",
    # JSON "w\udcffv", a lone surrogate strict JSON readers refuse).
    data = _undecoded_shown(REDACTOR.value("config", roster.to_dict()))
    if args.json:
        common.emit_json(data)
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        sys.stdout.write(for_people(text, multiline=True))  # YAML lets bidi controls through
    return common.EXIT_OK


def _undecoded_shown(value: Any) -> Any:
    """``value`` (the resolved roster: bounded in depth by the roster's limits) with every
    string's undecodable bytes shown as `\xff` (redact.undecoded_shown)."""
    if isinstance(value, str):
        return undecoded_shown(value)
    if isinstance(value, dict):
        return {_undecoded_shown(k): _undecoded_shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_undecoded_shown(v) for v in value]
    return value


def _ledger_sums(db: QueuePlace) -> tuple[dict[str, float], dict[str, float]]:
    """Each agent's spend in the budgets' ledger of a SQLite team (as `top` reads it), and
    the part of it the runner estimated; none for a NATS team, or a ledger that cannot be
    read (the registry's totals stand)."""
    if not isinstance(db, Path):
        return {}, {}
    from orchestrator.tui.figures import SpendSums  # no Textual: the data side of `top`

    sums = SpendSums()
    try:
        return sums.read_file(db), sums.estimated
    except (sqlite3.Error, errors.DatabaseError):
        return {}, {}


def ps_rows(
    db: QueuePlace, only: Sequence[str] = (), *, mailbox: MailboxBackend | None = None
) -> list[dict[str, Any]]:
    """A row per agent of the registry (or of ``only``). ``mailbox``: the queue already
    open on ``db`` (`top` keeps one between refreshes); else one is opened for the call."""
    if mailbox is None:
        with open_sync(db, readonly=True) as opened:
            return ps_rows(db, only, mailbox=opened)
    now = time.time()
    rows = []
    # No supervisor holds the team: its agents' recorded states are history, not processes
    # (their pids may be reused by now), as `top` shows them. A NATS team's supervisor may
    # run on another machine: there the registry's states stand.
    team_down = isinstance(db, Path) and holder_pid(db) is None
    # The open messages only (the statuses' indexes, or on NATS the open messages'
    # hints): `top` reads them every second, and a NATS team's done messages, one read
    # each, made that cost grow with the queue's history (0.4 s at 2,000 messages).
    pending = mailbox.pending_counts()
    leased: dict[str, list[str]] = {}
    for m in mailbox.list(status="leased", limit=100_000):  # newest first
        leased.setdefault(m.recipient, []).append(m.id)
    for info in mailbox.agents():
        if info.name in (USER, SUPERVISOR) or (only and info.name not in only):
            continue
        meta = AgentMeta.read(info.meta)  # an old or foreign row reads, never crashes
        # A participant the supervisor does not manage (a script that ran `register`):
        # its pid is whatever it registered, its liveness its heartbeat.
        external = not meta.supervised
        running = external or (
            not team_down
            and info.state in ("starting", "ready", "busy", "blocked", "paused", "stopping")
        )
        started = meta.started_at
        pid = info.pid if running else None
        here = ps_view.runs_here(pid, meta.pid_start, meta.host, local=isinstance(db, Path))
        stats = ps_view.proc_stats(pid) if here else None
        rows.append(
            {
                "name": info.name,
                "state": ps_view.shown_state(
                    info.state, info.heartbeat_at, external=external, now=now, pid=pid
                ),
                "reason": (
                    meta.blocked_reason
                    if info.state == "blocked"
                    else f"for {meta.waiting_for}"
                    if info.state == "waiting" and meta.waiting_for
                    else paused_reason(meta.budget)
                    if info.state == "paused"
                    else ps_view.frozen_reason(pid, stats)
                    or (held_reason(meta.budget) if info.state == "ready" else None)
                ),
                "external": external,
                "pid": pid,
                # False: the pid is another machine's (or no longer the agent's): no
                # CPU or memory is read for it here.
                "pid_here": here,
                "host": meta.host,
                "heartbeat_age_s": (
                    round(now - info.heartbeat_at, 1) if info.heartbeat_at else None
                ),
                "uptime_s": round(now - started, 1) if running and started else None,
                "cpu_percent": stats.cpu_percent if stats else None,
                "rss_bytes": stats.rss_bytes if stats else None,
                "restarts": meta.restarts,
                "pending": pending.get(info.name, 0),
                "in_flight": leased.get(info.name, []),
                "turns": meta.turns,
                "tokens": meta.tokens,
                # The agent's total across sessions, and its last turn's (orchestrator.usage).
                "cost_usd": round(meta.cost_usd, 6),
                "last_turn_cost_usd": round(meta.last_turn_cost_usd, 6),
                "session_id": meta.session_id,
                **ps_fields(meta),  # spend against budget, context against window
                "model_error": meta.model_error,  # the model's last trouble
            }
        )
    return rows


def cmd_ps(args: argparse.Namespace) -> int:
    db = db_of(args)
    place = common.resolve_place(args, args.file)
    if isinstance(place, Path) and not db.exists():
        raise CliFailure(
            common.no_team_database(db, args.file, args.db is not None),
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    try:
        sup = holder_pid(db)
        if args.agents:
            _check_known(place, args.agents)
        rows = ps_rows(place, args.agents)
        # COST: the larger of the registry's and the budgets' ledger's, as `top` shows it
        # (a reload that removes an agent deletes its row; added back, it starts at 0).
        # Here, not in ps_rows: `top` calls that every second and sums its ledger itself.
        spent, estimated = _ledger_sums(place)
        for row in rows:
            row["cost_usd"] = round(max(row["cost_usd"], spent.get(row["name"], 0.0)), 6)
            # the dollars of cut-off turns the runner priced itself (COST shows ~$)
            row["cost_estimated_usd"] = round(estimated.get(row["name"], 0.0), 6)
        # A NATS team's supervisor row says too when the server lost the team's bucket.
        sup_row, replicas = None, None
        if sup or not isinstance(place, Path):
            sup_row, replicas = _supervisor_row(place)
        silent = None
        if sup_row is not None and sup:
            silent = supervisor_silence(sup_row.heartbeat_at, time.time())
        lost = _queue_lost(sup_row)
    except errors.OrchestratorError as exc:  # a file that is no queue, a link, a newer schema
        raise common.failure_from(exc) from None
    if args.json:
        supervisor: dict[str, Any] = {
            "running": sup is not None,
            "pid": sup,
            "responding": silent is None,
        }
        if silent is not None:
            supervisor["silent_s"] = round(silent, 1)
        if lost is not None:
            supervisor["queue_lost"] = lost
        shown: dict[str, Any] = {"supervisor": supervisor, "agents": rows}
        if replicas is not None:
            shown["queue_replicas_differ"] = replicas
        common.emit_json(shown)
        return common.EXIT_OK
    if sup and silent is not None:
        # A SIGSTOPped supervisor still holds its lock: its agents' rows looked live and
        # `restart` waited out its 30 s without a word why.
        print(
            f"supervisor: pid {sup}, NOT RESPONDING: no heartbeat for {silent:.0f}s "
            f"(stopped? `kill -CONT {sup}`); states below are the last known"
        )
    else:
        print(
            "supervisor: "
            + (f"pid {sup}" if sup else "not running (states below are the last known)")
        )
    if replicas is not None:
        print(
            f"queue: bucket {replicas['bucket']} kept in {replicas['replicas']} "
            f"cop{'y' if replicas['replicas'] == 1 else 'ies'}, agents.yaml says replicas: "
            f"{replicas['roster_replicas']} (fix: {replicas['fix']})"
        )
    if lost is not None:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lost["at"]))
        print(  # `how` is read from the bucket: anyone with the account can write it
            for_people(
                f"queue: LOST at {at}: {lost['how']}; what was only on that server "
                "(messages, replies) is gone: send again what must still be done"
            )
        )
    header = (
        "AGENT",
        "STATE",
        "PID",
        "UPTIME",
        "CPU%",
        "MEM",
        "RESTARTS",
        "PENDING",
        "IN-FLIGHT",
        "TURNS",
        "TOKENS",
        "COST",
        "BUDGET",
        "CONTEXT",
    )
    table = [
        (
            r["name"],
            r["state"]
            + (f" ({r['reason']})" if r.get("reason") else "")
            + (f" ({_short(r['model_error'])})" if r["model_error"] else ""),
            _pid_cell(r),
            ps_view.duration(r["uptime_s"]),
            "-" if r["cpu_percent"] is None else f"{r['cpu_percent']:.1f}",
            ps_view.memory(r["rss_bytes"]),
            str(r["restarts"]),
            str(r["pending"]),
            ",".join(r["in_flight"]) or "-",
            str(r["turns"]),
            str(r["tokens"]),
            ps_view.cost(r["cost_usd"], r["cost_estimated_usd"] > 0),
            budget_cell(r),
            context_cell(r),
        )
        for r in rows
    ]
    for line in ps_view.render(header, table, colour=common.colour_wanted(args, sys.stdout)):
        print(line)
    return common.EXIT_OK


def _supervisor_row(db: QueuePlace) -> tuple[AgentInfo | None, dict[str, Any] | None]:
    """The supervisor's row, and on NATS the bucket's copies when the roster's
    ``replicas:`` says otherwise (NatsCore.open)."""
    with open_sync(db, readonly=True) as mailbox:
        return mailbox.agent(SUPERVISOR), getattr(mailbox, "replicas_differ", None)


def _queue_lost(row: AgentInfo | None) -> dict[str, Any] | None:
    """When and how the NATS server lost the team's bucket, as the supervisor that made
    it again wrote it in its row (until its next `up`); None if it did not, or the row
    says something else there (anyone with the account can write it)."""
    lost = row.meta.get(QUEUE_LOST) if row is not None else None
    if not isinstance(lost, dict):
        return None
    at, how = lost.get("at"), lost.get("how")
    if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(how, str):
        return None
    if not math.isfinite(at):
        return None
    try:  # finite but past the platform's time_t (1e20: OverflowError; 1e17: OSError)
        time.localtime(at)
    except (OverflowError, OSError, ValueError):
        return None
    return {"at": at, "how": how[:300]}


def _check_known(db: QueuePlace, names: Sequence[str]) -> list[str]:
    """The team's agents (from the registry, so a broken roster does not matter); an unknown
    name among ``names`` ends the verb with exit 3 (not found), as everywhere."""
    with open_sync(db, readonly=True) as mailbox:
        known = [a.name for a in mailbox.agents() if a.name not in (USER, SUPERVISOR)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliFailure(
            f"no agent named {common.quoted(unknown)}; agents: {', '.join(known) or 'none'}",
            common.EXIT_NOT_FOUND,
            "not_found",
        )
    return known


def _pid_cell(row: dict[str, Any]) -> str:
    """The pid, with the machine it runs on when that is another one."""
    if not row["pid"]:
        return "-"
    host = row.get("host")
    return f"{row['pid']}@{host}" if host and not row["pid_here"] else str(row["pid"])


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
