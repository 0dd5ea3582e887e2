"""The claude-agent-sdk, imported in a background thread while the supervisor starts.

Importing the SDK takes most of a second on a quiet 2-core machine (its ``__init__``
imports ``mcp``: two protocol versions of pydantic models, ``mcp.server`` with starlette
and jsonschema), more than everything else `up` does before the team is operable
(issue 14.5). So the supervisor imports it in a thread, begun once its database is open:
meanwhile it waits for the model check, registers, logs ``supervisor_started`` and answers
``ps``/``down``. No claude process starts before the import is over (the supervisor
waits for :meth:`SdkImport.finished` before launching any agent), and an import that
fails is reported as :class:`~orchestrator.errors.SdkUnavailable` with what to do, not a
traceback. (Begun first thing in `up` instead, it only shares the CPU, under the GIL,
with the supervisor's own imports: the team was operable later and agents launched no
sooner. Measured, docs/benchmarks.md, issue 14.5.)

The runner (the modules of ours that use the SDK) is imported here too, after the SDK.
Modules both threads need (the queue, the roster) are safe to import from both sides:
Python's per-module import locks make the second thread wait for the first, and a
package's submodules are only reached through the package (checked: no import cycle
between our modules outside that parent-child one).
"""

from __future__ import annotations

import importlib
import threading
import time

import anyio.to_thread

from orchestrator import errors

MODULES = ("claude_agent_sdk", "orchestrator.runner")


class SdkImport:
    """One import of :data:`MODULES` in a daemon thread (a stop during it need not wait)."""

    def __init__(self, modules: tuple[str, ...] = MODULES) -> None:
        self.modules = modules
        self.error: errors.SdkUnavailable | None = None
        self.took_s: float | None = None  # the import's wall time, once over (logged)
        self._done = threading.Event()
        self._starting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sdk-import", daemon=True)

    @classmethod
    def begin(cls, modules: tuple[str, ...] = MODULES) -> SdkImport:
        return cls(modules).start()

    def start(self) -> SdkImport:
        """Begin the import (once: later calls do nothing)."""
        with self._starting:
            if self._thread.ident is None:
                self._thread.start()
        return self

    def _run(self) -> None:
        module = self.modules[0]
        began = time.monotonic()
        try:
            for module in self.modules:
                importlib.import_module(module)
        except Exception as exc:  # a broken install: said once, clearly, by the supervisor
            self.error = errors.SdkUnavailable(module, f"{type(exc).__name__}: {exc}")
        finally:
            self.took_s = time.monotonic() - began
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def finished(self) -> None:
        """Wait for the import without blocking the event loop; raise
        :class:`~orchestrator.errors.SdkUnavailable` if it failed. Cancellable: the thread
        waiting on it is abandoned, and ends with the import."""
        if not self._done.is_set():
            await anyio.to_thread.run_sync(self._done.wait, abandon_on_cancel=True)
        if self.error is not None:
            raise self.error
