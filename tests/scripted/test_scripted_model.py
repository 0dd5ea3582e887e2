"""The scripted model: the Messages API stand-in the CLI tests and the demo run against.

Plain HTTP tests pin the wire format and the script language; the `cli` tests
run the real bundled claude CLI through ClaudeSDKClient against it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ResultMessage,
    TextBlock,
    create_sdk_mcp_server,
    tool,
)

from orchestrator.scripted_model import (
    FAKE_API_KEY,
    Script,
    ScriptedModel,
    ScriptError,
    conversation,
    last_user_text,
    tool_results,
    tools_offered,
)

ONE_TOOL = [{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}]


# --- plain HTTP helpers ---------------------------------------------------------------------


def call(
    model: ScriptedModel, path: str, body: Any = None, method: str = "POST", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(
            method, path, body=data, headers={"content-type": "application/json", **headers}
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def ask(text: str | list[dict[str, Any]], *, stream: bool = False, **fields: Any) -> dict[str, Any]:
    """A messages request body like the CLI's: tools offered unless told otherwise."""
    body: dict[str, Any] = {
        "model": "claude-test-1",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "You are a test agent."}],
        "tools": ONE_TOOL,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }
    body.update(fields)
    return body


def answer(
    server: ScriptedModel, text: str | list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    status, _, raw = call(server, "/v1/messages?beta=true", ask(text, **fields))
    assert status == 200, raw
    result: dict[str, Any] = json.loads(raw)
    return result


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def model_for(rules: list[dict[str, Any]], **script: Any) -> ScriptedModel:
    return ScriptedModel({"rules": rules, **script}).start()


# --- the wire format ------------------------------------------------------------------------


def test_unknown_paths_get_a_404_in_the_api_error_shape(scripted_model: Any) -> None:
    """Anything but the known endpoints is a 404 with the API's error body, and is recorded."""
    model = scripted_model([])
    for method, path in (("GET", "/v1/other"), ("POST", "/v1/complete"), ("GET", "/v1/messages")):
        status, headers, raw = call(model, path, method=method)
        assert status == 404
        assert headers["Content-Type"] == "application/json"
        body = json.loads(raw)
        assert body["type"] == "error"
        assert body["error"]["type"] == "not_found_error"
        assert path in body["error"]["message"]
    assert [(r["method"], r["path"], r["status"]) for r in model.requests] == [
        ("GET", "/v1/other", 404),
        ("POST", "/v1/complete", 404),
        ("GET", "/v1/messages", 404),
    ]


def test_non_streaming_text_answer_is_one_message_body(scripted_model: Any) -> None:
    """stream=false gets a complete message: ids, role, content, stop_reason, usage."""
    model = scripted_model([{"match": "hi", "text": "hello back"}])
    body = answer(model, "hi")
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["model"] == "claude-test-1"
    assert body["content"] == [{"type": "text", "text": "hello back"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] > 0
    assert body["usage"]["output_tokens"] > 0


def test_models_list_and_a_wrong_key_refused_everywhere(scripted_model: Any) -> None:
    """GET /v1/models lists a model (what `up` checks a key with); with `api_key` in the
    script, any other key gets 401 authentication_error on every endpoint."""
    status, _, raw = call(scripted_model([]), "/v1/models", method="GET")
    assert status == 200
    assert json.loads(raw)["data"][0]["type"] == "model"
    locked = scripted_model({"api_key": "sk-right", "default": {"text": "x"}})
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/messages")):
        status, _, raw = call(locked, path, ask("hi") if method == "POST" else None, method=method)
        assert status == 401
        assert json.loads(raw)["error"]["type"] == "authentication_error"


def test_usage_figures_are_reported_as_scripted(scripted_model: Any) -> None:
    """A rule's `usage` replaces the estimate, streamed or not (the CLI prices turns by it)."""
    model = scripted_model([{"text": "ok", "usage": {"input_tokens": 1234, "output_tokens": 56}}])
    assert answer(model, "hi")["usage"]["input_tokens"] == 1234
    assert answer(model, "hi")["usage"]["output_tokens"] == 56
    _, _, raw = call(model, "/v1/messages", ask("hi", stream=True))
    seen = dict(events(raw))
    assert seen["message_start"]["message"]["usage"]["input_tokens"] == 1234
    assert seen["message_delta"]["usage"]["output_tokens"] == 56


def test_the_cache_write_split_and_inference_geo_are_reported_as_scripted(
    scripted_model: Any,
) -> None:
    """`cache_creation_1h_input_tokens` and `inference_geo` become the API's `cache_creation`
    split and `inference_geo`, streamed or not (the CLI prices both); unscripted, neither."""
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 1000,
        "cache_creation_1h_input_tokens": 400,
        "inference_geo": "us",
    }
    model = scripted_model([{"match": "split", "text": "ok", "usage": usage}])
    split = {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}
    plain = answer(model, "split")["usage"]
    assert (plain["cache_creation"], plain["inference_geo"]) == (split, "us")
    _, _, raw = call(model, "/v1/messages", ask("split", stream=True))
    start = dict(events(raw))["message_start"]["message"]["usage"]
    assert (start["cache_creation"], start["inference_geo"]) == (split, "us")
    assert not {"cache_creation", "inference_geo"} & set(answer(model, "other")["usage"])


def test_tool_use_answer_has_unique_ids_and_filled_input(scripted_model: Any) -> None:
    """Tool calls get fresh toolu_ ids and the match's groups in their input (stop: tool_use)."""
    model = scripted_model(
        [
            {
                "match": r"add (\d+) to (?P<list>\w+)",
                "text": "On it.",
                "tool_use": [
                    {"name": "append", "input": {"list": "{list}", "items": ["{1}", "x{1}"]}},
                    {"name": "count", "input": {"nested": {"of": "{list}"}, "n": 3}},
                ],
            }
        ]
    )
    first = answer(model, "please add 42 to groceries")
    second = answer(model, "please add 7 to chores")
    assert first["stop_reason"] == "tool_use"
    text, append, count = first["content"]
    assert text == {"type": "text", "text": "On it."}
    assert append["name"] == "append"
    assert append["input"] == {"list": "groceries", "items": ["42", "x42"]}
    assert count["input"] == {"nested": {"of": "groceries"}, "n": 3}
    ids = [b["id"] for b in first["content"][1:] + second["content"][1:]]
    assert all(i.startswith("toolu_") for i in ids)
    assert len(set(ids)) == 4


def test_stream_splits_text_and_tool_json_over_many_deltas(scripted_model: Any) -> None:
    """The SSE stream has the API's event order and several deltas per block, which add up."""
    text = "A fairly long answer that cannot fit in a single delta, with ünïcödé."
    arguments = {"path": "/tmp/some/long/file/name.txt", "lines": [1, 2, 3]}
    model = scripted_model([{"text": text, "tool_use": {"name": "Read", "input": arguments}}])
    status, headers, raw = call(model, "/v1/messages", ask("go", stream=True))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    seen = events(raw)
    names = [name for name, _ in seen]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in seen)
    starts = [d for n, d in seen if n == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    assert starts[1]["content_block"]["id"].startswith("toolu_")
    text_deltas = [
        d["delta"]["text"] for n, d in seen if n == "content_block_delta" and d["index"] == 0
    ]
    json_deltas = [
        d["delta"]["partial_json"]
        for n, d in seen
        if n == "content_block_delta" and d["index"] == 1
    ]
    assert len(text_deltas) > 3
    assert len(json_deltas) > 1
    assert "".join(text_deltas) == text
    assert json.loads("".join(json_deltas)) == arguments
    assert seen[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert seen[-2][1]["usage"]["output_tokens"] > 0


def test_count_tokens_answers_without_using_the_script(scripted_model: Any) -> None:
    """POST /v1/messages/count_tokens returns input_tokens and leaves rules' use counts alone."""
    model = scripted_model([{"text": "once", "times": 1}])
    status, _, raw = call(model, "/v1/messages/count_tokens?beta=true", ask("count me"))
    assert status == 200
    assert json.loads(raw)["input_tokens"] > 0
    assert answer(model, "now answer")["content"][0]["text"] == "once"


def test_error_rule_answers_with_status_and_api_error_shape(scripted_model: Any) -> None:
    """An error rule answers with its HTTP status; the type defaults from the status."""
    model = scripted_model(
        [
            {"match": "busy", "error": {"status": 529}},
            {"match": "broken", "error": {"status": 500, "type": "api_error", "message": "boom"}},
        ]
    )
    status, _, raw = call(model, "/v1/messages", ask("busy?", stream=True))
    assert status == 529
    assert json.loads(raw)["error"]["type"] == "overloaded_error"
    status, _, raw = call(model, "/v1/messages", ask("broken?"))
    assert status == 500
    assert json.loads(raw) == {"type": "error", "error": {"type": "api_error", "message": "boom"}}


# --- the script language ------------------------------------------------------------------


def test_rules_are_tried_in_order_and_times_exhausts_a_rule(scripted_model: Any) -> None:
    """The first matching rule answers; a rule with times: N steps aside after N uses."""
    model = scripted_model(
        {
            "rules": [
                {"name": "first", "match": "hello", "times": 2, "text": "first"},
                {"name": "second", "match": "hello", "text": "second"},
                {"name": "never", "match": "hello", "text": "never"},
            ],
            "default": {"text": "fallback"},
        }
    )
    said = [answer(model, "hello")["content"][0]["text"] for _ in range(4)]
    assert said == ["first", "first", "second", "second"]
    assert answer(model, "bye")["content"][0]["text"] == "fallback"
    assert [r["answered_by"] for r in model.requests] == [
        "first",
        "first",
        "second",
        "second",
        "default",
    ]
    assert model.playbook.uses() == {"first": 2, "second": 2, "never": 0}


def test_agent_and_model_conditions_pick_out_one_agent(scripted_model: Any) -> None:
    """`agent` is searched in the system prompt, `model` in the model name."""
    model = scripted_model(
        [
            {"agent": "You are alice", "text": "alice here"},
            {"model": "haiku", "text": "fast model"},
            {"text": "anyone"},
        ]
    )
    alice = answer(model, "hi", system="Intro. You are alice, a tester.")
    haiku = answer(model, "hi", model="claude-haiku-9")
    other = answer(model, "hi")
    assert [b["content"][0]["text"] for b in (alice, haiku, other)] == [
        "alice here",
        "fast model",
        "anyone",
    ]


def test_match_reads_the_latest_user_message_without_system_reminders(scripted_model: Any) -> None:
    """A trailing system-role message is skipped; <system-reminder> text never matches."""
    model = scripted_model(
        [{"match": "commit", "text": "saw commit"}, {"match": "real (\\w+)", "text": "saw {1}"}]
    )
    messages = [
        {"role": "user", "content": "old question about commit"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\nEnd commit messages with X\n</system-reminder>\n",
                },
                {"type": "text", "text": "the real question"},
            ],
        },
        {"role": "system", "content": "environment notes mentioning commit"},
    ]
    body = answer(model, "unused", messages=messages)
    assert body["content"][0]["text"] == "saw question"
    assert last_user_text(model.requests[-1]) == "the real question"


