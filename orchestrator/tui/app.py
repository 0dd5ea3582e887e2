"""`octy-orchestrate top`: the team on one screen, refreshed about once a second.

Reading (the database, the logs, /proc) happens in one reader thread, so a slow disk
never freezes the keys, and the screen is redrawn only when what it shows changes;
commands (restart, stop, start) go through :func:`orchestrator.control.send_command`,
as the CLI verbs do, after a y/N question, in a thread too (a supervisor may take
seconds to acknowledge).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from typing import ClassVar

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Input

from orchestrator import errors
from orchestrator.tui.data import AgentRow, Event, Snapshot, TeamSource, clean, name_refused
from orchestrator.tui.screens import ConfirmScreen, LogScreen, TextScreen, help_lines
from orchestrator.tui.widgets import AgentTable, EventPane, FilterInput, TeamLine, cells, duration

REFRESH_S = 1.0
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_VERBS = {"restart": "Restart", "stop": "Stop", "start": "Start"}
_MAIN_ONLY = frozenset({"log", "trace", "command", "filter", "help"})


class TopApp(App[None]):
    TITLE = "octy-orchestrate top"
    ENABLE_COMMAND_PALETTE = False  # its ^p entry would take a key and footer room
    CSS = """
    /* each of its lines cut on the right: wrapped, at 20x5 it filled the screen */
    TeamLine { height: auto; text-wrap: nowrap; text-overflow: clip; }
    /* cut on the right, never wrapped: Textual ignores rich's Text.no_wrap, and a wrapped
       row takes two lines (at 40 columns no row was left on screen) */
    AgentTable { height: auto; max-height: 50%; text-wrap: nowrap; text-overflow: clip; }
    EventPane { height: 1fr; border-top: solid $primary; overflow-x: hidden; }
    #filter { dock: bottom; display: none; }
    #filter.shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        # As htop and k9s: Ctrl-C quits, over every screen and the filter box (Textual's
        # own ctrl+c only says "press ctrl+q to quit").
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("l", "log", "log"),
        Binding("t", "trace", "trace"),
        Binding("r", "command('restart')", "restart"),
        Binding("s", "command('stop')", "stop"),
        Binding("S", "command('start')", "start"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, source: TeamSource, *, refresh_s: float = REFRESH_S) -> None:
        super().__init__()
        self.source = source
        self.refresh_s = refresh_s
        self.snapshot: Snapshot | None = None
        self.only = ""
        self.last_outcome = ""
        self._stop = threading.Event()
        self._wake = threading.Event()

    def compose(self) -> ComposeResult:
        yield TeamLine(id="team")
        yield AgentTable(id="agents")
        yield EventPane(id="events")
        yield FilterInput(placeholder="filter by agent name (Enter applies, empty clears)")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(AgentTable).focus()
        # SIGTERM (kill, timeout, a service manager) and SIGHUP (the terminal closed)
        # ended Python at once: the terminal stayed in the alternate screen, with mouse
        # reporting on, the cursor hidden and the tty raw. Quit the way `q` does, which
        # puts all of it back, and say which signal in the exit status (128 + N).
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            try:
                loop.add_signal_handler(signum, self._signalled, signum)
            except (RuntimeError, ValueError):  # not the main thread (a test's app)
                break

    def on_ready(self) -> None:
        # Read once the first frame is up, not from on_mount: a first read that came back
        # before the widgets had their own Mount (a busy machine) drew into widgets whose
        # measured height Textual kept, and with a long --interval the table showed its
        # header and no row until the next change.
        self._reader()

    def _signalled(self, signum: int) -> None:
        if signum == signal.SIGHUP and not _terminal_attached():
            # The terminal hung up (its window closed): there is nothing to restore, and
            # Textual's restore waited for ever on its output thread (writes fail with
            # EIO, and the SIGCONT a hangup also sends restarts its output). top holds
            # nothing to save (it only reads; commands are the supervisor's): end now.
            os._exit(128 + signum)
        self.exit(return_code=128 + signum)

    def on_resize(self, event: events.Resize) -> None:
        # Runs before App's own handler records the new size: the event's size is the one.
        # (query, not query_one: a resize may come before the table is mounted)
        for table in self.query(AgentTable):
            table.fit(event.size.height)

    def on_unmount(self) -> None:
        self._stop.set()
        # Wake the reader out of its wait: the process ends only when that thread does,
        # and with `--interval 3600` `q` left it running for up to an hour.
        self._wake.set()

    def refresh_data(self) -> None:
        """Read again now (after a command), not at the next tick."""
        self._wake.set()

    # --- refresh -------------------------------------------------------------------

    @work(thread=True, group="reader", exit_on_error=False)
    def _reader(self) -> None:
        """One thread for the life of the app: read, and hand the result to the screen
        only when something shown would change. (A worker per tick, as first written,
        cost 0.3 % of a core in workers' own messages for 10 idle agents.)"""
        shown: object = None
        failed = ""
        try:
            while not self._stop.is_set():
                try:
                    events = self.source.events()  # first: the team's name is in its log
                    snapshot = self.source.snapshot()
                    recovered, failed = bool(failed), ""
                except Exception as exc:  # a database or log gone bad: say so, keep the last view
                    known = isinstance(exc, OSError | errors.OrchestratorError)
                    text = clean(str(exc) if known else repr(exc))
                    if text != failed:
                        failed = text
                        if not self._post(self._read_failed, text):
                            return
                else:
                    view = _view(snapshot)
                    if events or view != shown or recovered:  # recovered: clear the marker
                        shown = view
                        if not self._post(self._show, snapshot, events):
                            return
                self._wake.wait(self.refresh_s)
                self._wake.clear()
        finally:
            self.source.close()

    def _post(self, callback: Callable[..., object], *args: object, **kwargs: object) -> bool:
        """Run ``callback`` on the app's loop from the reader thread; False once the app
        has stopped (a quit can land while a read is under way)."""
        if self._stop.is_set():
            return False
        try:
            self.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the loop is closed or closing
            return False
        return True

    def _read_failed(self, reason: str) -> None:
        """A toast says it once; the team line keeps saying it until a read succeeds."""
        self.say(reason, "error")
        self.query_one(TeamLine).failed(reason)

    def _show(self, snapshot: Snapshot, events: list[Event]) -> None:
        self.snapshot = snapshot
        live = snapshot.team.live
        rows = [a for a in snapshot.agents if not self.only or self.only in a.name]
        self.query_one(TeamLine).show(snapshot.team, snapshot.taken_at)
        self.query_one(AgentTable).show(rows, live)
        self.query_one(EventPane).add(events)

    # --- keys ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Over a help, log or trace screen only its own keys (and quit) work: `l` there
        would stack a log on a trace."""
        # False: hidden from the footer, and the key does nothing
        return not (action in _MAIN_ONLY and len(self.screen_stack) > 1)

    def say(self, text: str, severity: SeverityLevel = "information") -> None:
        """A toast. Its text may hold names and ids from the registry, which any process
        can write: escaped (no control reaches the terminal) and never read as markup
        (a `[/]` in a name would end top with a MarkupError)."""
        self.notify(clean(text), severity=severity, markup=False)

    def _selected(self, verb: str) -> str | None:
        """The selected agent's name, if ``verb`` may act on it: a name outside the
        roster's rule (written by plain SQL) is refused with a message."""
        name = self.query_one(AgentTable).selected()
        if name is None:
            self.say("no agent selected", "warning")
            return None
        refused = name_refused(name)
        if refused:
            self.say(f"{verb} refused, {refused}", "error")
            return None
        return name

    def action_log(self) -> None:
        name = self._selected("log")
        if name:
            try:
                follower = self.source.agent_log(name)
            except errors.OrchestratorError as exc:
                self.say(str(exc), "error")
                return
            self.push_screen(LogScreen(clean(name), follower))

    def action_trace(self) -> None:
        name = self._selected("trace")
        if name and self.snapshot:
            row = next((a for a in self.snapshot.agents if a.name == name), None)
            if row is not None:
                self._open_trace(row)

    @work(thread=True, exclusive=True, group="trace", exit_on_error=False)
    def _open_trace(self, row: AgentRow) -> None:
        try:
            request = self.source.request_of(row)
            if request is None:
                self._post(self.say, f"{row.name} has no request to trace yet", "warning")
                return
            lines = self.source.trace_lines(request)
        except errors.OrchestratorError as exc:
            self._post(self.say, str(exc), "error")
            return
        # the id comes from the queue (plain SQL may write any): escaped like the name
        title = f" trace of {clean(request)} ({clean(row.name)}; q closes)"
        self._post(self.push_screen, TextScreen(title, lines, screen_id="trace"))

    def action_command(self, command: str) -> None:
        name = self._selected(command)
        if not name:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.say(f"{command} {name}: sent to the supervisor…")
                # A daemon thread, not a worker: quitting must not wait for a supervisor
                # that takes its time to acknowledge (the CLI waits up to 60 s).
                threading.Thread(
                    target=self._run_command, args=(command, name), daemon=True
                ).start()

        self.push_screen(ConfirmScreen(f"{_VERBS[command]} agent '{clean(name)}'?"), answered)

    def _run_command(self, command: str, name: str) -> None:
        outcome = self.source.command(command, name)
        self.last_outcome = outcome
        severity: SeverityLevel = "information" if outcome.endswith(": ok") else "error"
        self._post(self.say, outcome, severity)
        self.refresh_data()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = self.only
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.only = event.value.strip()
        self._close_filter()
        self.query_one(EventPane).refilter(self.only)
        if self.snapshot is not None:
            self._show(self.snapshot, [])

    def on_filter_input_cancelled(self, _: FilterInput.Cancelled) -> None:
        self._close_filter()

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).remove_class("shown")
        self.query_one(AgentTable).focus()
        self.query_one(TeamLine).filtered(self.only)

    def action_help(self) -> None:
        title = " octy-orchestrate top: keys and columns (q closes)"
        self.push_screen(TextScreen(title, help_lines(), screen_id="help"))


def _terminal_attached() -> bool:
    """Whether this process still has its terminal: a hangup takes it away, and then
    /dev/tty cannot be opened (a `kill -HUP` leaves it there)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _view(snapshot: Snapshot) -> tuple[object, ...]:
    """What the screen shows of a snapshot, as text: equal views need no redraw."""
    team, live = snapshot.team, snapshot.team.live
    rows = tuple((a.name, tuple(c.plain for c in cells(a, live))) for a in snapshot.agents)
    return (
        rows,
        team.name,
        team.supervisor_pid,
        duration(team.supervisor_uptime_s),
        None if live else team.last_known_at,
        team.pending,
        team.in_flight,
        team.dead,
        f"{team.cost_usd:.4f}",
        team.roster_warning,
        team.queue,
    )


def run(source: TeamSource, *, refresh_s: float = REFRESH_S) -> int:
    app = TopApp(source, refresh_s=refresh_s)
    app.run()
    return app.return_code or 0
