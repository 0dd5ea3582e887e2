from __future__ import annotations

import sys

from orchestrator.cli import main

code = main()
# `python -m` (not the installed `octy-orchestrate` script) ends the process by SIGINT,
# whatever main() returned, once a KeyboardInterrupt has escaped an exec() of source text
# anywhere in it (CPython's Modules/main.c marks it unhandled): a signal landing while a
# dataclass or namedtuple was being made in an import. `demo` stopped in its first
# moments exited -2 instead of 130. Evaluating source text again clears the mark.
exec("")
sys.exit(code)
