"""Budget verbs: ``resume`` (run a paused agent again, overriding its budget)."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli.common import CliFailure
from orchestrator.names import AGENT_NAME_RE

if TYPE_CHECKING:
    from orchestrator.agent_meta import AgentMeta


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "resume",
        help="run agents paused by a budget again, overriding it until its window rolls over",
        description="An agent over its budget (or the team's) is paused: it claims nothing "
        "and requests to it fail with budget_exceeded. `resume` overrides the budgets it is over "
        "until their window rolls over (for per: run, until the next `up`) and says which; "
        "spending is still counted. Without AGENT: every paused agent. An agent `ps` shows "
        "`ready (held for bob's turn (team budget))` is not paused: its turn was stopped "
        "because of the others' turns in progress; `resume` says so (exit 0, nothing "
        "overridden): it runs on its own once those turns have ended and been counted. "
        "One stopped or failed (held or paused) runs only once started "
        "(`octy-orchestrate start AGENT`); `resume` says that too.",
    )
    common.add_common(p)
    p.add_argument(
        "-f",
        "--file",
        type=common.roster_file,
        default=None,
        help="the roster (default ./agents.yaml)",
    )
    p.add_argument("agents", nargs="*", metavar="AGENT", help="agents to resume (default: all)")
    p.add_argument(
        "--timeout",
        type=common.seconds,
        default=60.0,
        metavar="S",
        help="wait this long for the supervisor's acknowledgement (default 60)",
    )
    p.set_defaults(func=cmd_resume)


def cmd_resume(args: argparse.Namespace) -> int:
    from orchestrator.control import send_command  # structlog and anyio: only when it runs

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


# --- ps columns (team_verbs.ps_rows / cmd_ps read these) ------------------------------


def ps_fields(meta: AgentMeta) -> dict[str, Any]:
    """Spend against budget and context against window, from an agent's registry meta."""
    return {"budget": meta.budget, "context": meta.context}


def budget_cell(row: dict[str, Any]) -> str:
    """``$0.0120/$0.0100 (120%)``, ``team 85%`` or ``-``."""
    cells = []
    for key, figures in _figures(row):
        parts = []
        usd, usd_limit = _number(figures.get("usd")), _number(figures.get("usd_limit"))
        if usd_limit:
            parts.append(f"${_usd(usd or 0.0)}/${_usd(usd_limit)}")
        tokens, tokens_limit = _number(figures.get("tokens")), _number(figures.get("tokens_limit"))
        if tokens_limit:
            parts.append(f"{_k(tokens or 0)}/{_k(tokens_limit)} tok")
        share = _number(figures.get("share"))
        shown = "?" if share is None else f"{share * 100:.0f}%"
        prefix = "team " if key == "team" else ""
        cells.append(f"{prefix}{' '.join(parts)} ({shown})")
    return "; ".join(cells) or "-"


def context_cell(row: dict[str, Any]) -> str:
    """``41k/200k (20%)`` or ``-``."""
    figures = _context(row)
    if figures is None:
        return "-"
    tokens, window = figures
    return f"{_k(tokens)}/{_k(window)} ({tokens / window * 100:.0f}%)"


def budget_share(row: dict[str, Any]) -> float | None:
    """The larger share spent of the agent's and the team's budgets, or None without one."""
    shares = [s for _, f in _figures(row) if (s := _number(f.get("share"))) is not None]
    return max(shares) if shares else None


def context_share(row: dict[str, Any]) -> float | None:
    """Context in use against the window, or None before the first turn."""
    figures = _context(row)
    return None if figures is None else figures[0] / figures[1]


_PAUSED_BY = {"agent": "budget", "team": "team budget"}


def paused_reason(budget: object) -> str | None:
    """``budget``, ``team budget`` or both: which budgets pause the agent, from its
    registry meta's ``budget`` document (``paused_by``), for beside a ``paused`` state."""
    by = budget.get("paused_by") if isinstance(budget, dict) else None
    if not isinstance(by, list):
        return None
    names = [_PAUSED_BY[b] for b in _PAUSED_BY if b in by]
    return ", ".join(names) or None


def held_reason(budget: object) -> str | None:
    """``held for bob's turn (team budget)``: an agent whose turn was stopped for the team
    budget by the others' turns in progress claims nothing until those end (budget_watch
    .hold), while its state stays ``ready``; from its registry meta's ``budget`` document
    (``held_for``), for beside a ``ready`` state."""
    held = budget.get("held_for") if isinstance(budget, dict) else None
    if not isinstance(held, list):
        return None
    # any process may write the registry: only names an agent can have are shown
    names = [n for n in held if isinstance(n, str) and AGENT_NAME_RE.fullmatch(n)]
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    turns = "turn" if len(names) == 1 else "turns"
    return f"held for {shown}'s {turns} (team budget)"


# The registry's meta is JSON that any process may write (plain SQL): its budget and
# context documents are read field by field, and a figure that is not a finite number of
# zero or more is not shown (a text `share` ended `ps` with a traceback and blanked `top`).


def _figures(row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    budget = row.get("budget")
    if not isinstance(budget, dict):
        return []
    return [(k, f) for k in ("agent", "team") if isinstance(f := budget.get(k), dict)]


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    value = float(x) if not isinstance(x, int) or abs(x) < 1e300 else 1e300
    return value if math.isfinite(value) and value >= 0 else None


def _context(row: dict[str, Any]) -> tuple[int, int] | None:
    context = row.get("context")
    if not isinstance(context, dict):
        return None
    tokens, window = context.get("tokens"), context.get("window")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (tokens, window)):
        return None
    assert isinstance(tokens, int)
    assert isinstance(window, int)
    return (tokens, window) if window > 0 and tokens >= 0 else None


def _usd(x: Any) -> str:
    """Dollars as spend is read (``0.0120``); a budget too large to be one (a roster's
    ``usd: 1e20`` for "no limit, but counted") without the float's noise: ``1e+20``, not
    ``100000000000000000000.0000`` (1e23's digits are not even its own)."""
    value = float(x or 0)
    if value < 10_000:
        return f"{value:.4f}"
    if value < 1e12:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _k(n: Any) -> str:
    value = int(n or 0)
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return str(value)
