"""What the PreToolUse hook (owned paths, approvals, subagent names; issue 11) costs per
tool call: one turn of N sequential Write calls by the real bundled claude CLI against the
scripted model, with the agent's hook and without.

    python bench/policy_hook.py [--calls 20] [--rounds 5] [--bash-kb N | --bash LINE]

``--bash-kb N``: the calls are Bash calls running ``: WORD`` (one word of N KB) under
``approve: ["Bash(git push:*)"]``, the hook reading each line (the approval rules' cost);
``--bash LINE``: Bash calls running LINE (in a fresh git repository), e.g. ``git status``
(the hook then also reads git's config and hooks there).

A program, not a test: it prints the median turn time of each and the difference per call.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402  (after the sys.path fix above)
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage  # noqa: E402

from orchestrator.policy import Policy  # noqa: E402
from orchestrator.roster import parse_roster  # noqa: E402
from orchestrator.scripted_model import ScriptedModel  # noqa: E402
from orchestrator.session_options import bundled_cli  # noqa: E402


async def no_approval(
    _tool: str, _input: dict[str, Any], _sub: str | None, _why: str = ""
) -> tuple[bool, str]:
    return True, "unused"


async def one_turn(options: ClaudeAgentOptions) -> float:
    async with ClaudeSDKClient(options) as client:
        started = time.perf_counter()
        await client.query("go")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                break
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bash-kb", type=int, default=0)
    parser.add_argument("--bash", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="octy-bench-"))
    (folder / "src").mkdir()
    agent = "{prompt: p, tools: [Write], owns: [src/]}"
    call: dict[str, Any] = {"name": "Write", "input": {"file_path": "src/x.txt", "content": "x"}}
    result, tool = "(?i)file", "Write"
    if args.bash_kb or args.bash:
        agent = '{prompt: p, tools: [Bash], approve: ["Bash(git push:*)"]}'
        line = (args.bash or ": " + "a" * (args.bash_kb * 1024)) + " && echo ran"
        call, result, tool = {"name": "Bash", "input": {"command": line}}, "ran", "Bash"
        subprocess.run(["git", "init", "-q", str(folder)], check=True)
    roster = parse_roster(f"agents:\n  a: {agent}\n", folder / "agents.yaml", {})
    rules = [
        {"tool_result": result, "times": args.calls - 1, "tool_use": call},
        {"tool_result": result, "text": "done"},
        {"match": "go", "tool_use": call},
    ]
    policy = Policy("a", lambda: roster, lambda: folder, no_approval)
    inside: list[float] = []
    decide = policy.pre_tool_use

    async def timed(*a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await decide(*a)
        finally:
            inside.append(time.perf_counter() - t0)

    policy.pre_tool_use = timed  # type: ignore[method-assign]
    results: dict[str, list[float]] = {"without hook": [], "with hook": []}
    for _ in range(args.rounds):
        for label, times in results.items():
            with ScriptedModel({"rules": rules}) as model:
                home = Path(tempfile.mkdtemp(prefix="octy-bench-home-"))
                env = {
                    **model.cli_env(),
                    "HOME": str(home),
                    "CLAUDE_CONFIG_DIR": str(home / ".claude"),
                }
                options = ClaudeAgentOptions(
                    cwd=folder,
                    env=env,
                    cli_path=bundled_cli(),
                    allowed_tools=[tool],
                    hooks=policy.hooks() if label == "with hook" else None,
                )
                times.append(anyio.run(one_turn, options))
                shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    base = statistics.median(results["without hook"])
    hooked = statistics.median(results["with hook"])
    what = "Write calls"
    if args.bash_kb or args.bash:
        what = f"Bash calls of {args.bash_kb} KB" if args.bash_kb else f"`{args.bash}` calls"
    print(f"{args.calls} {what} in one turn, median of {args.rounds} ({os.cpu_count()} cores)")
    print(f"  without hook: {base * 1000:.0f} ms   with hook: {hooked * 1000:.0f} ms")
    print(
        f"  hook cost per call: {(hooked - base) / args.calls * 1000:.2f} ms "
        f"(our check itself: median {statistics.median(inside) * 1000:.3f} ms "
        f"over {len(inside)} calls)"
    )


if __name__ == "__main__":
    main()
