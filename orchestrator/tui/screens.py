"""The screens `top` opens over its main one: a y/N question, a text (help, a trace),
an agent's log followed live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, RichLog, Static

from orchestrator import logview
from orchestrator.tui.data import render_event


class ConfirmScreen(ModalScreen[bool]):
    """``y`` confirms, anything else in the bindings cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape,q", "answer(False)", "no"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: auto; max-width: 70; border: heavy $warning; padding: 1 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.question}  [y/N]"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(Screen[None]):
    """A full-screen text (help, a trace): scroll with the arrows, ``q``/Esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,escape", "close", "close")]

    def __init__(self, title: str, lines: Iterable[str], *, screen_id: str) -> None:
        super().__init__(id=screen_id)
        self.heading = title
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.heading, style="bold reverse"))
            yield RichLog(wrap=True, markup=False, highlight=False, id="text")
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one("#text", RichLog)
        for line in self.lines:
            log.write(Text(line))
        log.scroll_home(animate=False)

    def action_close(self) -> None:
        self.app.pop_screen()


class LogScreen(TextScreen):
    """An agent's own log (``l``), followed while open."""

    def __init__(self, agent: str, follower: logview.FileFollower, tail: int = 500) -> None:
        super().__init__(f" log of {agent} (q closes)", [], screen_id="log")
        self.follower = follower
        self.tail = tail

    def on_mount(self) -> None:
        self._write(self.follower.history()[-self.tail :])
        self.set_interval(1.0, self._poll)

    def _poll(self) -> None:
        self._write(self.follower.poll())

    def _write(self, lines: list[logview.LogLine]) -> None:
        log = self.query_one("#text", RichLog)
        for line in lines:
            log.write(Text.from_ansi(render_event(line).line))

    def on_unmount(self) -> None:
        self.follower.close()


HELP = """\
Keys
  up/down, j/k  select an agent
  l             the selected agent's log, followed (q closes)
  t             the trace of the selected agent's request: the one in flight,
                else the newest it received or sent (q closes)
  r  s  S       restart / stop / start the selected agent, after a y/N
                question; sent through the team's database to the
                supervisor, as `octy-orchestrate restart AGENT` is
  /             filter agents and events by name (Enter applies, an empty
                filter clears, Esc cancels)
  ?             this help
  q             quit (the team keeps running)

Columns
  STATE      the registry's state, and its reason when one is recorded;
             dim when no supervisor runs (the last known states)
  PID, UP    the agent's claude process and how long it has run (seconds
             for the first minute, then minutes)
  RST        restarts        PEND       messages waiting for it
  IN-FLIGHT  the message it is handling (last 8 characters of its id;
             +N: N more) and for how long
  TURNS, TOKENS, COST        so far (as `ps` counts them)
  CPU%, MEM  of its claude process, from /proc: whole % of one core over
             the last 5 s; resident memory (shown in steps of 2 %)
"""


def help_lines() -> list[str]:
    return HELP.splitlines()
