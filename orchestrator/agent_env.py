"""What of the environment an agent's own commands see.

The SDK starts each claude CLI with the supervisor's whole environment under the agent's
``env`` (it layers ``options.env`` over ``os.environ``), and the CLI hands its environment
to every command its Bash runs: the operator's ``ANTHROPIC_API_KEY``, a ``GITHUB_TOKEN``,
``AWS_SECRET_ACCESS_KEY``... were one ``env`` away from any agent (found by review).

The CLI itself needs the model's endpoint and key, so the fix is the CLI's own scrub
(``CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1``): the CLI keeps its environment and removes from
what its commands get every variable that looks like a secret. Measured on CLI 2.1.332
with a real Bash: gone are ``ANTHROPIC_API_KEY``, ``MYSECRET_TOKEN``,
``AWS_SECRET_ACCESS_KEY``, a ``DATABASE_URL`` holding a password, and also the roster's
own ``A_ONLY_SECRET``/``A_API_TOKEN``; kept are ``A_PLAIN``, ``OCTY_AGENT``, ``OCTY_DB``,
``PATH``, ``HOME``. It is a name-and-value heuristic, not an allow list: a secret under a
harmless name (``FOO=hunter2``) still passes.

The scrub needs bubblewrap on Linux: without ``bwrap`` the CLI refuses to start ("bubblewrap
is required for subprocess env scrubbing"), so ``up`` checks first (:func:`problems`).
An agent opts out with ``CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: "0"`` in its roster ``env``.
"""

from __future__ import annotations

from orchestrator import sandbox
from orchestrator.roster import AgentSpec, Roster

SCRUB_ENV = "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"
# The CLI's own reading of a false switch (``0|false|no|off``, any case, trimmed).
_OFF = frozenset({"0", "false", "no", "off"})


def runs_commands(spec: AgentSpec) -> bool:
    """Only Bash starts processes: an agent with it in ``disallowed_tools`` has nothing to
    scrub for (and needs no bubblewrap). Bash merely left out of ``tools`` still counts:
    a permission mode may let it run (as for the sandbox)."""
    return "Bash" not in spec.disallowed_tools


def scrubbed(spec: AgentSpec) -> bool:
    """Whether this agent's commands get the scrubbed environment."""
    if not runs_commands(spec):
        return False
    value = spec.env.get(SCRUB_ENV)
    return value is None or value.strip().lower() not in _OFF


def cli_env(spec: AgentSpec) -> dict[str, str]:
    """Variables to set for the agent's CLI, under its roster ``env`` (which may override)."""
    return {SCRUB_ENV: "1"} if scrubbed(spec) else {}


def problems(roster: Roster) -> list[str]:
    """Why scrubbed agents cannot start here, with the fix. Sandboxed agents are already
    named by :func:`orchestrator.sandbox.problems` (same package), so only the others."""
    if "bubblewrap" not in sandbox.missing_programs():
        return []
    names = [n for n, s in roster.agents.items() if scrubbed(s) and not sandbox.sandboxed(s)]
    if not names:
        return []
    return [
        f"agents {', '.join(names)} run commands (Bash) and the claude CLI removes secrets "
        "from their environment, which needs bubblewrap (bwrap not found on PATH): install "
        f'it (apt-get install bubblewrap), or set `env: {{{SCRUB_ENV}: "0"}}` for those '
        "agents in agents.yaml to let their commands see every variable of the "
        "supervisor's environment, API keys included (see README, Security)"
    ]
