"""Budget verbs: ``resume`` (run a paused agent again, overriding its budget)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.cli.common import CliFailure

if TYPE_CHECKING:
    from orchestrator.agent_meta import AgentMeta


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "resume",
        help="run agents paused by a budget again, overriding it until its window rolls over",
        description="An agent over its budget (or the team's) is paused: it claims nothing "
        "and asks to it fail with budget_exceeded. `resume` overrides the budgets it is over "
        "until their window rolls over (for per: run, until the next `up`) and says which; "
        "spending is still counted. Without AGENT: every paused agent.",
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
    budget = row.get("budget") or {}
    cells = []
    for key in ("agent", "team"):
        figures = budget.get(key)
        if not isinstance(figures, dict):
            continue
        parts = []
        if figures.get("usd_limit"):
            parts.append(f"${_usd(figures.get('usd', 0))}/${_usd(figures['usd_limit'])}")
        if figures.get("tokens_limit"):
            parts.append(f"{_k(figures.get('tokens', 0))}/{_k(figures['tokens_limit'])} tok")
        share = f"{float(figures.get('share') or 0) * 100:.0f}%"
        prefix = "team " if key == "team" else ""
        cells.append(f"{prefix}{' '.join(parts)} ({share})")
    return "; ".join(cells) or "-"


def context_cell(row: dict[str, Any]) -> str:
    """``41k/200k (20%)`` or ``-``."""
    context = row.get("context") or {}
    tokens, window = context.get("tokens"), context.get("window")
    if not isinstance(tokens, int) or not isinstance(window, int) or window <= 0:
        return "-"
    return f"{_k(tokens)}/{_k(window)} ({tokens / window * 100:.0f}%)"


def budget_share(row: dict[str, Any]) -> float | None:
    """The larger share spent of the agent's and the team's budgets, or None without one."""
    budget = row.get("budget") or {}
    shares = [
        float(f.get("share") or 0)
        for f in (budget.get("agent"), budget.get("team"))
        if isinstance(f, dict)
    ]
    return max(shares) if shares else None


def context_share(row: dict[str, Any]) -> float | None:
    """Context in use against the window, or None before the first turn."""
    context = row.get("context") or {}
    tokens, window = context.get("tokens"), context.get("window")
    if not isinstance(tokens, int) or not isinstance(window, int) or window <= 0:
        return None
    return tokens / window


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
