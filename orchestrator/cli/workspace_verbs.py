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
    _options(
        actions.add_parser(
            "list",
            aliases=["ls"],
            help="list them (the default)",
            description="List the agents' worktrees: branch, base, commits ahead and behind, "
            "uncommitted files (what `workspaces` alone prints).",
        )
    )
    d = actions.add_parser("diff", help="what the agent's branch changed since its base")
    d.add_argument("agent", metavar="AGENT", help="the agent whose worktree to diff")
    _options(d)
    m = actions.add_parser(
        "merge",
        help="merge the agent's branch into its base (on a conflict, or files in the "
        "way that git does not track there, or replace refs/grafts/info/attributes in the "
        "repository: nothing changes, the paths are listed, exit 1)",
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
        "remove",
        help="remove the agent's worktree (its branch stays); refuses uncommitted work and "
        "commits on no branch (unless --force), and an agent its supervisor runs (stop it "
        "first)",
    )
    r.add_argument("agent", metavar="AGENT", help="the agent whose worktree to remove")
    r.add_argument(
        "--force",
        action="store_true",
        help="remove even with uncommitted work or commits on no branch (they are lost)",
    )
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
        type=common.roster_file,
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
                sys.stdout.write(_for_terminal(text))
        elif args.action == "merge":
            _merge(roster, args.agent, allow_team_files=args.allow_team_files, as_json=as_json)
        else:
            _refuse_while_running(roster, args.agent)
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


def _merge(roster: Roster, agent: str, *, allow_team_files: bool, as_json: bool) -> None:
    from orchestrator import workspace_ops as ops
    from orchestrator.redact import for_people

    try:
        commit = ops.merge(roster, agent, allow_team_files=allow_team_files)
    except errors.NothingToMerge as exc:  # not a failure: as git's "Already up to date."
        if as_json:
            common.emit_json(
                {
                    "ok": True,
                    "agent": agent,
                    "branch": exc.branch,
                    "base": exc.base,
                    "merged": False,
                    "message": exc.reason,
                }
            )
        else:
            print(for_people(f"{agent}: {exc.reason}"))
        return
    tree = ops.worktree_of(roster, agent)
    if as_json:
        common.emit_json(
            {
                "ok": True,
                "agent": agent,
                "branch": tree.branch,
                "base": tree.base,
                "merged": True,
                "commit": commit,
            }
        )
    else:
        print(for_people(f"merged {tree.branch} into {tree.base} (now {commit[:12]})"))


def _for_terminal(text: str) -> str:
    """The agent's bytes, with every control but newline and tab made visible when a
    person's terminal shows them (a diff line could retitle or clear it). A pipe or a
    file gets git's text unchanged, for `git apply` and other tools."""
    from orchestrator.redact import escape_controls

    return escape_controls(text, multiline=True) if sys.stdout.isatty() else text


def _refuse_while_running(roster: Roster, agent: str) -> None:
    """AgentRunning while the team's supervisor runs ``agent``: removing the worktree
    under it made its next write create a plain folder there, and each restart then failed
    ("already exists") until the agent was marked failed (found by review)."""
    from orchestrator.lockfile import holder_pid
    from orchestrator.mailbox.opening import open_sync

    if agent not in roster.agents:
        return  # worktree_of says so, with the agents
    pid = holder_pid(roster.database)
    if pid is None:
        return
    state: str | None = None
    try:
        place = roster.database if roster.queue is None else roster.queue
        with open_sync(place, readonly=True, create=False) as mailbox:
            info = mailbox.agent(agent)
        state = None if info is None else str(info.state)
    except errors.OrchestratorError:
        state = None  # cannot tell: treat it as running
    if state not in {"stopped", "failed"}:
        raise errors.AgentRunning(agent, pid, state)


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
            str(r["branch"]) + (" (worktree not on it)" if r.get("off_branch") else ""),
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
    from orchestrator.redact import escape_controls

    for r in rows:
        if r.get("off_branch"):
            # Commits there are on no branch `merge` reads; `remove` could lose them.
            note = (
                f"{r['agent']}: its worktree is on {r['off_branch']}, not on {r['branch']} "
                f"({r['off_branch_commits']} commit(s) {r['branch']} lacks); `workspaces "
                f"merge {r['agent']}` merges only {r['branch']}"
            )
            print(f"note: {escape_controls(note)}")
