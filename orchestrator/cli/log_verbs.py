"""`logs` and `trace`: what the team did, from its log files and its queue."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator import errors, logview, trace
from orchestrator.cli import common, team_record
from orchestrator.cli.common import CliFailure
from orchestrator.lockfile import holder_pid
from orchestrator.logconfig import SUPERVISOR_LOG, render_line
from orchestrator.names import AGENT_NAME_RE
from orchestrator.redact import for_people
from orchestrator.roster import load_plain, load_roster

STOP_GRACE_S = 5.0  # logs -f: longest wait for a stopping supervisor's last lines
FOLLOW_TAIL = 10  # like `docker logs -f`: some context, not the whole history
FIELD_WIDTH = 120  # a shortened field (a message body) keeps this many characters
MERMAID_WIDTH = 60  # an arrow's label: longer ones make the diagram unreadable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs",
        help="the team's logs merged in time order (-f follows, across rotation)",
        description="Show the supervisor's and the agents' events, oldest first, one line "
        "each. Without AGENT: every event (supervisor.jsonl). With AGENTs: their events "
        "merged in time order ('supervisor' means the supervisor's own events).",
        epilog="The roster is --file FILE here (long form only): -f is --follow, as in "
        "`docker compose logs -f`.",
    )
    p.add_argument(
        "agents", nargs="*", metavar="AGENT", help="only these agents (default: everything)"
    )
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new events; ends when the team stops, or Ctrl-C (default: print "
        "and exit)",
    )
    p.add_argument(
        "--forever",
        action="store_true",
        help="with -f: keep following after the team stops, until Ctrl-C (default: end when "
        "the running team's supervisor exits; with no team running, wait for one)",
    )
    p.add_argument(
        "-n",
        "--tail",
        type=common.count,
        metavar="N",
        help=f"only the last N events (default: all; {FOLLOW_TAIL} with --follow)",
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="events from 10s/5m/1h/2d ago, or since an ISO time (local time without a zone; "
        "default: from the start)",
    )
    p.add_argument("--json", action="store_true", help="the raw JSON lines, one event per line")
    p.add_argument(
        "--full", action="store_true", help="bodies and other fields whole (default: shortened)"
    )
    common.add_colour(p)
    _place_opts(p, short_file=False)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser(
        "trace",
        help="one message's life across agents: a timeline (--mermaid: a sequence diagram)",
        description="Follow a message or request: sent, claimed, the turn it started, the "
        "asks it caused and their replies, the final reply, with times from the first "
        "event. A response's id traces its request.",
    )
    p.add_argument("id", metavar="ID", help="a message or request id (as `queue ls` shows)")
    p.add_argument("--mermaid", action="store_true", help="print a mermaid sequenceDiagram")
    p.add_argument("--full", action="store_true", help="message texts whole")
    common.add_common(p)
    common.add_colour(p)
    _place_opts(p, short_file=True)
    p.set_defaults(func=cmd_trace)


def _place_opts(p: argparse.ArgumentParser, *, short_file: bool) -> None:
    names = ("-f", "--file") if short_file else ("--file",)
    also = "" if short_file else "; long form only, -f is --follow"
    p.add_argument(
        *names,
        type=common.roster_file,
        default=None,
        dest="file",
        help=f"the roster (default ./agents.yaml{also})",
    )
    p.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="the logs folder (default: the roster's `logs`, else ./logs)",
    )


@dataclass(frozen=True)
class Places:
    """Where a team keeps its logs and queue, and the agents it names (None: unknown)."""

    logs: Path
    database: Path
    agents: tuple[str, ...] | None = None


def places_of(file: Path | None) -> Places:
    """The roster named by --file, else ./agents.yaml if there is one, else the defaults.

    A roster with errors still names its folders: reading the logs is how one finds
    out what went wrong (a rejected hot reload, say), so it is read leniently, with a
    warning, rather than refused.
    """
    path = file if file is not None else Path(common.DEFAULT_ROSTER)
    if file is None and not path.exists():
        return Places(Path("logs"), common.DEFAULT_DB)
    try:
        roster = load_roster(path)
    except errors.RosterErrors as exc:
        record = team_record.read(path)
        if record is not None:  # the team that runs (or last ran) from this roster
            team_record.warn_invalid(path, len(exc.errors), record)
            return Places(record.logs, record.database, record.agents or None)
        if not path.is_file():
            raise CliFailure(str(exc), common.EXIT_ERROR, exc.code) from None
        places = _lenient(path)
        print(
            for_people(
                f"octy-orchestrate: {path} has {len(exc.errors)} problem(s) (`octy-orchestrate "
                f"config` lists them); reading {places.logs} and {places.database}"
            ),
            file=sys.stderr,
        )
        return places
    return Places(roster.logs, roster.database, tuple(roster.agents))


def _lenient(path: Path) -> Places:
    """``logs`` and ``database`` as plain YAML says, relative to the roster's folder."""
    folder = path.absolute().parent
    doc = load_plain(path)  # within the roster's limits on size and depth
    doc = doc if isinstance(doc, dict) else {}

    def place(key: str, default: Path) -> Path:
        value = doc.get(key)
        if isinstance(value, str) and value.strip() and "${" not in value:
            return folder / Path(value).expanduser()
        return folder / default

    agents = doc.get("agents")
    return Places(
        place("logs", Path("logs")),
        place("database", common.DEFAULT_DB),
        tuple(str(a) for a in agents) if isinstance(agents, dict) else None,
    )


