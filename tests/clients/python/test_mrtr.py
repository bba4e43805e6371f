"""Multi-round-trip requests (SEP-2322) with the official MCP Python SDK 2.x.

mcp 2.3.0 implements MRTR in the client: when `Client.call_tool` (or
`get_prompt`, `read_resource`) gets an `InputRequiredResult`, it runs each
embedded input request through the callbacks given to the `Client`
(elicitation, sampling, roots) and retries the call with `inputResponses`
and the echoed `requestState`. These tests let it complete the conformance
fixtures that ask for input against `serve --conformance`, and check on the
wire that the input came through retries, never as server-to-client
requests. The same fixture and callback also work on a session, where the
server asks on the request's stream instead.
"""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import Server, Wire

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ELICITATION_TOOL = "test_input_required_result_elicitation"
MULTI_ROUND_TOOL = "test_input_required_result_multi_round"
ANSWERS = {"name": "Ada", "color": "teal"}


async def _elicit(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    """Fills in whichever of the fields the form asks for that it knows."""
    schema = params.requested_schema or {}
    fields = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return types.ElicitResult(action="accept", content={k: ANSWERS[k] for k in fields if k in ANSWERS})


async def _call(server: Server, wire: Wire, mode: str, tool: str) -> types.CallToolResult:
    """Calls `tool` from a client in `mode` that answers elicitations with `_elicit`."""
    async with wire.client() as http:
        async with Client(
            streamable_http_client(server.mcp_url, http_client=http),
            mode=mode,
            elicitation_callback=_elicit,
        ) as client:
            assert client.protocol_version == (MODERN if mode == MODERN else "2025-11-25")
            return await client.call_tool(tool, {})


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    assert result.content and result.content[0].type == "text", result
    return result.content[0].text


async def test_sdk_completes_an_elicitation_through_input_required(conformance_server: Server, wire: Wire) -> None:
    result = await _call(conformance_server, wire, MODERN, ELICITATION_TOOL)
    assert _text(result) == "Hello, Ada!"

    first, retry = wire.by_rpc("tools/call")
    assert first.status == 200 and retry.status == 200
    assert "inputResponses" not in first.body["params"]
    assert retry.body["params"]["inputResponses"] == {"user_name": {"action": "accept", "content": {"name": "Ada"}}}
    # The state the server issued, echoed untouched, on a request with a new id.
    assert retry.body["params"]["requestState"].startswith("sg1.")
    assert retry.body["id"] != first.body["id"]
    assert not wire.minted_session_ids()


async def test_sdk_drives_several_rounds(conformance_server: Server, wire: Wire) -> None:
    result = await _call(conformance_server, wire, MODERN, MULTI_ROUND_TOOL)
    assert _text(result) == "Ada likes teal"

    calls = wire.by_rpc("tools/call")
    assert len(calls) == 3, calls
    states = [c.body["params"].get("requestState") for c in calls]
    assert states[0] is None and states[1] and states[2] and states[1] != states[2]
    # Each retry answers only what its round asked; earlier answers ride in the state.
    assert [sorted(c.body["params"].get("inputResponses", {})) for c in calls] == [[], ["step1"], ["step2"]]


async def test_the_same_fixture_asks_a_session_on_its_stream(conformance_server: Server, wire: Wire) -> None:
    result = await _call(conformance_server, wire, "legacy", ELICITATION_TOOL)
    assert _text(result) == "Hello, Ada!"

    (call,) = wire.by_rpc("tools/call")
    assert call.response_headers["content-type"].startswith("text/event-stream")
    # The SDK answered the server's elicitation/create with a POSTed response.
    answers = [e for e in wire.posts() if isinstance(e.body, dict) and "result" in e.body]
    assert [a.body["result"]["content"] for a in answers] == [{"name": "Ada"}]
