"""sessiongate as a gateway in front of a FastMCP server (the official Python
SDK's MCPServer, `upstreams/fastmcp_server.py`), run as a stdio child, driven
by the same SDK's client on the sessionful 2025-11-25 revision and on
2026-07-28.

The upstream is alone and none of its names is a built-in's, so its names
are served as it gives them, beside the built-in tools. Every kind of traffic must pass: tools with structured output,
progress, log messages, the upstream's elicitation and sampling requests
(on the session's stream, or as input-required results on 2026-07-28),
a change of the upstream's tool list (announced on the session, or on a
`subscriptions/listen` stream on 2026-07-28), prompts, resources and
templates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import Server, Wire, _serve

pytestmark = pytest.mark.anyio

UPSTREAM = Path(__file__).resolve().parent / "upstreams" / "fastmcp_server.py"
MODERN = "2026-07-28"
MODES = ["legacy", MODERN]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Server:
    yield from _serve(tmp_path_factory, "--stdio", f"fastmcp={sys.executable} {UPSTREAM}")


async def _elicit(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def _sample(_context: object, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content
    topic = asked.text if isinstance(asked, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled: {topic}"),
        model="test-model",
    )


def _client(server: Server, wire: Wire, http, mode: str, **callbacks) -> Client:  # type: ignore[no-untyped-def]
    return Client(
        streamable_http_client(server.mcp_url, http_client=http),
        mode=mode,
        elicitation_callback=_elicit,
        sampling_callback=_sample,
        **callbacks,
    )


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_prompts_and_resources_pass_through(gateway: Server, wire: Wire, mode: str) -> None:
    async with wire.client() as http:
        async with _client(gateway, wire, http, mode) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "add" in names and "echo" in names, names
            assert not any(n.startswith("fastmcp__") for n in names), names

            added = await client.call_tool("add", {"a": 40, "b": 2})
            assert _text(added) == "42"
            assert added.structured_content == {"result": 42}

            prompts = [p.name for p in (await client.list_prompts()).prompts]
            assert "review" in prompts, prompts
            prompt = await client.get_prompt("review", {"code": "x = 1"})
            assert "x = 1" in prompt.messages[0].content.text

            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            assert "notes://today" in uris, uris
            read = await client.read_resource("notes://today")
            assert read.contents[0].text == "buy milk"
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            assert "notes://day/{day}" in templates, templates
            monday = await client.read_resource("notes://day/monday")
            assert monday.contents[0].text == "notes of monday"


@pytest.mark.parametrize("mode", MODES)
async def test_progress_reaches_the_caller(gateway: Server, wire: Wire, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with wire.client() as http:
        async with _client(gateway, wire, http, mode) as client:
            result = await client.call_tool("count_to", {"n": 3}, progress_callback=on_progress)
    assert _text(result) == "counted to 3"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("mode", MODES)
async def test_log_messages_reach_the_caller(gateway: Server, wire: Wire, mode: str) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with wire.client() as http:
        async with _client(gateway, wire, http, mode, logging_callback=on_log, log_level="info") as client:
            if mode == "legacy":
                await client.set_logging_level("info")
            result = await client.call_tool("shout", {"text": "hey"})
    assert _text(result) == "HEY"
    assert [(m.level, m.data) for m in logs] == [("warning", "shouting hey")]


@pytest.mark.parametrize("mode", MODES)
async def test_the_upstreams_requests_are_answered_by_this_client(gateway: Server, wire: Wire, mode: str) -> None:
    async with wire.client() as http:
        async with _client(gateway, wire, http, mode) as client:
            greeted = await client.call_tool("greet_someone", {})
            assert _text(greeted) == "Hello, Ada!"
            poem = await client.call_tool("haiku", {"topic": "rivers"})
            assert _text(poem) == "sampled: A haiku on rivers"
    if mode == MODERN:
        # On 2026-07-28 the questions came as input-required results, answered on retries.
        retries = [c for c in wire.by_rpc("tools/call") if "inputResponses" in c.body["params"]]
        assert len(retries) == 2, wire.by_rpc("tools/call")


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_list_change_reaches_the_client(gateway: Server, wire: Wire, mode: str) -> None:
    name = "extra_" + mode.replace("-", "_")
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with wire.client() as http:
        async with _client(gateway, wire, http, mode, message_handler=on_message) as client:
            assert name not in [t.name for t in (await client.list_tools()).tools]
            with anyio.fail_after(10):
                if mode == MODERN:
                    async with client.listen(tools_list_changed=True) as changes:
                        assert _text(await client.call_tool("add_tool_named", {"name": name})) == "added"
                        event = await changes.__anext__()
                        assert "tools" in type(event).__name__.lower(), event
                else:
                    assert _text(await client.call_tool("add_tool_named", {"name": name})) == "added"
                    await changed.wait()
            names = [t.name for t in (await client.list_tools()).tools]
            assert name in names, names
            assert _text(await client.call_tool(name, {})) == f"{name} here"
