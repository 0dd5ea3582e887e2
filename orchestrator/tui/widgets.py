"""The pieces of `top`'s main screen: the team line, the agent table, the event pane and
the filter box. (The screens opened over it are in :mod:`orchestrator.tui.screens`.)"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input, RichLog, Static

from orchestrator.cli import ps_view
from orchestrator.tui.data import AgentRow, Event, TeamStatus, clean

KEEP_EVENTS = 2000  # events the pane holds (and re-filters with `/`)
# The AGENT column's most cells, the rest cut with "…": a legal 63-character name hid
# MEM, CPU and CTX at 120 columns, and a 300-character one (plain SQL may write any)
# pushed every other column of every row off the screen.
NAME_CELLS = 24

# Known states and their colours; a state the registry holds that is not here (a new
# one) is shown as it is, uncoloured. NO_COLOR: Textual draws everything monochrome.
STATE_STYLES = {
    "ready": "green",
    "busy": "bold cyan",
    "waiting": "yellow",
    "starting": "yellow",
    "stopping": "yellow",
    "backoff": "bold yellow",
    "failed": "bold red",
    "stopped": "dim",
    "paused": "magenta",
    "blocked": "bold magenta",
    "stale": "dim red",
    "registered": "blue",
    "running": "green",
}

COLUMNS = (
    ("agent", "AGENT"),
    ("state", "STATE"),
    ("pid", "PID"),
    ("uptime", "UP"),
    ("restarts", "RST"),
    ("pending", "PEND"),
    ("in_flight", "IN-FLIGHT"),
    ("turns", "TURNS"),
    ("tokens", "TOKENS"),
    ("cost", "COST"),
    ("budget", "BUD%"),  # the full figures are in `ps` (an 80-column screen has no room)
    ("context", "CTX%"),
    ("cpu", "CPU%"),
    ("mem", "MEM"),
)


def duration(seconds: float | None) -> str:
    """Seconds under a minute, then minutes: a figure that changes every second would
    redraw the whole table every second, for a precision nobody reads (docker ps: "Up 3
    minutes"); the age of a message in flight keeps its seconds (see ``age``)."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else duration(s)


def size(n: int | None) -> str:
    """Whole KiB/MiB (a resident size moves by a few pages all the time: a decimal would
    redraw the row each second for nothing), GiB with one decimal."""
    if n is None:
        return "-"
    if n < 2**20:
        return f"{n // 1024}K"
    if n < 2**30:
        return f"{n // 2**20}M"
    return f"{n / 2**30:.1f}G"


def count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else str(n)


def percent(share: float | None) -> str:
    """Whole percents; past 9,999 % (figures from a hostile registry row) ``>9999``."""
    if share is None:
        return "-"
    return ">9999" if share * 100 >= 9999.5 else f"{share * 100:.0f}"


def state_cell(row: AgentRow, live: bool) -> Text:
    label = clean(row.state if not row.reason else f"{row.state} ({row.reason})")
    style = STATE_STYLES.get(row.state, "") if live else "dim italic"
    return Text(label, style=style)


def cells(row: AgentRow, live: bool) -> list[Text]:
    return [c + " " for c in _cells(row, live)]


def _cells(row: AgentRow, live: bool) -> list[Text]:
    flight = "-"
    if row.in_flight:  # the id's last 8 characters (its random part); `t` shows it whole
        more = len(row.in_flight) - 1
        flight = clean(row.in_flight[0][-8:]) + (f"+{more}" if more else "")
    plain = [
        str(row.pid or "-"),
        duration(row.uptime_s),
        str(row.restarts),
        str(row.pending),
        f"{flight} {age(row.in_flight_age_s)}" if row.in_flight else "-",
        str(row.turns),
        count(row.tokens),
        ps_view.cost(row.cost_usd, row.cost_estimated),
        percent(row.budget_share),
        percent(row.context_share),
        # whole percents: tenths of an idle process's CPU come and go with each 10 ms
        # tick the kernel counts, and would redraw the table every second for nothing
        "-" if row.cpu_pct is None else f"{row.cpu_pct:.0f}",
        size(row.rss_bytes),
    ]
    name = Text(clean(row.name), style="bold" if live else "dim")
    name.truncate(NAME_CELLS, overflow="ellipsis")
    return [
        # names and states come from the registry, which any process may write: escaped
        name,
        state_cell(row, live),
        *(Text(v, style="" if live else "dim") for v in plain),
    ]


class AgentTable(Static, can_focus=True):
    """One row per participant and a cursor, drawn as plain text lines.

    Not a DataTable: it redraws every cell it is given, and with ten agents refreshed
    each second that alone cost 2-3 % of a core (measured with bench/team.py); a few
    lines of text cost a tenth of that. Rows beyond half the screen scroll with the
    cursor, as in htop."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", show=False),
        Binding("down,j", "move(1)", show=False),
        Binding("home", "move(-1000000)", show=False),
        Binding("end", "move(1000000)", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names: list[str] = []
        self.cells: dict[str, list[Text]] = {}
        self.cursor_row = 0
        self._top = 0  # first row shown
        self._shown_lines = -1

    def show(self, rows: Iterable[AgentRow], live: bool) -> None:
        selected = self.selected()
        new = {r.name: cells(r, live) for r in rows}
        if new == self.cells:
            return  # nothing to redraw: the usual case for an idle team
        self.cells = new
        self.names = list(self.cells)
        if selected in self.cells:
            self.cursor_row = self.names.index(selected)
        self.cursor_row = max(0, min(self.cursor_row, len(self.names) - 1))
        self._draw()

    @property
    def row_count(self) -> int:
        return len(self.names)

    def row_text(self, name: str) -> list[str]:
        """The cells of a row as shown (for tests and for people reading the code)."""
        return [c.plain.strip() for c in self.cells[name]]

    def selected(self) -> str | None:
        return self.names[self.cursor_row] if self.names else None

    def select(self, name: str) -> None:
        self.cursor_row = self.names.index(name)
        self._draw()

    def action_move(self, step: int) -> None:
        if self.names:
            self.cursor_row = max(0, min(self.cursor_row + step, len(self.names) - 1))
            self._draw()

    def on_resize(self) -> None:
        self._draw()

    def fit(self, screen_height: int) -> None:
        """The terminal changed size: as many rows as half the new height holds. (The
        table's own size may not change, e.g. cut to 4 rows at 10 lines and grown back to
        40: its own resize event never comes, and it stayed cut short.)"""
        self._draw(screen_height)

    def on_focus(self) -> None:
        self._draw()

    def on_blur(self) -> None:
        self._draw()

    def _draw(self, screen_height: int | None = None) -> None:
        height = self.app.size.height if screen_height is None else screen_height
        # Rows below the header: CSS caps the table at half the screen but the footer's
        # line (`max-height: 50%` of the rest, rounded down); one row more and the last
        # one, the cursor on it, would be cut off.
        room = max(1, (height - 1) // 2 - 1)
        if self.cursor_row < self._top:
            self._top = self.cursor_row
        elif self.cursor_row >= self._top + room:
            self._top = self.cursor_row - room + 1
        self._top = max(0, min(self._top, max(0, len(self.names) - room)))
        shown = self.names[self._top : self._top + room]
        table = [[Text(label + " ", style="bold") for _, label in COLUMNS]]
        table += [self.cells[n] for n in shown]
        # in cells, not characters: 漢 takes two columns of the terminal
        widths = [max(row[i].cell_len for row in table) for i in range(len(COLUMNS))]
        out = Text(no_wrap=True, overflow="crop", end="")
        for i, row in enumerate(table):
            line = Text(no_wrap=True, end="")
            for cell, width in zip(row, widths, strict=True):
                line.append_text(cell)
                line.append(" " * (width - cell.cell_len))
            if i == 0:
                line.stylize("reverse")
            elif shown[i - 1] == self.selected():
                line.stylize("reverse" if self.has_focus else "underline")
            if i:
                out.append("\n")
            out.append_text(line)
        lines = len(table)
        self.update(out, layout=lines != self._shown_lines)  # same height: no new layout
        self._shown_lines = lines


def clock(epoch: float) -> str:
    """A time on `top`'s screen: UTC, as the events' clocks (the logs are in UTC), and
    labelled so, so that one screen never mixes two zones unsaid."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class TeamLine(Static):
    """The team, its supervisor and queue; the filter in use; and, while reads fail, a
    marker that stays until one succeeds (a toast alone passes, and the frozen figures
    below it would look live)."""

    _team: TeamStatus | None = None
    _taken_at = 0.0
    _failure = ""
    _only = ""
    _last: Text | None = None
    _lines = -1

    def show(self, team: TeamStatus, taken_at: float) -> None:
        """A fresh read: whatever failed before has recovered."""
        self._team, self._taken_at, self._failure = team, taken_at, ""
        self._draw()

    def failed(self, reason: str) -> None:
        self._failure = reason
        self._draw()

    def filtered(self, only: str) -> None:
        self._only = only
        self._draw()

    @property
    def failure(self) -> str:
        return self._failure

    def _draw(self) -> None:
        t = Text(no_wrap=True, end="")
        team = self._team
        if team is None:
            t.append(" reading the team… ")
        else:
            self._team_text(t, team)
        if self._only:
            t.append(" │ filter: ")
            t.append(clean(self._only), style="bold reverse")
        if self._failure:
            since = f", figures as of {clock(self._taken_at)}" if team is not None else ""
            t.append(f"\n READ FAILED, retrying{since}: {self._failure}", style="bold red")
        if team is not None and team.roster_warning:
            t.append(f"\n {team.roster_warning}", style="bold yellow")
        if t != self._last:  # uptime changes each second; a new layout only with a new height
            lines = t.plain.count("\n") + 1  # each cut on the right (CSS), never wrapped
            self.update(t, layout=lines != self._lines)
            self._last, self._lines = t, lines

    @staticmethod
    def _team_text(t: Text, team: TeamStatus) -> None:
        t.append(f" {team.name} ", style="bold reverse")
        if team.supervisor_pid:
            t.append(f" supervisor {team.supervisor_pid}", style="green")
            t.append(f" up {duration(team.supervisor_uptime_s)}")
        elif team.queue is not None:
            # Supervisors on other machines may run it: the registry's states stand, and
            # this machine has no pids, CPU or memory to show for them.
            t.append(" no supervisor on this machine", style="yellow")
        else:
            t.append(" supervisor NOT RUNNING", style="bold red")
        t.append(f" │ queue {team.pending} │ in flight {team.in_flight} │ dead ")
        t.append(str(team.dead), style="bold red" if team.dead else "")
        t.append(f" │ {ps_view.cost(team.cost_usd, team.cost_estimated)}")  # ~$: in part guessed
        if not team.supervisor_pid and team.queue is None:
            # After the figures: its date and time before them pushed the team's cost off
            # a 100-column line, just when the team had gone down.
            seen = clock(team.last_known_at) if team.last_known_at else "never"
            t.append(f" │ last known states, as of {seen}")
        if team.queue is not None:
            t.append(f" │ {team.queue}")
            if not team.supervisor_pid:
                t.append(" │ pids, CPU, memory, events and r/s/S: where a supervisor runs")


class EventPane(RichLog):
    """What `logs -f` prints, newest at the bottom; ``only`` filters by agent name."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=KEEP_EVENTS, wrap=False, markup=False, highlight=False, id=id)
        self.kept: list[Event] = []
        self.only = ""
        self._following = True  # at the newest event; scrolling up to read stops following

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._following = new_value >= self.max_scroll_y

    def on_resize(self, event: events.Resize) -> None:
        # A shrink keeps the offset from the top: the newest events fell below the pane
        # and stayed hidden until the next event (on an idle team, minutes). Following
        # before, following after, as `logs -f` does. (RichLog's own on_resize runs too.)
        if self._following:
            self.scroll_end(animate=False)

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            self.kept.append(e)
            if self._matches(e):
                self.write(Text.from_ansi(e.line))
        del self.kept[:-KEEP_EVENTS]

    def refilter(self, only: str) -> None:
        self.only = only
        self.clear()
        for e in self.kept:
            if self._matches(e):
                self.write(Text.from_ansi(e.line))

    def _matches(self, e: Event) -> bool:
        return not self.only or any(self.only in n for n in e.names)


class FilterInput(Input):
    """The ``/`` box, docked at the bottom while open; Esc closes it unchanged."""

    class Cancelled(Message):
        pass

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, placeholder: str) -> None:
        super().__init__(placeholder=placeholder, id="filter")

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())
