"""``octy-orchestrate``: one entry point, verbs registered by the modules below.

Each verb module exposes ``register(subparsers)``; it adds its parsers and sets
``func`` (taking the parsed namespace, returning an exit code) as a default.
Exit codes mean something (see :mod:`orchestrator.cli.common`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.cli import common

# Verb modules, in the order their verbs appear in --help.
_VERB_MODULES = (
    "orchestrator.cli.team_verbs",
    "orchestrator.cli.queue_verbs",
    "orchestrator.cli.model_verbs",
    "orchestrator.cli.log_verbs",
    "orchestrator.cli.demo_verbs",
    "orchestrator.cli.workspace_verbs",  # issue 11
    "orchestrator.cli.approval_verbs",  # issue 11
    "orchestrator.cli.top_verb",
    "orchestrator.cli.budget_verbs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octy-orchestrate",
        description="Run a team of Claude Code agents: supervision, a durable queue, "
        "peer-to-peer ask/reply.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 timeout, "
        "5 no supervisor running.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    import importlib

    for name in _VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a verb module not written yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return common.EXIT_USAGE
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except common.CliFailure as failure:
        common.report_failure(args, failure)
        return failure.exit_code
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
