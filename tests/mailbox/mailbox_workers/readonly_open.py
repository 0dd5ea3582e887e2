"""Open a queue database this process may not write, and report what happened as JSON.

Tests run as root, and root ignores file permissions (CAP_DAC_OVERRIDE), so a
chmod alone would prove nothing. When running as root this script first
drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its own capability sets
(capset(2) through ctypes): from then on the kernel enforces the 0444 mode on
it exactly as for an ordinary user. It then opens the database with Mailbox
and tries to send.

    python readonly_open.py DB   ->  {"opened": bool, "error": class, "reason": str, ...}
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_dac_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    mask = ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def main(db: str) -> int:
    if os.geteuid() == 0:
        drop_dac_override()
    probe = {"can_write_file": os.access(db, os.W_OK, effective_ids=True)}
    try:
        with open(db, "r+b"):
            probe["open_for_write"] = True
    except PermissionError:
        probe["open_for_write"] = False

    from orchestrator import errors
    from orchestrator.mailbox import Mailbox

    result: dict[str, object] = {"probe": probe}
    try:
        with Mailbox(db) as mb:
            result["opened"] = True
            mb.send("user", "bob", "hi")
            result["sent"] = True
    except errors.DatabaseError as exc:
        result.update(error=type(exc).__name__, reason=exc.reason, path=exc.path)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