def test_tool_result_rule_groups_number_on_after_match_groups(scripted_model: Any) -> None:
    """A tool_result condition searches tool results; its groups follow `match`'s in numbering."""
    model = scripted_model(
        [
            {
                "match": "(\\w+) done",
                "tool_result": "sum=(?P<sum>\\d+) of (\\d+)",
                "text": "{1}: {2} ({sum}) from {3}; {9} stays",
            }
        ]
    )
    content: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "sum=10 of 4"}],
        },
        {"type": "text", "text": "adding done"},
    ]
    assert answer(model, content)["content"][0]["text"] == "adding: 10 (10) from 4; {9} stays"
    assert tool_results(model.requests[-1]) == [
        {"tool_use_id": "toolu_1", "content": "sum=10 of 4", "is_error": False}
    ]
    assert answer(model, "adding done")["content"][0]["text"].startswith("(scripted model")


def test_side_requests_get_a_side_reply_and_never_consume_rules(scripted_model: Any) -> None:
    """A request offering no tools (the CLI's title request) is answered aside from the script."""
    model = scripted_model(
        {"rules": [{"text": "main answer", "times": 1}], "side_reply": "Title from script"}
    )
    title_schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["title"],
    }
    structured = answer(
        model,
        "<session>\nhello\n</session>",
        tools=[],
        output_config={"format": {"type": "json_schema", "schema": title_schema}},
    )
    plain = answer(model, "summarise", tools=[])
    assert json.loads(structured["content"][0]["text"]) == {"title": "Title from script"}
    assert plain["content"][0]["text"] == "Title from script"
    assert answer(model, "real turn")["content"][0]["text"] == "main answer"
    assert [r["side"] for r in model.requests] == [True, True, False]
    assert model.requests_matching("hello") == []
    assert len(model.requests_matching("hello", side=True)) == 1


