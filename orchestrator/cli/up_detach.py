"""`up`'s own options, in one table, and `up -d`: the background supervisor it starts.

The child is `up` again, in the foreground of a new session, with its output in
``logs/supervisor.out``. Its argv is built from :data:`UP_OPTIONS`, the table that also
declares the options, so an option cannot reach the parent and miss the child (review F,
M1: `up -d --no-memory-check` started a child without it, which then refused to start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator import errors, safefs
from orchestrator.agent_meta import LAUNCHING
from orchestrator.cli import common
from orchestrator.cli.common import CliFailure
from orchestrator.lockfile import holder_pid
from orchestrator.mailbox import SUPERVISOR
from orchestrator.mailbox.opening import QueuePlace, open_sync, place_of
from orchestrator.redact import for_people

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from orchestrator.roster import Roster

START_WAIT_S = 60.0  # for the child to hold the team and register
TAIL_LINES = 10  # of the child's own output, shown when it exits at once
STOP_SLACK_S = 30.0  # beyond --grace, for a supervisor stopped at Ctrl-C to exit


@dataclass(frozen=True)
class UpOption:
    """One option of `up`. ``to_child``: `up -d` passes it on to the background supervisor
    as given; False only for what the parent does itself (detaching; --no-color, which
    the child always gets: its output is a file)."""

    flags: tuple[str, ...]
    to_child: bool
    settings: Mapping[str, Any]

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")

    def argv(self, value: Any) -> list[str]:
        """How the child is given ``value`` (nothing for a default that needs no word)."""
        if self.settings.get("action") == "store_true":
            return [self.flags[-1]] if value else []
        return [] if value is None else [self.flags[-1], str(value)]


UP_OPTIONS: tuple[UpOption, ...] = (
    UpOption(
        ("-d", "--detach"),
        False,
        {
            "action": "store_true",
            "help": "run in the background; logs in logs/ (a supervisor not up within 60 s, "
            "or a Ctrl-C meanwhile, is stopped)",
        },
    ),
    UpOption(
        ("--grace",),
        True,
        {
            "type": common.seconds,
            "default": 10.0,
            "metavar": "S",
            "help": "on stop, in-flight turns get S seconds to finish (default 10)",
        },
    ),
    UpOption(
        ("--no-color",),
        False,
        {"action": "store_true", "help": "plain console output (default: colour on a tty)"},
    ),
    UpOption(
        ("--no-model-check",),
        True,
        {
            "action": "store_true",
            "help": "start without first checking that the model endpoint answers and takes "
            "the key (default: check once)",
        },
    ),
    UpOption(
        ("--no-memory-check",),
        True,
        {
            "action": "store_true",
            "help": "start even if the agents' claude processes (~200 MiB each) would not fit "
            "in the memory available (default: refuse, and warn above 75%% of it)",
        },
    ),
)


def add_up_options(parser: argparse.ArgumentParser) -> None:
    for option in UP_OPTIONS:
        parser.add_argument(*option.flags, **option.settings)


def child_argv(args: argparse.Namespace, roster: Roster) -> list[str]:
    """The background supervisor's command line: `up` of the same roster, with every
    option of the table it takes, as the operator gave it, then the agents named."""
    argv = [sys.executable, "-m", "orchestrator.cli", "up", "-f", str(roster.path), "--no-color"]
    for option in UP_OPTIONS:
        if option.to_child:
            argv += option.argv(getattr(args, option.dest))
    return [*argv, "--", *args.agents]


def detach(args: argparse.Namespace, roster: Roster) -> int:
    """Start the supervisor in the background; return once it holds the team and has
    registered, or fail with what it wrote before exiting."""
    out_path = roster.logs / "supervisor.out"
    try:  # no link followed, no folder others can write (safefs)
        safefs.private_folder(roster.logs, "logs folder")
        fd = safefs.open_private(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, "log file")
    except errors.OrchestratorError as exc:
        raise common.failure_from(exc) from None
    import signal
    import subprocess

    proc: subprocess.Popen[bytes] | None = None
    # SIGTERM (`timeout 30 octy-orchestrate up -d` in a cron job, a `kill`) cancels as
    # Ctrl-C does: it ended `up -d` with 143, unsaid, and the team came up anyway.
    previous = signal.signal(signal.SIGTERM, _cancel)
    try:
        with os.fdopen(fd, "ab") as out:
            # The file is shared by every run (and by a concurrent `up -d` that loses the
            # race): only what is written from here on is this child's (review F, L1).
            start = os.fstat(out.fileno()).st_size
            # Ctrl-C (SIGTERM too) is held from before the fork until the child is `proc`:
            # landed inside Popen once the child ran, its KeyboardInterrupt left that child
            # starting in the background, unsaid (proc still None). pthread_sigmask runs the Python
            # handlers of what is pending as it returns: an interrupt from before the
            # block lands before the fork, one held lands here once ``proc`` is set. The
            # child inherits the block; `up` lifts it as it starts (cmd_up). The mask is
            # this thread's: `up -d` runs no other here (measured: one task in /proc), so a
            # SIGINT to the process has no unblocked thread to land in meanwhile.
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _CANCELLING)
            try:
                proc = subprocess.Popen(
                    child_argv(args, roster),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    cwd=os.getcwd(),
                )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        try:
            _wait_until_registered(proc, roster, out_path, start)
        except _NotRegistered:
            # Left running, it went on starting unsaid: the team came up later, or never,
            # behind a failed `up -d` (a second `up` then found it "already running").
            # As with Ctrl-C: stopped as `down` would, and said (docker compose and pm2
            # report a start that did not come up as failed).
            stopped = _stop(proc, args.grace)
            raise CliFailure(
                f"the supervisor (pid {proc.pid}) did not register within "
                f"{START_WAIT_S:g} s; "
                + ("it was stopped" if stopped else "it was asked to stop and is still stopping")
                + f". What it wrote ({out_path}):\n"
                + _written_since(out_path, start, proc.returncode)
            ) from None
        _say_started(args, roster, proc.pid)
    except (KeyboardInterrupt, _Terminated) as cancelled:
        # Ctrl-C while it starts means "not this": it left the supervisor starting in the
        # background, unsaid (exit 130, and the team came up anyway). It is stopped as
        # `down` would (SIGTERM: its grace for turns), and waited for; a second Ctrl-C
        # leaves it to finish stopping. Anywhere once the child runs: before the wait
        # began, or once it registered and before that was said, it went on unsaid too.
        # A second SIGTERM ends `up -d` at once, as a second Ctrl-C does; the supervisor
        # has had its own and goes on stopping.
        signal.signal(signal.SIGTERM, previous)
        if proc is not None:
            how = "terminated (SIGTERM)" if isinstance(cancelled, _Terminated) else "interrupted"
            print(
                f"octy-orchestrate: {how}: stopping the supervisor it was starting "
                f"(pid {proc.pid})",
                file=sys.stderr,
            )
            _stop(proc, args.grace)
        if isinstance(cancelled, _Terminated):
            return 128 + signal.SIGTERM
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return common.EXIT_OK


# What cancels `up -d` while it starts its supervisor, held across the fork (above).
_CANCELLING = {2, 15}  # SIGINT, SIGTERM


class _Terminated(Exception):
    """SIGTERM came while `up -d` started its supervisor."""


def _cancel(_signum: int, _frame: object) -> None:
    raise _Terminated


def _wait_until_registered(
    proc: subprocess.Popen[bytes], roster: Roster, out_path: Path, start: int
) -> None:
    """Until the child holds the team and has registered; a CliFailure with what it wrote
    if it exits first; _NotRegistered if it is not there within START_WAIT_S."""
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _lost_the_race(proc, roster)
            raise CliFailure(
                "the supervisor exited at once:\n"
                + _written_since(out_path, start, proc.returncode)
            )
        if holder_pid(roster.database) == proc.pid and _registered(place_of(roster), proc.pid):
            return
        time.sleep(0.05)
    raise _NotRegistered


def _lost_the_race(proc: subprocess.Popen[bytes], roster: Roster) -> None:
    """The child exited while another supervisor holds the team: a concurrent `up` (both
    past cmd_up's "already running" check before either child held the team) won. Said
    plainly: the shared supervisor.out's last lines were the winner's, shown as if they
    were this start's failure (the child's own "already running" below them)."""
    holder = holder_pid(roster.database)
    if holder is None or holder == proc.pid:
        return
    who = f" (supervisor pid {holder})" if holder else ""
    raise CliFailure(
        f"another `up` started this team{who} while this one was starting; "
        "use `octy-orchestrate ps`, or `down` first",
        common.EXIT_ERROR,
        "already_running",
    )


class _NotRegistered(Exception):
    """The child runs and has not registered within START_WAIT_S."""


def _say_started(args: argparse.Namespace, roster: Roster, pid: int) -> None:
    if args.json:
        common.emit_json(
            {
                "ok": True,
                "pid": pid,
                "database": str(roster.database),
                "logs": str(roster.logs),
            }
        )
    else:
        print(
            for_people(
                f"team '{roster.name}' started in the background (supervisor pid {pid}); "
                f"`octy-orchestrate ps`, `logs -f`, `down`"
            )
        )


def _stop(proc: subprocess.Popen[bytes], grace: float) -> bool:
    """SIGTERM, as `down`; True once it exited, False if it is still stopping (said)."""
    import signal
    import subprocess

    proc.terminate()
    with contextlib.suppress(ProcessLookupError):
        # One stopped (kill -STOP) would never act on it. Through the Popen, not os.kill: a
        # child already reaped is not signalled, so its pid, maybe another's now, is not.
        proc.send_signal(signal.SIGCONT)
    try:
        proc.wait(timeout=grace + STOP_SLACK_S)
    except subprocess.TimeoutExpired:
        print(
            f"octy-orchestrate: the supervisor (pid {proc.pid}) is still stopping; "
            f"`octy-orchestrate ps` shows it",
            file=sys.stderr,
        )
        return False
    return True


def _written_since(path: os.PathLike[str], offset: int, returncode: int) -> str:
    """The last lines written to ``path`` past ``offset`` (a concurrent `up -d` may have
    written there too: its lines say which pid they are); with none, how it ended, and
    whether its file system is full (measured: on a full disk the child's one line, "No
    space left on device", could not be written either, and `up -d` said only "(it wrote
    nothing)")."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(its output in {path} cannot be read: {exc.strerror})"
    lines = text.splitlines()[-TAIL_LINES:]
    if lines:
        return "\n".join(lines)
    ended = f"exit status {returncode}" if returncode >= 0 else _signal_name(-returncode)
    folder = os.path.dirname(path)
    if _full(folder):
        return (
            f"(it wrote nothing, {ended}: the file system holding {folder} is full, so "
            f"nothing it said could be kept; free some space there and run up again)"
        )
    return f"(it wrote nothing, {ended})"


def _signal_name(number: int) -> str:
    import signal

    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


def _full(folder: str) -> bool:
    """No block left that a write may take (common.no_room)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return common.no_room(st)


def _registered(db: QueuePlace, pid: int) -> bool:
    """The supervisor wrote its registry row and launches agents: it is past its checks (the
    model's, and the SDK's import, which it finishes after registering: issue 14.5)."""
    try:
        with open_sync(db, readonly=True) as mailbox:
            info = mailbox.agent(SUPERVISOR)
    except errors.OrchestratorError:
        return False
    return (
        info is not None
        and info.pid == pid
        and info.state == "running"
        and info.meta.get(LAUNCHING) is True
    )
