"""Getting started: ``init`` (a commented starter agents.yaml) and ``demo`` (a team, offline)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator.cli import common
from orchestrator.cli.common import CliFailure
from orchestrator.redact import for_people, undecoded_shown


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented starter agents.yaml (and its prompts/) here",
        description="Write a starter team: a commented agents.yaml explaining every main key, "
        "and the prompt files it names (prompts/*.md, beside the roster). Refuses to "
        "overwrite existing files unless --force.",
    )
    p.add_argument(
        "-f",
        "--file",
        type=common.roster_file,
        default=None,
        help="where to write the roster (default ./agents.yaml; a folder, or a path ending "
        "in '/' (made if need be), means its agents.yaml)",
    )
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")
    common.add_common(p, db=False)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "demo",
        help="watch a small team ask and answer each other, offline (scripted model)",
        description="Start a three-agent team (coordinator, researcher, reviewer) in a temporary "
        "folder, with real claude CLI processes, the real queue and relay tools, against a "
        "local scripted model: no Claude API is called and no credentials are needed. The "
        "user asks the coordinator a question; it asks the researcher and the reviewer and "
        "answers. Then the team stops and the folder is removed.",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the team running after its answer, until `octy-orchestrate down` (or "
        "Ctrl-C), and keep its folder (default: stop and remove it)",
    )
    p.add_argument(
        "--seconds",
        type=_positive,
        default=60.0,
        metavar="N",
        help="give up if the team has not answered within N seconds (default 60; exit 4)",
    )
    p.add_argument(
        "--no-color", action="store_true", help="plain console output (default: colour on a tty)"
    )
    p.set_defaults(func=cmd_demo)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def cmd_init(args: argparse.Namespace) -> int:
    from orchestrator.starter import (
        StarterRefused,
        existing_files,
        roster_target,
        write_starter,
    )

    target = roster_target(args.file or Path(common.DEFAULT_ROSTER))
    # `config` and `up` refuse a team there (common.undecodable_folder, and the real path
    # its agents would run in): init wrote one and said to check and start it (review).
    problem = common.undecodable_folder(
        target, fix="rename its folder, or write the team elsewhere with -f"
    )
    real = os.path.realpath(target.absolute().parent)
    if problem is None and not common.is_utf8(real):
        problem = (
            f"the roster's folder {target.absolute().parent} is really "
            f"{undecoded_shown(real)}, which is not valid UTF-8 text: the claude CLI cannot "
            "start the team's agents there; write the team elsewhere with -f"
        )
    if problem is not None:
        raise CliFailure(problem, common.EXIT_USAGE, "invalid_path")
    existing = existing_files(target)
    if existing and not args.force:
        names = ", ".join(str(p) for p in existing)
        raise CliFailure(
            f"not overwriting {names}; use --force to replace, or -f OTHER.yaml to write elsewhere",
            common.EXIT_ERROR,
            "exists",
        )
    try:
        written = write_starter(target)
    except StarterRefused as exc:
        # "Remove it" only when something is in the way: a folder that cannot be made on a
        # read-only file system is not there to remove (it said so).
        fix = "remove it, or write elsewhere" if os.path.lexists(exc.path) else "write elsewhere"
        raise CliFailure(
            f"not writing {exc.path}: it {exc.reason}; {fix} with -f",
            common.EXIT_ERROR,
            "refused",
        ) from None
    if args.json:
        common.emit_json({"ok": True, "written": [str(p) for p in written]})
        return common.EXIT_OK
    print(for_people("wrote " + ", ".join(str(p) for p in written)))
    flag = "" if target == Path(common.DEFAULT_ROSTER) else f" -f {target}"
    print(
        for_people(
            f"next: read the comments in {target}, check it with `octy-orchestrate "
            f"config{flag}`, start the team with `octy-orchestrate up{flag}`"
        )
    )
    return common.EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    # The demo's team lives in a folder made under TMPDIR: `up`'s rule for a team's folder
    # applies (common.undecodable_folder). A TMPDIR named with a byte that is not UTF-8
    # ended the demo in a traceback (UnicodeEncodeError registering its supervisor).
    temporary = tempfile.gettempdir()
    problem = common.undecodable_folder(
        Path(temporary),
        what="the temporary folder",
        fix="set TMPDIR to a folder whose path is UTF-8 text",
    )
    real = os.path.realpath(temporary)
    if problem is None and not common.is_utf8(real):
        # A TMPDIR that is a symlink to such a folder passed, and every agent failed to
        # start: the claude CLI runs where its folder really is (`Can't access working
        # directory`, measured).
        problem = (
            f"the temporary folder {temporary} is really {undecoded_shown(real)}, which is "
            "not valid UTF-8 text: the claude CLI cannot start the demo's agents there; set "
            "TMPDIR to a folder whose real path is UTF-8 text"
        )
    if problem is not None:
        raise CliFailure(problem, common.EXIT_USAGE, "invalid_path")
    from orchestrator.demo import run_demo

    outcome = run_demo(
        keep=args.keep,
        seconds=args.seconds,
        console=sys.stdout,
        colour=False if args.no_color else None,
    )
    if outcome.answer is not None:
        return common.EXIT_OK
    if outcome.interrupted:
        return 130
    if outcome.timed_out:
        return common.EXIT_TIMEOUT
    return common.EXIT_ERROR