def test_a_side_rule_answers_only_side_requests(scripted_model: Any) -> None:
    """`side: true` scripts the CLI's side requests and leaves the agent's turns alone."""
    model = scripted_model([{"side": True, "text": "scripted title"}, {"text": "turn"}])
    assert answer(model, "x", tools=[])["content"][0]["text"] == "scripted title"
    assert answer(model, "x")["content"][0]["text"] == "turn"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            {"rules": [{"mach": "x", "text": "y"}]},
            "rules[0] key 'mach': unknown key; did you mean 'match'?",
        ),
        (
            {"rules": [{"name": "r", "text": "a", "error": {"status": 529}}]},
            "r key 'error': an error answer",
        ),
        ({"rules": [{"match": "("}]}, "rules[0] key 'match': bad regular expression"),
        ({"rules": [{"match": "x"}]}, "rules[0]: needs an answer"),
        ({"rules": [{"text": "x", "times": 0}]}, "key 'times': must be a whole number >= 1"),
        ({"rules": [{"error": {"status": 200}}]}, "'status' must be an HTTP error status"),
        ({"rules": [{"tool_use": [{"input": {}}]}]}, "each tool call needs a 'name'"),
        ({"rule": []}, "<dict> key 'rule': unknown key; did you mean 'rules'?"),
        ({"default": {"delay": -1, "text": "x"}}, "default key 'delay'"),
        ({"default": {"text": "x", "usage": {"input_tokens": -1}}}, "default key 'usage'"),
        ({"default": {"text": "x", "usage": {"tokens": 1}}}, "key 'tokens': unknown key"),
        (
            {"default": {"text": "x", "usage": {"cache_creation_1h_input_tokens": 1}}},
            "cannot exceed it (1 > 0)",
        ),
        ({"default": {"text": "x", "usage": {"inference_geo": 1}}}, "'inference_geo' must be"),
    ],
)
def test_script_mistakes_are_script_errors_naming_rule_and_key(
    script: dict[str, Any], message: str
) -> None:
    """Every mistake in a script is a ScriptError that says where and what."""
    with pytest.raises(ScriptError) as caught:
        Script.from_dict(script)
    assert message in str(caught.value)


