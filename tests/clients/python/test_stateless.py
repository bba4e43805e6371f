"""The official MCP Python SDK (2.x) on the stateless revision 2026-07-28.

mcp 2.x speaks 2026-07-28: `Client(mode="auto")` (its default) probes
`server/discover` and adopts the modern revision when the server offers it;
`Client(mode="2026-07-28")` pins it without a probe. Either way every request
carries the per-request `_meta` envelope and no session exists.
"""

from __future__ import annotations

import json

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import Server, Wire

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
BUILTIN_TOOLS = {"echo", "session_info", "health_check", "list_sessions"}
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"


@pytest.mark.parametrize("mode", ["auto", MODERN])
async def test_stateless(server: Server, wire: Wire, mode: str) -> None:
    client_info = types.Implementation(name=f"sessiongate-pytest-stateless-{mode}", version="2.3.0-test")
    async with wire.client() as http:
        async with Client(
            streamable_http_client(server.mcp_url, http_client=http),
            mode=mode,
            client_info=client_info,
        ) as client:
            assert client.protocol_version == MODERN
            if mode == "auto":
                discover = client.session.discover_result
                assert discover is not None, "auto mode fell back to initialize"
                assert MODERN in discover.supported_versions

            tools = await client.list_tools()
            assert BUILTIN_TOOLS <= {t.name for t in tools.tools}

            text = "stateless hello ✓"
            echoed = await client.call_tool("echo", {"text": text})
            assert not echoed.is_error
            assert echoed.content[0].type == "text" and echoed.content[0].text == text

            info = await client.call_tool("session_info", {})
            assert not info.is_error
            record = info.structured_content
            assert isinstance(record, dict), info
            assert json.loads(info.content[0].text) == record
            assert record["stateless"] is True
            assert record["client_name"] == client_info.name
            assert record["client_version"] == client_info.version
            assert record["protocol_version"] == MODERN
            assert "session_id" not in record

    # From the wire: no handshake, no session, every POST stamped with 2026-07-28.
    assert not wire.by_rpc("initialize"), "modern client must not send initialize"
    assert not wire.minted_session_ids(), "server must not mint a session for 2026-07-28"
    assert [e for e in wire.exchanges if e.method != "POST"] == [], "no GET stream or DELETE at 2026-07-28"
    if mode == "auto":
        (probe,) = wire.by_rpc("server/discover")
        assert probe.status == 200, probe
    else:
        assert not wire.by_rpc("server/discover"), "a pinned client does not probe"
    calls = wire.by_rpc("tools/call")
    assert {e.body["params"]["name"] for e in calls} == {"echo", "session_info"}
    assert wire.by_rpc("tools/list")
    for e in wire.posts():
        assert e.status == 200, e
        assert e.request_headers.get("mcp-protocol-version") == MODERN, e
        assert "mcp-session-id" not in e.request_headers, e
        meta = e.body["params"]["_meta"]
        assert meta[META_VERSION] == MODERN, e
        assert meta[META_CLIENT_INFO]["name"] == client_info.name, e
    for e in calls:
        assert e.request_headers.get("mcp-method") == "tools/call", e
        assert e.request_headers.get("mcp-name") == e.body["params"]["name"], e