def _colour(args: argparse.Namespace) -> bool:
    return common.colour_wanted(args, sys.stdout)


# --- logs -----------------------------------------------------------------------------


def cmd_logs(args: argparse.Namespace) -> int:
    places = places_of(args.file)
    folder: Path = args.logs or places.logs
    try:
        since = logview.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise CliFailure(str(exc), common.EXIT_USAGE, "usage") from None
    chosen = logview.sources(folder, args.agents)
    _check_names(chosen, places.agents, folder, following=args.follow)
    present = [s for s in chosen if s.exists()]
    if args.forever and not args.follow:
        raise CliFailure("--forever goes with -f/--follow", common.EXIT_USAGE, "usage")
    for s in chosen:
        if s not in present and present:
            print(for_people(f"octy-orchestrate: no logs for {s.name} yet"), file=sys.stderr)
    colour, width = _colour(args), 0 if args.full else FIELD_WIDTH
    # `logs | head`: the reader left; main() ends as every verb does there (141, as git
    # and compose, killed by SIGPIPE): this ended 0, alone.
    if not args.follow:
        if not present:
            raise CliFailure(_no_logs(folder, chosen), common.EXIT_NOT_FOUND, "not_found")
        _write(
            logview.read_history(present, since=since, tail=args.tail, on_hole=_hole),
            args.json,
            colour,
            width,
        )
        return common.EXIT_OK
    if not present:
        print(
            for_people(
                f"octy-orchestrate: {_no_logs(folder, chosen)}; waiting for them (Ctrl-C stops)"
            ),
            file=sys.stderr,
        )
    tail = FOLLOW_TAIL if args.tail is None else args.tail
    if not present and args.tail is None:
        # Nothing existed when we started: whatever appears from now on is new, even
        # lines written before our first read (a busy machine), so none is cut by the tail.
        tail = None
    idle = present and not args.forever and holder_pid(places.database) is None
    done = None if args.forever else _team_stopped(places.database)
    for batch in logview.follow(
        chosen, since=since, tail=tail, on_gap=_gap, on_hole=_hole, done=done
    ):
        _write(batch, args.json, colour, width)
        if idle:
            # After the history (the first batch, read without error): it waits for a
            # team to start and then stop. Said, not a silent terminal after the last
            # lines (`compose logs -f` ends at once with nothing running).
            sys.stdout.flush()
            print(
                "octy-orchestrate: no team is running; following until one starts and "
                "stops (Ctrl-C stops)",
                file=sys.stderr,
            )
            idle = False
    return common.EXIT_OK