def test_script_files_load_and_bad_files_name_the_file(tmp_path: Path) -> None:
    """Script.load reads YAML; unreadable or invalid files raise a ScriptError naming the file."""
    script = Script.load(Path(__file__).parent / "scripts" / "conversation.yaml")
    assert script.rules[0].label == "long-answer"
    assert script.default.text == "I have no script for that."
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"broken\.yaml: not valid YAML"):
        Script.load(broken)
    with pytest.raises(ScriptError, match=r"missing\.yaml: cannot read the script"):
        Script.load(tmp_path / "missing.yaml")
    # Regression: a binary file (a queue database given by mistake) ended
    # `scripted-model --script` in a UnicodeDecodeError traceback.
    binary = tmp_path / "team.db"
    binary.write_bytes(b"SQLite format 3\x00\xf8\xff\x00")
    with pytest.raises(ScriptError, match=r"team\.db: not UTF-8 text"):
        Script.load(binary)


# --- recording and lifecycle ------------------------------------------------------------------


def test_the_record_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    """Regression: --record opened its file following symlinks: a link planted where the
    record goes had every request (prompts, messages) appended to the link's target."""
    target = tmp_path / "bashrc"
    target.write_text("precious\n", encoding="utf-8")
    record = tmp_path / "requests.jsonl"
    record.symlink_to(target)
    model = ScriptedModel({"rules": [{"text": "ok"}]}, record=record)
    with pytest.raises(OSError, match="symbolic links"):
        model.start()
    model.stop()
    assert target.read_text(encoding="utf-8") == "precious\n"


