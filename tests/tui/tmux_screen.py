"""A real terminal for `top`'s tests: a tmux server of the test's own, `send-keys` to
type and `capture-pane` to read the screen a person would see."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TOP = (sys.executable, "-m", "orchestrator.cli", "top", "--interval", "0.3")


class Terminal:
    """One tmux server of our own (its socket in tmp_path), one window running `top`."""

    def __init__(
        self,
        folder: Path,
        env: dict[str, str],
        *,
        width: int,
        height: int,
        command: Sequence[str] = (),
    ) -> None:
        """``command``: what the window runs instead of `top --interval 0.3` (a shell
        around `top` that reports how it ended, say)."""
        self.socket = folder / f"tmux-{width}x{height}.sock"
        # The window's size is the pane's: COLUMNS/LINES from the test's own environment
        # (pytest-xdist's workers set 80x24) would win over it in Textual and draw `top`
        # for another screen.
        self.env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        self.tmux(
            "new-session", "-d", "-x", str(width), "-y", str(height), "-c", str(folder),
            "--", *(command or TOP),
        )  # fmt: skip
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def screen(self, *, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait(self, check: Callable[[str], object], what: str) -> str:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            if self.dead():  # top ended (a traceback, say): no point waiting
                raise AssertionError(f"top ended while waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")

    def title(self) -> str:
        """The pane's title, which an OSC 0/2 sequence written to the terminal sets."""
        return self.tmux("display-message", "-p", "#{pane_title}")

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-x", str(width), "-y", str(height))

    def flags(self) -> dict[str, str]:
        """What the terminal is left in: the alternate screen, mouse reporting, cursor."""
        names = ("alternate_on", "mouse_any_flag", "cursor_flag")
        shown = self.tmux("display-message", "-p", " ".join(f"#{{{n}}}" for n in names))
        return dict(zip(names, shown.split(), strict=True))

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "#{pane_pid}"))

    def dead(self) -> bool:
        return self.tmux("list-panes", "-F", "#{pane_dead}").strip() == "1"

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", str(self.socket), "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=False,
        )


def row_of(screen: str, name: str) -> list[str]:
    for line in screen.splitlines():
        cells = line.split()
        if cells[:1] == [name] and len(cells) > 3:
            return cells
    return []


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def hues(text: str) -> set[str]:
    """Colours in the SGR sequences of a capture that are not greys: a 256-colour index
    outside 16 and 232-255 (and black/white), a truecolor with r, g, b not all equal, or
    one of the eight basic colours but black and white."""
    found = set()
    for params in _SGR.findall(text):
        p = [int(x) if x.isdigit() else 0 for x in params.split(";")]
        i = 0
        while i < len(p):
            code = p[i]
            if code in (38, 48) and p[i + 1 : i + 2] == [5]:
                n = p[i + 2] if i + 2 < len(p) else 0
                if not (n in (0, 7, 8, 15, 16) or n >= 232):
                    found.add(f"{code};5;{n}")
                i += 3
            elif code in (38, 48) and p[i + 1 : i + 2] == [2]:
                rgb = p[i + 2 : i + 5]
                if len(set(rgb)) > 1:
                    found.add(f"{code};2;{rgb}")
                i += 5
            else:
                if 31 <= code <= 36 or 41 <= code <= 46 or 91 <= code <= 96:
                    found.add(str(code))
                i += 1
    return found