def _team_stopped(database: Path) -> Callable[[], bool]:
    """True once a supervisor seen running for this team has exited (as `compose logs -f`
    ends when the containers stop). Until one is seen, following waits for it.

    The supervisor drops its lock a moment before its last events are written: after the
    lock is gone, its process must be gone too (or STOP_GRACE_S pass) before it counts as
    stopped, so that the caller's final read has them."""
    first = holder_pid(database)  # now, before the first line is printed
    seen, pid = first is not None, first or None
    released_at: float | None = None

    def stopped() -> bool:
        nonlocal seen, pid, released_at
        holder = holder_pid(database)
        if holder is not None:
            seen, pid, released_at = True, holder or pid, None
            return False
        if not seen:
            return False
        released_at = released_at or time.monotonic()
        gone = pid is not None and not _alive(pid)
        return gone or time.monotonic() - released_at > STOP_GRACE_S

    return stopped


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has finished: its writes are done)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _check_names(
    chosen: list[logview.Source],
    agents: tuple[str, ...] | None,
    folder: Path,
    *,
    following: bool,
) -> None:
    """A name that is neither in the roster nor in the logs folder is a typo: say so."""
    known = {SUPERVISOR_LOG, *(agents or ())}
    for s in chosen:
        if s.name in known:
            continue
        # A name no agent can have (a path, 5,000 characters) is never looked up as a file.
        possible = AGENT_NAME_RE.fullmatch(s.name) is not None
        if possible and s.exists() and s.base.parent == folder:
            continue
        if possible and agents is None and following:
            continue  # nothing to check against: wait for it, like `tail -F`
        names = sorted((known | set(logview.known_names(folder))) - {SUPERVISOR_LOG})
        raise CliFailure(
            f"no agent named {s.name!r} (agents: {', '.join(names) or 'none'}; "
            f"'{SUPERVISOR_LOG}' shows the supervisor's own events)",
            common.EXIT_NOT_FOUND,
            "not_found",
        )


def _no_logs(folder: Path, chosen: list[logview.Source]) -> str:
    if not folder.is_dir():
        return f"no logs yet: {folder} does not exist (the team writes it once started with `up`)"
    which = ", ".join(s.name for s in chosen)
    return f"no logs yet for {which} in {folder}"


def _gap(base: Path) -> None:
    print(
        f"octy-orchestrate: {base.name} rotated more than its backups hold since the last "
        "read; some lines were removed before they could be shown",
        file=sys.stderr,
    )


def _hole(base: Path, missing: tuple[int, ...], count: int) -> None:
    names = ", ".join(f"{base.name}.{n}" for n in missing)
    if count > len(missing):
        names += f" and {count - len(missing)} more"
    print(
        for_people(
            f"octy-orchestrate: {names} {'is' if count == 1 else 'are'} missing "
            f"(deleted, or a rotation cut short) between the backups in {base.parent}: "
            "showing the files that are there, in order; the lines that were in "
            f"{'it' if count == 1 else 'them'} are lost"
        ),
        file=sys.stderr,
    )


def _write(lines: Iterable[logview.LogLine], raw: bool, colour: bool, width: int) -> None:
    out = sys.stdout
    for line in lines:
        if raw:
            out.write(line.raw + "\n")
        elif line.event is None:  # not a JSON event (a torn or foreign line): shown safely
            out.write(for_people(line.raw) + "\n")
        else:
            out.write(render_line(dict(line.event), colour=colour, width=width) + "\n")
    out.flush()


# --- trace ----------------------------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    common.message_id(args.id)
    places = places_of(args.file)
    db: Path = args.db or places.database
    logs: Path = args.logs or places.logs
    try:
        place = db if args.db else common.resolve_place(args, args.file)
        found = trace.load_trace(place, args.id, logs, on_hole=_hole)
    except errors.MessageNotFound:
        raise CliFailure(
            f"no message with id {args.id!r} in {db} (ids are listed by `queue ls`)",
            common.EXIT_NOT_FOUND,
            "not_found",
        ) from None
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    label_width = 0 if args.full else MERMAID_WIDTH
    if args.json:
        doc = {"ok": True, **found.to_dict()}
        if args.mermaid:
            doc["mermaid"] = trace.render_mermaid(found, width=label_width)
        common.emit_json(doc)
    elif args.mermaid:
        sys.stdout.write(trace.render_mermaid(found, width=label_width))
    else:
        width = 0 if args.full else FIELD_WIDTH
        for line in trace.render_timeline(found, colour=_colour(args), width=width):
            print(line)
    return common.EXIT_OK