def test_recording_redacts_secrets_and_writes_a_private_jsonl_file(tmp_path: Path) -> None:
    """Every request is kept in memory and in a 0600 JSON-lines file, API keys redacted."""
    record = tmp_path / "requests.jsonl"
    with ScriptedModel({"rules": [{"text": "ok"}]}, record=record) as model:
        call(model, "/v1/messages", ask("hi"), **{"x-api-key": "sk-ant-secret-123"})
        call(model, "/v1/nowhere", {}, authorization="Bearer sk-ant-secret-456")
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["path"] for line in lines] == ["/v1/messages", "/v1/nowhere"]
    assert lines[0]["headers"]["x-api-key"] == "<redacted>"
    assert lines[1]["headers"]["authorization"] == "<redacted>"
    assert "sk-ant-secret" not in record.read_text(encoding="utf-8")
    assert lines == model.requests
    assert tools_offered(lines[0]) == ["Read"]
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_stop_cuts_a_delayed_answer_short() -> None:
    """Stopping the server does not wait out a rule's delay; the waiting client is let go."""
    model = model_for([{"delay": 600, "text": "too late"}])
    outcome: list[object] = []

    def client() -> None:
        try:
            outcome.append(call(model, "/v1/messages", ask("hi"))[0])
        except (ConnectionError, http.client.HTTPException) as exc:
            outcome.append(type(exc))

    thread = threading.Thread(target=client)
    thread.start()
    model.wait_for_request("hi", timeout=10)
    model.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert outcome
    assert outcome[0] != 200


def test_a_taken_port_is_an_oserror_and_leaves_nothing_behind(
    scripted_model: Any, tmp_path: Path
) -> None:
    """Starting on a port in use raises OSError before any record file is created."""
    first = scripted_model([])
    record = tmp_path / "second.jsonl"
    second = ScriptedModel({"rules": []}, port=first.port, record=record)
    with pytest.raises(OSError, match="in use"):
        second.start()
    assert not record.exists()
    second.stop()  # never started: stopping is a no-op


def test_cli_verb_serves_until_sigterm(tmp_path: Path) -> None:
    """`octy-orchestrate scripted-model --json` prints its base URL, serves, exits 0 on SIGTERM."""
    script = tmp_path / "s.yaml"
    script.write_text("rules:\n  - match: ping\n    text: pong from {0}\n", encoding="utf-8")
    record = tmp_path / "rec.jsonl"
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "scripted-model", "--script", str(script),
         "--record", str(record), "--json"],
        stdout=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            announced = json.loads(proc.stdout.readline())
            assert announced["base_url"] == f"http://127.0.0.1:{announced['port']}"
            conn = http.client.HTTPConnection("127.0.0.1", announced["port"], timeout=30)
            conn.request("POST", "/v1/messages", body=json.dumps(ask("ping")))
            reply = json.loads(conn.getresponse().read())
            conn.close()
            assert reply["content"][0]["text"] == "pong from ping"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:  # a failed assertion: don't leave the server behind
                proc.kill()
    assert len(record.read_text(encoding="utf-8").splitlines()) == 1


