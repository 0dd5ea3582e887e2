"""``workspaces``: agents' git worktrees — list, diff, merge, remove (issue 11)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator import errors
from orchestrator.cli import common, ps_view
from orchestrator.cli.common import CliFailure
from orchestrator.roster import Roster, load_roster


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "workspaces",
        help="agents' git worktrees: list, diff, merge, remove",
        description="Agents with 'workspace: worktree' work on their own branch "
        "(octy/<team>/<agent>) in <repo>/.octy/worktrees/<team>/<agent>. Without an "
        "action: list them (branch, base, commits ahead/behind, uncommitted files).",
    )
    _options(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    # `workspaces list` is what the verb's one-line help says and what `git worktree
    # list` taught everyone to type: the same as no action.
    _options(actions.add_parser("list", aliases=["ls"], help="list them (the default)"))
    d = actions.add_parser("diff", help="what the agent's branch changed since its base")
    d.add_argument("agent", metavar="AGENT", help="the agent whose worktree to diff")
    _options(d)
    m = actions.add_parser(
        "merge",
        help="merge the agent's branch into its base (on a conflict: nothing changes, "
        "the conflicting paths are listed, exit 1)",
    )
    m.add_argument("agent", metavar="AGENT", help="the agent whose branch to merge")
    m.add_argument(
        "--allow-team-files",
        action="store_true",
        help="merge even if the branch changes the roster, a prompt file, .claude/ or "
        ".mcp.json (refused by default: they would reach the running team)",
    )
    _options(m)
    r = actions.add_parser(
        "remove", help="remove the agent's worktree (its branch stays); refuses uncommitted work"
    )
    r.add_argument("agent", metavar="AGENT", help="the agent whose worktree to remove")
    r.add_argument("--force", action="store_true", help="remove even with uncommitted work")
    _options(r)
    p.set_defaults(func=cmd_workspaces)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output (one JSON document)",
    )
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        default=argparse.SUPPRESS,
        help="the roster (default ./agents.yaml)",
    )


def cmd_workspaces(args: argparse.Namespace) -> int:
    from orchestrator import workspace_ops as ops  # git work only when asked for

    roster = _load(getattr(args, "file", None))
    as_json = getattr(args, "json", False)
    try:
        if args.action in (None, "list", "ls"):
            rows = [s.to_dict() for s in ops.statuses(roster)]
            if as_json:
                common.emit_json({"ok": True, "workspaces": rows})
            else:
                _print_table(rows)
        elif args.action == "diff":
            text = ops.diff(roster, args.agent)
            if as_json:
                common.emit_json({"ok": True, "agent": args.agent, "diff": text})
            else:
                sys.stdout.write(text)
        elif args.action == "merge":
            commit = ops.merge(roster, args.agent, allow_team_files=args.allow_team_files)
            tree = ops.worktree_of(roster, args.agent)
            if as_json:
                common.emit_json(
                    {
                        "ok": True,
                        "agent": args.agent,
                        "branch": tree.branch,
                        "base": tree.base,
                        "commit": commit,
                    }
                )
            else:
                print(f"merged {tree.branch} into {tree.base} (now {commit[:12]})")
        else:
            tree = ops.remove(roster, args.agent, force=args.force)
            if as_json:
                common.emit_json(
                    {
                        "ok": True,
                        "agent": args.agent,
                        "removed": str(tree.path),
                        "branch": tree.branch,
                    }
                )
            else:
                print(
                    f"removed {tree.path}; branch {tree.branch} is kept "
                    f"(git branch -D {tree.branch} deletes it)"
                )
    except errors.MergeRefused as exc:
        if as_json:
            common.emit_json(
                {"ok": False, "error": exc.code, "message": str(exc), "paths": exc.paths}
            )
            return common.EXIT_ERROR
        raise CliFailure(str(exc), common.EXIT_ERROR, exc.code) from None
    except errors.WorkspaceError as exc:
        code = common.EXIT_NOT_FOUND if "no agent" in exc.reason else common.EXIT_ERROR
        raise CliFailure(str(exc), code, exc.code) from None
    except errors.GitError as exc:
        raise CliFailure(str(exc), common.EXIT_ERROR, exc.code) from None
    return common.EXIT_OK


def _load(path: Path | None) -> Roster:
    target = path or Path(common.DEFAULT_ROSTER)
    try:
        return load_roster(target)
    except errors.RosterErrors as exc:
        raise CliFailure(
            f"{len(exc.errors)} problem(s) in {target}:\n{exc}", common.EXIT_ERROR, exc.code
        ) from None


def _print_table(rows: list[dict[str, object]]) -> None:
    if not rows:
        print("no agent has 'workspace: worktree'")
        return
    header = ("AGENT", "BRANCH", "BASE", "AHEAD", "BEHIND", "UNCOMMITTED", "PATH")
    table = [header] + [
        (
            str(r["agent"]),
            str(r["branch"]),
            str(r["base"] or "-"),
            str(r["ahead"]),
            str(r["behind"]),
            str(len(r["uncommitted"])) if r["exists"] else "(not made)",  # type: ignore[arg-type]
            str(r["path"]),
        )
        for r in rows
    ]
    for line in ps_view.render(header, table[1:], colour=False):  # cells escaped
        print(line)
