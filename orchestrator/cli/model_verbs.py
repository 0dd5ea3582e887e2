"""``octy-orchestrate scripted-model``: run the scripted Messages API stand-in until stopped.

For manual runs and the offline demo: point a ``claude`` CLI at the printed
base URL and it talks to the script instead of Anthropic. Runs until SIGINT or
SIGTERM. With ``--json`` it prints one JSON document (``base_url``, ``port``)
once it listens, so a launcher can read the port; otherwise a banner and one
line per request on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from orchestrator import errors
from orchestrator.cli import common
from orchestrator.redact import for_people
from orchestrator.scripted_model import RecordedRequest, ScriptedModel, last_user_text

# The module docstring without its reST markup: --help is read in a terminal.
_DESCRIPTION = (__doc__ or "").replace("``", "")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scripted-model",
        help="serve a scripted stand-in for the Anthropic Messages API (tests, offline demo)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--script", type=Path, required=True, help="YAML script of rules (required; no default)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="append every request to this JSON-lines file (default: no record)",
    )
    common.add_common(parser, db=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.script.is_file():
        raise common.CliFailure(
            f"script not found: {args.script}", common.EXIT_NOT_FOUND, "not_found"
        )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # only a flag: the main thread does the stopping

    try:
        model = ScriptedModel(
            args.script,
            port=args.port,
            record=args.record,
            on_request=None if args.json else _print_request,
        )
        model.start()
    except errors.ScriptError as exc:
        raise common.CliFailure(str(exc), common.EXIT_ERROR, exc.code) from exc
    except OSError as exc:
        if exc.filename is not None:  # the --record file (a symlink is refused: ELOOP)
            raise common.CliFailure(
                f"cannot write the record {exc.filename}: {exc.strerror}", common.EXIT_ERROR
            ) from exc
        raise common.CliFailure(
            f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", common.EXIT_ERROR
        ) from exc
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _announce(args, model)
        while not stop.wait(0.5):
            pass
    finally:
        model.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not args.json:
        print(
            f"scripted model stopped after {_count(len(model.requests), 'request')}",
            file=sys.stderr,
        )
    return common.EXIT_OK


def _announce(args: argparse.Namespace, model: ScriptedModel) -> None:
    script = model.script
    env = {k: v for k, v in model.cli_env().items() if v and k != "no_proxy"}
    if args.json:
        common.emit_json(
            {
                "ok": True,
                "base_url": model.base_url,
                "port": model.port,
                "script": str(args.script),
                "env": env,
            }
        )
        return
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    print(
        f"scripted model (not Claude: answers come from {for_people(script.source)}, "
        f"{_count(len(script.rules), 'rule')}) listening on {model.base_url}\n"
        "point a claude CLI at it (fresh HOME advised, it writes ~/.claude):\n"
        f"  export {exports}\n"
        "stop with Ctrl-C",
        flush=True,
    )


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return port


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _print_request(req: RecordedRequest) -> None:
    said = last_user_text(req).replace("\n", " ")
    said = for_people(said if len(said) <= 60 else said[:57] + "...")  # peers' bodies
    print(
        f"#{req['seq']} {req['method']} {req['path']} -> {req['status']} "
        f"({req['answered_by']}) {said}",
        file=sys.stderr,
        flush=True,
    )