def test_cli_verb_reports_a_bad_script_with_exit_1(tmp_path: Path) -> None:
    """A script with a mistake is refused before listening, with the rule and key named."""
    script = tmp_path / "bad.yaml"
    script.write_text("rules:\n  - match: x\n    txt: y\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "scripted-model", "--script", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "rules[0] key 'txt': unknown key; did you mean 'text'?" in done.stderr


# --- the real claude CLI --------------------------------------------------------------------


async def turn(client: ClaudeSDKClient, prompt: str) -> tuple[list[str], ResultMessage]:
    """Send one user turn; the assistant's text blocks and the turn's result."""
    await client.query(prompt)
    texts: list[str] = []
    async for message in client.receive_response():
        if isinstance(message, AssistantMessage):
            texts += [b.text for b in message.content if isinstance(b, TextBlock)]
        elif isinstance(message, ResultMessage):
            return texts, message
    raise AssertionError("the response ended without a ResultMessage")


def _long_answer() -> str:
    text = Script.load(Path(__file__).parent / "scripts" / "conversation.yaml").rules[0].answer.text
    assert text is not None
    return text


@pytest.mark.cli
async def test_cli_gets_a_long_text_whole_from_many_deltas(
    scripted_model: Any, claude_options: Any
) -> None:
    """A text answer split over many text_delta events reaches the SDK as one whole text."""
    model = scripted_model("conversation.yaml")
    async with ClaudeSDKClient(claude_options(model)) as client:
        texts, result = await turn(client, "Tell me a story")
    assert texts == [_long_answer()]
    assert result.is_error is False
    assert result.result == _long_answer()
    assert [r["answered_by"] for r in model.requests_matching()] == ["long-answer"]


@pytest.mark.cli
async def test_cli_runs_an_sdk_mcp_tool_and_sends_its_result_back(
    scripted_model: Any, claude_options: Any
) -> None:
    """The model calls an in-process MCP tool with arguments; the Python tool runs; its result
    is in the next model request, tied to the tool call's id."""
    notes: dict[str, str] = {}

    @tool("remember", "Remember a fact", {"key": str, "value": str})
    async def remember(args: dict[str, Any]) -> dict[str, Any]:
        notes[args["key"]] = args["value"]
        text = f"stored {args['key']}={args['value']} ({len(notes)} note)"
        return {"content": [{"type": "text", "text": text}]}

    model = scripted_model("conversation.yaml")
    options = claude_options(
        model,
        mcp_servers={"notes": create_sdk_mcp_server("notes", tools=[remember])},
        allowed_tools=["mcp__notes__remember"],
    )
    async with ClaudeSDKClient(options) as client:
        texts, result = await turn(client, "Please remember that colour is teal.")
    assert notes == {"colour": "teal"}
    assert texts[-1] == "Noted: colour is teal; I now hold 1 note(s)."
    assert result.is_error is False
    first, follow_up = model.requests_matching(), model.requests_matching(tool_result="stored")
    assert "mcp__notes__remember" in tools_offered(first[0])
    assert len(follow_up) == 1
    [called] = [
        block
        for message in follow_up[0]["body"]["messages"]
        if message["role"] == "assistant"
        for block in message["content"]
        if isinstance(block, Mapping) and block.get("type") == "tool_use"
    ]
    assert called["name"] == "mcp__notes__remember"
    assert called["input"] == {"key": "colour", "value": "teal"}
    assert tool_results(follow_up[0]) == [
        {"tool_use_id": called["id"], "content": "stored colour=teal (1 note)", "is_error": False}
    ]


@pytest.mark.cli
async def test_cli_keeps_the_history_of_a_multi_turn_conversation(
    scripted_model: Any, claude_options: Any
) -> None:
    """The second turn's request carries the first turn's question and answer."""
    model = scripted_model("conversation.yaml")
    async with ClaudeSDKClient(claude_options(model)) as client:
        first, _ = await turn(client, "Hello, my name is Ada.")
        second, result = await turn(client, "What is my name?")
    assert first == ["Nice to meet you, Ada."]
    assert second == ["You told me before."]
    assert result.is_error is False
    [recall] = model.requests_matching("What is my name")
    # The CLI may add system-role messages (environment notes); the dialogue is the rest.
    dialogue = [(role, text) for role, text in conversation(recall) if role != "system"]
    assert dialogue == [
        ("user", "Hello, my name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


@pytest.mark.cli
async def test_cli_retries_an_overloaded_529_and_the_turn_succeeds(
    scripted_model: Any, claude_options: Any
) -> None:
    """529 once, then a success: the CLI retries by itself and the turn ends well."""
    model = scripted_model("conversation.yaml")
    async with ClaudeSDKClient(claude_options(model)) as client:
        texts, result = await turn(client, "ping")
    assert texts == ["pong"]
    assert result.is_error is False
    tries = model.requests_matching("ping")
    assert [(r["answered_by"], r["status"]) for r in tries] == [
        ("overloaded-once", 529),
        ("pong", 200),
    ]


@pytest.mark.cli
async def test_cli_reports_a_persistent_500_as_an_error_result(
    scripted_model: Any, claude_options: Any
) -> None:
    """A 500 on every try: after its retries (one, per claude_env) the turn ends in an error
    result carrying the status, and the client stays usable."""
    model = scripted_model("conversation.yaml")
    async with ClaudeSDKClient(claude_options(model)) as client:
        texts, result = await turn(client, "crash, please")
        after, ok = await turn(client, "ping")
    assert result.is_error is True
    assert result.api_error_status == 500
    assert any("scripted internal error" in t for t in texts)
    assert [r["status"] for r in model.requests if r["answered_by"] == "broken"] == [500, 500]
    # The failed prompt had no answer, so the CLI sends it again merged with the next one.
    assert last_user_text(model.requests[-1]).endswith("ping")
    assert ok.is_error is False
    assert after[-1] == "pong"


@pytest.mark.cli
@pytest.mark.slow
async def test_cli_waits_out_a_slow_stream(scripted_model: Any, claude_options: Any) -> None:
    """A rule delaying its content by seconds (stream open, idle) still delivers the answer."""
    model = scripted_model("conversation.yaml")
    async with ClaudeSDKClient(claude_options(model)) as client:
        texts, result = await turn(client, "Take your time: what is the answer?")
    assert texts == ["Thought about it for a while: the answer is forty-two."]
    assert result.is_error is False
    assert [r["answered_by"] for r in model.requests_matching()] == ["slow"]


def test_claude_env_isolates_home_and_points_at_the_model(
    scripted_model: Any, claude_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The env fixture gives the CLI the model's URL, a fake key, a private HOME, quiet switches,
    and blanks ambient credentials that would take precedence over the fake key."""
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "ambient-token")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    model = scripted_model([])
    env = claude_env(model, CLAUDE_CODE_MAX_RETRIES="3")
    assert env["ANTHROPIC_BASE_URL"] == model.base_url
    assert env["ANTHROPIC_API_KEY"] == FAKE_API_KEY
    assert env["ANTHROPIC_AUTH_TOKEN"] == ""
    assert env["NO_PROXY"] == "127.0.0.1,localhost,internal.example"
    assert Path(env["HOME"]).is_dir()
    assert Path(env["HOME"]).is_relative_to(tmp_path)
    assert stat.S_IMODE(os.stat(env["HOME"]).st_mode) == 0o700
    assert env["ENABLE_TOOL_SEARCH"] == "false"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "3"
