"""What of the supervisor's environment an agent's own commands see.

The SDK starts each claude CLI with the supervisor's whole environment under the agent's
``env`` (it layers ``options.env`` over ``os.environ``), and the CLI hands its environment
to every command its Bash runs: the operator's ``ANTHROPIC_API_KEY``, a ``GITHUB_TOKEN``,
``AWS_SECRET_ACCESS_KEY``... were one ``env`` away from any agent (found by review).

So, unless the roster says ``inherit_secrets: true``:

- Every variable of the supervisor's whose name or value looks like a secret
  (:func:`orchestrator.secret_rules.looks_secret`, the rule the logs and ``config`` mask
  by) is given to the CLI empty. The roster's own ``env`` is given as
  written: the operator put it there for this agent.
- The model's key (``ANTHROPIC_API_KEY``, else ``ANTHROPIC_AUTH_TOKEN``) goes empty too,
  whoever set it, and reaches the CLI through its ``apiKeyHelper`` setting instead: a
  command that prints it from a 0600 file in the database's private folder, which the
  sandbox hides from agents' tools. The CLI runs the helper itself.

Known gap: what the CLI reads from its own environment only and must keep (``CLI_NEEDS``)
reaches its commands too: a gateway's ``ANTHROPIC_CUSTOM_HEADERS``, a user part in
``ANTHROPIC_BASE_URL``, the mTLS key's passphrase (tests/team/test_gateway_credentials.py).
Not ``OTEL_EXPORTER_OTLP_*HEADERS``: the CLI keeps every ``OTEL_*`` from its commands.

Not the CLI's own ``CLAUDE_CODE_SUBPROCESS_ENV_SCRUB``, though it closes that gap (measured
on 2.1.332: those variables leave the commands' env, the CLI still sends the header): it is
the CLI's isolation for CI runners, and it also creates empty ``package.json``, lock files,
``.npmrc``, ``.gitmodules``, ``.env*`` in every agent's cwd (``.gitconfig``, ``.netrc``,
``.bashrc``... in ``$HOME``), makes ``package.json`` and ``.env`` read-only to commands and
``scripts/``, ``.github/`` impossible to create, forces the permission mode to ``default``,
and runs even a ``sandbox: false`` agent's commands under bubblewrap (README).

Measured, not used: the CLI runs each command as ``$CLAUDE_CODE_SHELL_PREFIX '<command>'``
(inside the sandbox for Bash; a sandboxed command could not read the outer processes'
``/proc/*/environ``), so a prefix script that unsets these names and execs the CLI's shell
cleared them from a real Bash ``env`` while the CLI still sent the header. But the CLI also
runs hooks and stdio MCP servers through the prefix (its code), outside the sandbox; the prefix
must be one executable path (the CLI quotes all of a prefix before its last `` -`` as
one word; a stdio MCP server is spawned with the prefix as the program), so it
would be a file on disk that every agent runs: one an agent could rewrite (an unsandboxed
one can, as this user) would run its code in the others' hooks, the hole the sealed
launcher closed (orchestrator/launcher.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

from orchestrator.roster import AgentSpec, Roster
from orchestrator.secret_rules import looks_secret

MODEL_KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# Kept for the CLI: it strips its own sign-in from its commands (its code, 2.1.332), and
# the proxy is how it reaches the model at all. The endpoint (a URL that may hold a user
# part), a gateway's headers and OpenTelemetry's are read by the CLI from its environment
# only: blanked, a gateway team could not reach its model. The endpoint and the gateway's
# headers are a known gap (its commands see them too: README, "Secrets and agents'
# commands"); OpenTelemetry's never reach a command (the CLI keeps OTEL_* from them,
# measured); the logs mask them all.
CLI_NEEDS = frozenset(
    {
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        *(f"OTEL_EXPORTER_OTLP{s}_HEADERS" for s in ("", "_METRICS", "_LOGS", "_TRACES")),
        *(p for n in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY") for p in (n, n.lower())),
    }
)
# The client certificate for mTLS to a gateway (CLAUDE_CODE_CLIENT_CERT, _KEY,
# _KEY_PASSPHRASE): the CLI presents it itself. The passphrase is in the known gap too.
_CLI_NEEDS_PREFIXES = ("CLAUDE_CODE_CLIENT_",)
# With Bedrock, Vertex or Foundry the CLI signs its requests with the cloud's own
# credentials.
_PROVIDERS = {
    "CLAUDE_CODE_USE_BEDROCK": ("AWS_",),
    "CLAUDE_CODE_USE_VERTEX": ("GOOGLE_", "CLOUDSDK_", "GCLOUD_"),
    "CLAUDE_CODE_USE_FOUNDRY": ("ANTHROPIC_FOUNDRY_",),
}
KEY_FILE_MARK = ".model-key-"


def withheld(spec: AgentSpec, environ: Mapping[str, str]) -> list[str]:
    """Names of ``environ`` this agent's CLI gets empty (so its commands never see them)."""
    if spec.inherit_secrets:
        return []
    keep = set(CLI_NEEDS) | set(spec.env)
    prefixes = _CLI_NEEDS_PREFIXES + tuple(
        p
        for switch, names in _PROVIDERS.items()
        if _on(spec.env.get(switch, environ.get(switch, "")))
        for p in names
    )
    return sorted(
        name
        for name, value in environ.items()
        if name in MODEL_KEYS
        or (looks_secret(name, value) and name not in keep and not name.startswith(prefixes))
    )


def model_key(spec: AgentSpec, environ: Mapping[str, str]) -> str | None:
    """The key the CLI would have used (the agent's env first), if any."""
    for name in MODEL_KEYS:
        value = spec.env.get(name) or environ.get(name)
        if value:
            return value
    return None


def cli_env(spec: AgentSpec, environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(under the roster's env, over it): the blanks for :func:`withheld`, then the model's
    key variables blanked again over the roster's env (its key goes through the helper)."""
    if spec.inherit_secrets:
        return {}, {}
    under = dict.fromkeys(withheld(spec, environ), "")
    over = {name: "" for name in MODEL_KEYS if name in spec.env or name in environ}
    return under, over


def key_helper(spec: AgentSpec, roster: Roster, environ: Mapping[str, str]) -> str | None:
    """The ``apiKeyHelper`` command for this agent's CLI, the key written where it reads
    it; None when secrets are inherited or there is no key (a sign-in, Bedrock...)."""
    key = None if spec.inherit_secrets else model_key(spec, environ)
    if key is None:
        return None
    return f"cat {shlex.quote(str(write_key_file(spec, roster, key)))}"


def write_key_file(spec: AgentSpec, roster: Roster, key: str) -> Path:
    """The key in a 0600 file beside the database (a 0700 folder the sandbox hides),
    replaced whole (a link planted there is replaced, never written through) and removed
    when the supervisor exits. The CLI runs the helper again when its key expires, so the
    file lives as long as the session."""
    folder = roster.database.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f".{roster.database.name}{KEY_FILE_MARK}{spec.name}"
    fd, temp = tempfile.mkstemp(prefix=path.name + ".", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key)
    os.replace(temp, path)
    if path not in _WRITTEN:
        _WRITTEN.add(path)
        atexit.register(_remove, path)
    return path


_WRITTEN: set[Path] = set()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _on(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
