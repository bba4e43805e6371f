"""The official Python SDK's stream resumption against sessiongate.

Two ways the SDK resumes a response stream with ``Last-Event-ID``: on its own,
when the server ends a request's SSE connection early with a ``retry`` hint
(SSE polling, 2025-11-25), and on request, when the application hands it a
resumption token it was given earlier (``ClientMessageMetadata``). Either way
the result arrives, once, from sessiongate's event log.
"""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import ClientMessageMetadata

from conftest import Server, Wire

pytestmark = pytest.mark.anyio


def _resumed_gets(wire: Wire) -> list[str]:
    return [e.request_headers["last-event-id"] for e in wire.exchanges if e.method == "GET" and "last-event-id" in e.request_headers]


async def test_sdk_polls_when_the_server_closes_the_stream(conformance_server: Server, wire: Wire) -> None:
    async with wire.client() as http:
        async with streamable_http_client(conformance_server.mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("test_reconnection", {})
    assert not result.is_error, result
    assert result.content[0].text == "Reconnection test completed successfully."
    resumed = _resumed_gets(wire)
    assert len(resumed) == 1, wire.exchanges
    (get,) = [e for e in wire.exchanges if e.method == "GET" and "last-event-id" in e.request_headers]
    assert get.status == 200, get


async def test_sdk_resumes_from_a_resumption_token(conformance_server: Server, wire: Wire) -> None:
    tokens: list[str] = []

    async def on_token(token: str) -> None:
        tokens.append(token)

    call = types.CallToolRequest(params=types.CallToolRequestParams(name="test_tool_with_progress", arguments={}))
    async with wire.client() as http:
        async with streamable_http_client(conformance_server.mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                first = await session.send_request(
                    call,
                    types.CallToolResult,
                    metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                    progress_callback=lambda *_: _noop(),
                )
                # Priming event, progress 0, 50, 100, the result: five ids, in order.
                assert len(tokens) == 5, tokens
                assert tokens[0].endswith("-0"), tokens
                assert len({t.rsplit("-", 1)[0] for t in tokens}) == 1, "one stream"

                # Resume from just after the first progress message: the rest replays.
                replayed: list[str] = []

                async def on_replayed(token: str) -> None:
                    replayed.append(token)

                again = await session.send_request(
                    call,
                    types.CallToolResult,
                    metadata=ClientMessageMetadata(resumption_token=tokens[1], on_resumption_token_update=on_replayed),
                )
    assert again.content == first.content, (first, again)
    assert replayed == tokens[2:], (tokens, replayed)
    assert _resumed_gets(wire) == [tokens[1]]


async def _noop() -> None:
    return None
