"""Run `octy-orchestrate ARGS...` in this process after dropping root's power to
ignore file permissions (see readonly_open.py), so a 0444 database in a 0555
folder is really read-only to it, as to an ordinary user. Exits with the CLI's code.

    python readonly_cli.py ARGS...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from readonly_open import drop_dac_override

if __name__ == "__main__":
    if os.geteuid() == 0:
        drop_dac_override()
    from orchestrator.cli import main

    sys.exit(main(sys.argv[1:]))
