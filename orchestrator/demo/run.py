"""Run the demo team: a temporary folder, the scripted model, the supervisor, one question.

Everything runs in this process: the scripted model serves from a background
thread, the supervisor runs under ``anyio.run`` in the main thread (it owns
SIGINT/SIGTERM there, so Ctrl-C stops the team gracefully), and a driver task
beside it asks the coordinator as the user would. The claude CLIs reach the
model through the environment they inherit from this process, set here and
restored afterwards: the roster the demo writes stays an ordinary roster, so
a folder kept with ``--keep`` can be inspected with the usual verbs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import anyio
import structlog
from claude_agent_sdk import CanUseToolShadowedWarning

from orchestrator import errors, logconfig
from orchestrator.cli import team_record
from orchestrator.colour import wanted as colour_wanted
from orchestrator.demo import signals
from orchestrator.mailbox import USER, AsyncMailbox
from orchestrator.prompts import text_of
from orchestrator.roster import Roster, load_roster
from orchestrator.scripted_model import ScriptedModel
from orchestrator.supervisor import Supervisor

QUESTION = "How do the agents on a team talk to each other?"
SCRIPTED_LABEL = "scripted model — no Claude API is called"
ASKED = "coordinator"
GRACE_S = 5.0
POLL_S = 0.05

log = structlog.get_logger()


@dataclass
class DemoOutcome:
    """How a demo run ended. ``answer`` is set when the team answered."""

    folder: Path
    kept: bool
    request_id: str | None = None  # the user's question, once asked
    answer: str | None = None
    error: str | None = None  # why there is no answer (a failed request, a failed agent)
    timed_out: bool = False
    interrupted: bool = False
    kept_running: bool = False  # --keep: the team ran on after answering, until `down`
    seconds: float = 0.0


def run_demo(
    *, keep: bool, seconds: float, console: TextIO, colour: bool | None = None
) -> DemoOutcome:
    """Run the demo team until it answers :data:`QUESTION` (or ``seconds`` pass), then stop it.

    Writes banners, the team's log lines and the answer to ``console``. The
    temporary folder is removed afterwards unless ``keep``; with ``keep`` the team also
    keeps running after its answer, until ``octy-orchestrate down`` (or Ctrl-C), so the
    usual verbs can be tried on it from another terminal.
    """
    with signals.stopped_like_ctrl_c() as again:  # before mkdtemp: none ends us outright
        return _run(keep=keep, seconds=seconds, console=console, colour=colour, again=again)


def _run(
    *,
    keep: bool,
    seconds: float,
    console: TextIO,
    colour: bool | None,
    again: Callable[[], None],
) -> DemoOutcome:
    started = time.monotonic()
    if colour is None:
        colour = colour_wanted(console)
    out = _Printer(console, colour)
    folder: Path | None = None
    try:
        # Made and named at once: a signal landing in between (or before the `try`) ended
        # the demo with its folder left in /tmp (the CI's _folder_made-15, twice).
        with signals.held():
            folder = Path(tempfile.mkdtemp(prefix="octy-demo-"))  # 0700
        outcome = DemoOutcome(folder=folder, kept=keep)
        roster_path = folder / "agents.yaml"
        roster_path.write_text(_bundled("team.yaml"), encoding="utf-8")
        script = folder / "script.yaml"
        script.write_text(_bundled("script.yaml"), encoding="utf-8")
        record = folder / "model-requests.jsonl"
        if keep:
            # Verbs from another terminal must still reach a kept team whose agents.yaml was
            # edited into an invalid state (as after `up`). Written before HOME moves into
            # the demo folder, where the person's own verbs would never look.
            kept = load_roster(roster_path)
            team_record.write(kept.path, kept.database, kept.logs, tuple(kept.agents))
        with ScriptedModel(script, record=record) as model, _offline_env(model, folder):
            roster = load_roster(roster_path)
            out.opening(roster, folder)
            logconfig.configure(
                roster.logs,
                console=console,
                colour=colour,
                max_bytes=roster.log_max_bytes,
                backups=roster.log_backups,
            )
            try:
                with warnings.catch_warnings():
                    # Emitted by the SDK at connect() for the relay tools, allowed outright on
                    # purpose (see session_options.build_options); noise for a newcomer.
                    warnings.simplefilter("ignore", CanUseToolShadowedWarning)
                    on_answer = out.keep_running if keep else None
                    anyio.run(_drive, roster, seconds, outcome, on_answer)
            finally:
                again()  # the supervisor's receiver left the default action behind
                logconfig.shutdown()
    finally:
        if not keep and folder is not None:
            with signals.held():  # a second signal must not cut the removal short
                shutil.rmtree(folder, ignore_errors=True)
    outcome.seconds = time.monotonic() - started
    out.closing(outcome)
    return outcome


def _bundled(name: str) -> str:
    return (resources.files("orchestrator.demo") / name).read_text(encoding="utf-8")


@contextlib.contextmanager
def _offline_env(model: ScriptedModel, folder: Path) -> Iterator[None]:
    """Point the claude CLIs this process starts at ``model``; HOME and TMPDIR in ``folder``."""
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir(mode=0o700)
    tmp.mkdir(mode=0o700)
    values = {
        **model.cli_env(),  # base URL, a fake key, ENABLE_TOOL_SEARCH=false, offline switches
        "HOME": str(home),  # the CLI writes ~/.claude: keep it inside the demo folder
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),  # an ambient one would escape HOME
        "TMPDIR": str(tmp),  # the CLI leaves folders there (cc-socks, claude-<uid>)
        "CLAUDE_CODE_MAX_RETRIES": "1",  # a broken demo should fail in seconds, not minutes
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _drive(
    roster: Roster,
    seconds: float,
    outcome: DemoOutcome,
    on_answer: Callable[[DemoOutcome], None] | None = None,
) -> None:
    """Run the supervisor; beside it, wait for the team, ask, collect the answer, stop.
    With ``on_answer`` (--keep), an answered team is left running: ``on_answer`` tells the
    person so, and the supervisor runs until `down` or a signal stops it."""
    supervisor = Supervisor(roster, grace_s=GRACE_S, watch_roster=False, hangup_stops=True)
    stopping = False
    async with anyio.create_task_group() as tg:

        async def supervise() -> None:
            await supervisor.run()
            if not stopping:  # a signal stopped the team: stop waiting for the answer
                outcome.interrupted = not outcome.kept_running
                tg.cancel_scope.cancel()

        tg.start_soon(supervise)
        with anyio.move_on_after(seconds) as deadline:
            await _ask(roster, outcome, seconds)
        outcome.timed_out = outcome.timed_out or deadline.cancelled_caught
        if on_answer is not None and outcome.answer is not None:
            outcome.kept_running = True
            on_answer(outcome)
            return  # the task group waits for the supervisor: `down` or Ctrl-C ends it
        stopping = True
        supervisor.stop()


async def _ask(roster: Roster, outcome: DemoOutcome, seconds: float) -> None:
    async with AsyncMailbox(roster.database) as mailbox:  # as any script would
        if not await _team_ready(mailbox, roster, outcome):
            return
        request = await mailbox.request(USER, ASKED, QUESTION)
        outcome.request_id = request.id
        log.info("asked", agent=USER, to=ASKED, request_id=request.id, body=QUESTION)
        try:
            reply = await mailbox.wait_for_reply(request.id, timeout_s=seconds)
        except errors.RequestTimeout:
            outcome.timed_out = True
            return
        except errors.RequestFailed as exc:
            outcome.error = str(exc)
            return
        outcome.answer = text_of(reply.body)
        log.info("answered", agent=USER, by=ASKED, request_id=request.id, body=outcome.answer)


async def _team_ready(mailbox: AsyncMailbox, roster: Roster, outcome: DemoOutcome) -> bool:
    """Wait until every agent is ready; False (with the reason) if one failed to start."""
    while True:
        states = {a.name: a.state for a in await mailbox.agents()}
        failed = [name for name in roster.agents if states.get(name) == "failed"]
        if failed:
            outcome.error = f"{', '.join(failed)} failed to start; see the log lines above"
            return False
        if all(states.get(name) == "ready" for name in roster.agents):
            return True
        await anyio.sleep(POLL_S)


class _Printer:
    """The demo's own lines around the team's log: banners, the question, the answer."""

    def __init__(self, console: TextIO, colour: bool) -> None:
        self.console = console
        self.colour = colour

    def _rule(self, text: str) -> None:
        line = f"──── {text} ".ljust(78, "─")
        self.console.write((f"\x1b[1m{line}\x1b[0m" if self.colour else line) + "\n")

    def _say(self, text: str = "") -> None:
        self.console.write(text + "\n")
        self.console.flush()

    def opening(self, roster: Roster, folder: Path) -> None:
        names = ", ".join(roster.agents)
        self._rule(f"octy-orchestrate demo · {SCRIPTED_LABEL}")
        self._say(
            f"A team of {len(roster.agents)} ({names}) starts in {folder}.\n"
            "The supervisor, one claude CLI process per agent, the SQLite queue and the\n"
            "ask/reply tools all run for real; only the model is a local script, so the\n"
            "answers are canned and the token and cost figures are estimates nobody pays.\n"
            f'The user asks the {ASKED}: "{QUESTION}"\n'
        )
        self.console.flush()

    def answer(self, outcome: DemoOutcome) -> None:
        self._rule(f"the {ASKED}'s answer")
        for paragraph in (outcome.answer or "").splitlines():
            self._say(textwrap.fill(paragraph, 78) if paragraph else "")

    def keep_running(self, outcome: DemoOutcome) -> None:
        """--keep: the answer now, and how to look at the team that keeps running."""
        self._say()
        self.answer(outcome)
        self._rule(f"the team keeps running · {SCRIPTED_LABEL}")
        trace = f"  octy-orchestrate trace {outcome.request_id}\n" if outcome.request_id else ""
        self._say(
            "From another terminal, try:\n"
            f"  cd {outcome.folder}\n"
            "  octy-orchestrate ps\n"
            "  octy-orchestrate logs -f\n"
            f"{trace}"
            "  octy-orchestrate ask coordinator 'How do agents talk?'\n"
            "  octy-orchestrate restart researcher\n"
            "  octy-orchestrate down        # stops the team (Ctrl-C here does too)"
        )

    def closing(self, outcome: DemoOutcome) -> None:
        self._say()
        if outcome.kept_running:
            pass  # the answer was shown when the team was left running
        elif outcome.answer is not None:
            self.answer(outcome)
        elif outcome.interrupted:
            self._say("The demo was interrupted; the team was stopped.")
        elif outcome.timed_out:
            self._say("The team did not answer in time; the log lines above show how far it got.")
        else:
            self._say(f"The team could not answer: {outcome.error}")
        self._rule(f"{SCRIPTED_LABEL} · {outcome.seconds:.1f} s")
        if outcome.kept:
            trace = f"octy-orchestrate trace {outcome.request_id}; " if outcome.request_id else ""
            self._say(
                f"The team was stopped; its folder is kept: {outcome.folder}\n"
                "(agents.yaml, logs/, queue/team.db, model-requests.jsonl). Look around with\n"
                f"  cd {outcome.folder}; {trace}octy-orchestrate queue ls; octy-orchestrate logs"
            )
        else:
            self._say(f"The team was stopped and {outcome.folder} removed.")
        self._say(
            "Your own team: `octy-orchestrate init` writes a starter agents.yaml; edit it, then\n"
            "`octy-orchestrate up` (with ANTHROPIC_API_KEY set or after `claude` login)."
        )
