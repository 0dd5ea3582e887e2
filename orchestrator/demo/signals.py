"""SIGTERM and SIGHUP during the demo end it as Ctrl-C does: its folder is removed.

The supervisor takes the signals over while it runs (``anyio.open_signal_receiver``),
but not before it starts nor after it ends, when their default action ended Python at
once: no ``finally``, so a `demo` killed in its first second (a closed terminal, a
``timeout``) left ``/tmp/octy-demo-*`` behind. Ctrl-C was fine throughout: Python turns
SIGINT into KeyboardInterrupt. These two now do the same whenever the supervisor does
not hold them.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

STOPPING = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """What Ctrl-C would do now: Python's KeyboardInterrupt, or inside the event loop
    before the supervisor holds the signals, asyncio's handler, which cancels the main
    task (a KeyboardInterrupt raised in the loop instead ended it without stopping anyio's
    worker threads, and the process hung at exit waiting for them)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # Ctrl-C ignored (a background job): the stop signal still stops the demo
        raise KeyboardInterrupt


@contextlib.contextmanager
def stopped_like_ctrl_c() -> Iterator[Callable[[], None]]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt inside the block; the handlers found are
    back after it. Yields ``again``, which installs them again once the supervisor's
    signal receiver has put back the default action. A signal ignored when we started
    (``nohup``) stays ignored, as asked."""
    found = {s: signal.getsignal(s) for s in STOPPING}
    mine = [s for s, handler in found.items() if handler != signal.SIG_IGN]

    def again() -> None:
        for s in mine:
            signal.signal(s, _interrupt)

    again()
    try:
        yield again
    finally:
        for s, handler in found.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Inside the block SIGINT, SIGTERM and SIGHUP are only noted, so what the block does
    (removing the folder) is not cut short; one noted is a KeyboardInterrupt after it."""
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    wanted = (signal.SIGINT, *STOPPING)
    found = {s: signal.getsignal(s) for s in wanted}
    for s, handler in found.items():
        if handler != signal.SIG_IGN:
            signal.signal(s, note)
    try:
        yield
    finally:
        for s, handler in found.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if noted:
            raise KeyboardInterrupt
