"""``octy-orchestrate demo``: a real team against a scripted model, offline.

The bundled roster (``team.yaml``) and script (``script.yaml``) live beside
this module; :func:`run_demo` starts them in a temporary folder. This package
is the only place outside the tests that knows the scripted model is there.
"""

from __future__ import annotations

from orchestrator.demo.run import QUESTION, SCRIPTED_LABEL, DemoOutcome, run_demo

__all__ = ["QUESTION", "SCRIPTED_LABEL", "DemoOutcome", "run_demo"]
