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

What the CLI reads from its own environment only and must keep (``CLI_NEEDS``: a gateway's
``ANTHROPIC_CUSTOM_HEADERS``, a user part in ``ANTHROPIC_BASE_URL``, the mTLS key's
passphrase, a cloud's credentials) reached its commands too. Now each of its commands, and
its hooks, runs through a shell prefix (:func:`shell_prefix`) that unsets those names
first (tests/team/test_gateway_credentials.py). Not ``OTEL_EXPORTER_OTLP_*HEADERS``: the
CLI keeps every ``OTEL_*`` from its commands itself.

How the CLI uses ``CLAUDE_CODE_SHELL_PREFIX`` (2.1.332, measured): a command, sandboxed or
not, runs as ``'<head>' <tail> '<command>'`` in its shell (inside the sandbox for Bash),
where head is the prefix up to its last `` -`` (quoted as one word) and tail the rest,
unquoted; a hook the same way under ``/bin/sh -c`` (only if the prefix starts with ``/``);
a stdio MCP server is spawned with the WHOLE prefix as its program, the server's command
line quoted as its one argument. The prefix must run no file an agent could rewrite (hooks
and MCP servers run outside the sandbox): a script on disk could be rewritten by an agent
with ``sandbox: false``, and a sealed memory file like the launcher's
(``/proc/<supervisor>/fd/<n>``) does not exist inside the sandbox (its own pid namespace
and ``/proc``), nor can one be inherited (the CLI marks every inherited descriptor
close-on-exec). So the head is ``/proc/self/exe``: the very shell that runs the command
(the child it forks resolves the link to its own program), given ``-c :``; the tail then
unsets the names in that shell and ``eval``s the command there: no file beyond the shell
the CLI runs anyway, the command's exit status and signals its own. The cost: one start
of that shell per command.

The price: a stdio MCP server cannot start under such a prefix (its program would be the
whole string), so an agent whose working folder has a ``.mcp.json`` or whose project
settings enable plugins gets none of that form. How the CLI uses a prefix (2.1.332, its
code): a Bash command runs as ``'<head>' <tail> '<command>'``, or ``'<prefix>' '<command>'``
when the prefix has no `` -``; a hook the same under ``/bin/sh -c``, only for a prefix
starting with ``/``; a stdio MCP server is spawned, with no shell, as the program
``<prefix>`` given one argument, its command line shell-quoted. So one prefix for all three
must be the whole path of a program that runs its one argument as shell code with the
names unset: no system program does (a shell needs ``-c``), and a script on disk is a file
agents could rewrite. A sealed memory file does (:func:`sealed_prefix`), the launcher's
kind, but only where nothing runs in the sandbox (it cannot see ``/proc/<supervisor>``):
so an agent with ``sandbox: false`` (or no Bash) and MCP servers gets one, the CLI's shell
pinned (``CLAUDE_CODE_SHELL``) for the program to run commands with. A sandboxed one gets
no prefix; its sandboxed commands still lose the names, by the CLI's own sandbox setting
``credentials.envVars`` (``deny``: :func:`sandbox_denied`, given to every sandboxed agent;
measured, the CLI still sends the header), but its hooks and MCP servers, which run outside
the sandbox, keep the gap.

An agent whose ``env`` (or the supervisor's) sets ``CLAUDE_CODE_SHELL_PREFIX`` itself gets
ours chained in front of theirs: the names unset, then the command run through theirs as
the CLI would have run it (measured with a wrapper script, for a Bash command and a hook;
its MCP servers, if any, as above).

Not the CLI's own ``CLAUDE_CODE_SUBPROCESS_ENV_SCRUB``, though it closes that gap (measured
on 2.1.332: those variables leave the commands' env, the CLI still sends the header): it is
the CLI's isolation for CI runners, and it also creates empty ``package.json``, lock files,
``.npmrc``, ``.gitmodules``, ``.env*`` in every agent's cwd (``.gitconfig``, ``.netrc``,
``.bashrc``... in ``$HOME``), makes ``package.json`` and ``.env`` read-only to commands and
``scripts/``, ``.github/`` impossible to create, forces the permission mode to ``default``,
and runs even a ``sandbox: false`` agent's commands under bubblewrap (README).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.roster import AgentSpec, Roster
from orchestrator.secret_rules import looks_secret

MODEL_KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# Kept for the CLI: it strips its own sign-in from its commands (CLI_STRIPS), and
# the proxy is how it reaches the model at all. The endpoint (a URL that may hold a user
# part), a gateway's headers and OpenTelemetry's are read by the CLI from its environment
# only: blanked, a gateway team could not reach its model. So the shell prefix unsets the
# secret ones in its commands (prefix_env; README, "Secrets and agents' commands");
# OpenTelemetry's never reach a command (the CLI keeps OTEL_* from them, measured); the
# logs mask them all.
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
# _KEY_PASSPHRASE): the CLI presents it itself (the prefix unsets the secret ones in its commands).
_CLI_NEEDS_PREFIXES = ("CLAUDE_CODE_CLIENT_",)
# With Bedrock, Vertex or Foundry the CLI signs its requests with the cloud's own
# credentials.
_PROVIDERS = {
    "CLAUDE_CODE_USE_BEDROCK": ("AWS_",),
    "CLAUDE_CODE_USE_VERTEX": ("GOOGLE_", "CLOUDSDK_", "GCLOUD_"),
    "CLAUDE_CODE_USE_FOUNDRY": ("ANTHROPIC_FOUNDRY_",),
}
# What the CLI keeps from its commands, hooks and MCP servers itself (2.1.332, measured with
# a real Bash `env` and hook: tests/team/test_gateway_credentials.py): no prefix needed for
# it. Not its refresh token (CLAUDE_CODE_OAUTH_REFRESH_TOKEN): that one reaches them.
CLI_STRIPS = frozenset({"CLAUDE_CODE_OAUTH_TOKEN"})
KEY_FILE_MARK = ".model-key-"
PREFIX_ENV = "CLAUDE_CODE_SHELL_PREFIX"
# Where a project gives the CLI stdio MCP servers, which no prefix of ours can start.
MCP_FILE = ".mcp.json"
PROJECT_SETTINGS = (".claude/settings.json", ".claude/settings.local.json")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # what a shell's `unset` takes
_PROXIES = frozenset(p for n in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY") for p in (n, n.lower()))


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


def kept_from_commands(spec: AgentSpec, environ: Mapping[str, str]) -> list[str]:
    """Names of ``environ`` that look secret and that this agent's CLI keeps for itself (a
    gateway's headers, a URL's user part, a key's passphrase, a cloud's credentials): its
    shell prefix unsets them. Not what the roster's ``env`` gives the agent (its commands
    see that, as written), nor the proxies (commands reach the network through them), nor
    what the CLI keeps from its commands itself (``CLI_STRIPS``), nor a name a shell
    cannot unset."""
    if spec.inherit_secrets:
        return []
    gone = set(withheld(spec, environ))
    return sorted(
        name
        for name, value in environ.items()
        if value
        and name not in gone
        and name not in spec.env
        and name not in _PROXIES
        and name not in CLI_STRIPS
        and _NAME.match(name)
        and looks_secret(name, value)
    )


def commands_env(spec: AgentSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment this agent's commands see, for a program the supervisor runs on
    their behalf (the approvals hook's git, orchestrator/git_state.py): ``environ`` with
    the roster's ``env`` over it, less what the CLI gets empty (:func:`withheld`), what its
    commands are kept from (:func:`kept_from_commands`) and what the CLI strips itself. The
    gateway's secrets stayed in that git's environment (and any program it runs) before."""
    gone = {*withheld(spec, environ), *kept_from_commands(spec, environ), *CLI_STRIPS}
    return {k: v for k, v in {**environ, **spec.env}.items() if k not in gone}


def shell_prefix(names: Iterable[str], theirs: str = "") -> str:
    """The ``CLAUDE_CODE_SHELL_PREFIX`` that unsets ``names`` before each command (module
    docstring): ``'/proc/self/exe' -c :;unset A B;eval '<command>'`` once the CLI has
    added the command. Tabs, not spaces, between words: the CLI splits the prefix at its
    last space followed by a dash.

    With ``theirs`` (a prefix the roster or the supervisor's environment sets), the names
    are unset first and then the command runs through theirs as the CLI would run it
    (:func:`as_the_cli_applies`): ``…;unset A B;__octy_theirs(){ eval '<theirs> "$1"';};
    __octy_theirs '<command>'``, their program given the command as its one argument."""
    head = "/proc/self/exe -c\t:;unset\t" + "\t".join(names) + ";"
    theirs = theirs.strip()
    if not theirs:
        return head + "eval"
    run = _one_word(as_the_cli_applies(theirs, None) + ' "$1"')
    return head + f"__octy_theirs(){{\teval\t{run};}};__octy_theirs"


def as_the_cli_applies(prefix: str, command: str | None) -> str:
    """The command line the bundled CLI (2.1.332, its code) runs for ``command`` under
    ``prefix``: the part before the prefix's last " -" quoted as one word, the rest as
    written, then the command quoted as one word (left off when None); a prefix without
    " -" is quoted whole."""
    at = prefix.rfind(" -")
    line = f"{shlex.quote(prefix[:at])} {prefix[at + 1 :]}" if at > 0 else shlex.quote(prefix)
    return line if command is None else f"{line} {shlex.quote(command)}"


def _one_word(text: str) -> str:
    """``text`` as one shell word (POSIX sh: the hooks' ``/bin/sh`` too) with no " -" in it,
    so that the CLI's split at the last " -" stays the one in front of ``-c``."""
    return shlex.quote(text).replace(" -", "'\\ '-")


def prefix_env(
    spec: AgentSpec, environ: Mapping[str, str], cwd: Path, *, sandboxed: bool = True
) -> dict[str, str]:
    """``{CLAUDE_CODE_SHELL_PREFIX: ...}`` for this agent's CLI, or nothing when it keeps
    no secret from its commands. A prefix of theirs is chained: ours unsets the names,
    then the command runs through theirs (:func:`shell_prefix`).

    When its project may start stdio MCP servers, :func:`shell_prefix` would keep them
    from starting: then, if none of its commands runs in the sandbox (``sandboxed``
    false), a sealed program (:func:`sealed_prefix`) with the CLI's shell pinned;
    else nothing (its sandboxed commands lose the names by :func:`sandbox_denied`), nor
    when a prefix of theirs is set (used as given)."""
    names = kept_from_commands(spec, environ)
    if not names:
        return {}
    theirs = spec.env.get(PREFIX_ENV, environ.get(PREFIX_ENV, ""))
    if not _project_mcp(cwd):
        return {PREFIX_ENV: shell_prefix(names, theirs)}
    if sandboxed or theirs.strip():
        return {}
    return sealed_prefix(names, {**environ, **spec.env})


def sealed_prefix(names: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """For an agent whose commands, hooks and MCP servers all run outside the sandbox:
    ``CLAUDE_CODE_SHELL_PREFIX`` the path of a sealed in-memory program
    (``/proc/<supervisor>/fd/<n>``, the launcher's kind: no agent can change it) that
    unsets ``names`` and runs its one argument with the CLI's shell, pinned by
    ``CLAUDE_CODE_SHELL``. One path with no `` -`` serves all three: the CLI runs
    ``'<path>' '<command>'`` for a command and a hook, and spawns ``<path>`` with the
    server's command line, shell-quoted, as its one argument (2.1.332, its code; measured in
    tests/team/test_gateway_credentials.py). Nothing where no such program can be made, or
    no bash or zsh is found."""
    shell = cli_shell(env)
    if shell is None:
        return {}
    text = f'#!/bin/sh\nunset {" ".join(names)}\nexec {shlex.quote(shell)} -c "$1"\n'
    from orchestrator.launcher import sealed_program  # noqa: PLC0415 - structlog, lazy

    path = sealed_program(text, "octy-shell-prefix")
    return {} if path is None else {PREFIX_ENV: path, "CLAUDE_CODE_SHELL": shell}


def cli_shell(env: Mapping[str, str]) -> str | None:
    """The shell the CLI would run its Bash tool's commands with (2.1.332, its code):
    ``CLAUDE_CODE_SHELL`` or ``SHELL`` when it names an executable bash or zsh, else the
    bash (or zsh, first when ``SHELL`` is not bash) on ``PATH``."""
    for given in (env.get("CLAUDE_CODE_SHELL"), env.get("SHELL")):
        if given and ("bash" in given or "zsh" in given) and os.access(given, os.X_OK):
            return given
    order = ("bash", "zsh") if Path(env.get("SHELL", "")).name == "bash" else ("zsh", "bash")
    for name in order:
        found = shutil.which(name, path=env.get("PATH"))
        if found is not None:
            return found
    return None


def sandbox_denied(spec: AgentSpec, environ: Mapping[str, str]) -> list[dict[str, str]]:
    """The sandbox's ``credentials.envVars`` entries for this agent's ``--settings``: the
    names of :func:`kept_from_commands`, each ``deny`` (the CLI unsets them for every
    sandboxed command, 2.1.332, measured). Sandboxed commands then never see them, prefix
    or not, which covers the agents whose project starts MCP servers (no prefix); what the
    sandbox leaves out is hooks and MCP servers (they run outside it)."""
    return [{"name": name, "mode": "deny"} for name in kept_from_commands(spec, environ)]


def _project_mcp(cwd: Path) -> bool:
    """The project in ``cwd`` may give the CLI MCP servers: a non-empty ``.mcp.json``, or
    project settings that enable plugins (or cannot be read)."""
    try:
        if (cwd / MCP_FILE).read_text(encoding="utf-8-sig").strip():
            return True
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return True
    for name in PROJECT_SETTINGS:
        try:
            text = (cwd / name).read_text(encoding="utf-8-sig").strip()
            data = json.loads(text) if text else {}
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return True
        if not isinstance(data, dict) or data.get("enabledPlugins"):
            return True
    return False


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
