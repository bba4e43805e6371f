"""The official MCP Python SDK (2.x) as a sessionful client of sessiongate.

Each test opens a session over Streamable HTTP, lists the tools, calls `echo`
and `session_info`, then leaves the transport context, which makes the SDK send
``DELETE /mcp``; the management API must then show the session as ended by the
client. What the SDK put on the wire is checked from recorded HTTP exchanges.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import Server, Wire

pytestmark = pytest.mark.anyio

BUILTIN_TOOLS = {"echo", "session_info", "health_check", "list_sessions"}


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    assert result.content and result.content[0].type == "text", result
    return result.content[0].text


async def _exercise(session: Client | ClientSession, client_name: str, version: str) -> dict[str, Any]:
    """list tools, echo, session_info; returns the session_info record."""
    tools = await session.list_tools()
    names = {t.name for t in tools.tools}
    assert BUILTIN_TOOLS <= names, names

    text = "hello from the Python SDK: ünïcødé ✓"
    echoed = await session.call_tool("echo", {"text": text})
    assert _text(echoed) == text

    info = await session.call_tool("session_info", {})
    record = info.structured_content
    assert isinstance(record, dict), info
    assert json.loads(_text(info)) == record, "text content must be the same record as structuredContent"
    assert record["client_name"] == client_name
    assert record["protocol_version"] == version
    assert record["status"] == "active"
    assert record.get("stateless") is not True
    # initialize, tools/list, echo and this call at least.
    assert record["request_count"] >= 3, record
    return record


def _check_wire(wire: Wire, version: str, session_id: str) -> None:
    """Every exchange after initialize carried the session id and the negotiated version."""
    (init,) = wire.by_rpc("initialize")
    assert init.status == 200, init
    assert init.body["params"]["protocolVersion"] == version
    assert init.response_headers.get("mcp-session-id") == session_id
    assert wire.minted_session_ids() == {session_id}, "only initialize mints a session id"

    after = [e for e in wire.exchanges if e is not init]
    assert after, "no traffic after initialize"
    for e in after:
        assert e.request_headers.get("mcp-session-id") == session_id, e
        assert e.request_headers.get("mcp-protocol-version") == version, e
    for method in ("notifications/initialized", "tools/list", "tools/call"):
        assert wire.by_rpc(method), f"SDK sent no {method}"
    (initialized,) = wire.by_rpc("notifications/initialized")
    assert initialized.status == 202, initialized
    for e in wire.requests_():
        assert e.status == 200, e


def _check_terminated(server: Server, wire: Wire, session_id: str) -> None:
    deletes = [e for e in wire.exchanges if e.method == "DELETE"]
    assert len(deletes) == 1, f"expected one DELETE on exit, saw {wire.exchanges}"
    assert deletes[0].request_headers.get("mcp-session-id") == session_id
    assert 200 <= deletes[0].status < 300, deletes[0]

    record = server.wait_disconnected(session_id)
    assert record["status"] == "disconnected", record
    assert record["disconnect_reason"] == "client_disconnect", record
    assert record["disconnected_at"], record


async def test_sessionful_latest_revision(server: Server, wire: Wire) -> None:
    """`Client(mode="legacy")`: the SDK's initialize handshake at its newest handshake revision (2025-11-25)."""
    client_info = types.Implementation(name="sessiongate-pytest-legacy", version="2.3.0-test")
    async with wire.client() as http:
        async with Client(
            streamable_http_client(server.mcp_url, http_client=http),
            mode="legacy",
            client_info=client_info,
        ) as client:
            assert client.protocol_version == "2025-11-25"
            assert client.server_info is not None and client.server_info.name
            (session_id,) = wire.minted_session_ids()
            record = await _exercise(client, client_info.name, "2025-11-25")
            assert record["session_id"] == session_id
            assert record["client_version"] == client_info.version
        # Leaving the Client closes the streamable_http_client transport, which sends DELETE.
    _check_wire(wire, "2025-11-25", session_id)
    _check_terminated(server, wire, session_id)


async def _initialize_at(session: ClientSession, version: str) -> types.InitializeResult:
    """The SDK's own handshake (ClientSession.initialize), offering `version` instead of the newest one.

    `ClientSession.initialize()` always offers LATEST_HANDSHAKE_VERSION; this sends the same
    InitializeRequest through the SDK with an older `protocolVersion`, installs the answer with
    `adopt()` (which makes the SDK stamp that version on every later request), and sends
    `notifications/initialized`, exactly as `initialize()` does.
    """
    result = await session.send_request(
        types.InitializeRequest(
            params=types.InitializeRequestParams(
                protocol_version=version,
                capabilities=types.ClientCapabilities(),
                client_info=session._client_info,  # noqa: SLF001 - the info given to the constructor
            )
        ),
        types.InitializeResult,
    )
    session.adopt(result)
    await session.send_notification(types.InitializedNotification())
    return result


@pytest.mark.parametrize("version", ["2025-06-18", "2025-03-26"])
async def test_sessionful_older_revision(server: Server, wire: Wire, version: str) -> None:
    """A `ClientSession` that offers an older revision; the server must agree to it and serve it."""
    client_info = types.Implementation(name=f"sessiongate-pytest-{version}", version="2.3.0-test")
    async with wire.client() as http:
        async with streamable_http_client(server.mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write, client_info=client_info) as session:
                result = await _initialize_at(session, version)
                assert result.protocol_version == version
                assert session.protocol_version == version
                (session_id,) = wire.minted_session_ids()
                record = await _exercise(session, client_info.name, version)
                assert record["session_id"] == session_id
        # streamable_http_client's exit sends DELETE (terminate_on_close=True).
    _check_wire(wire, version, session_id)
    _check_terminated(server, wire, session_id)


async def test_session_id_is_per_client(server: Server) -> None:
    """Two SDK clients at once get two sessions, each seeing its own record."""
    wires = [Wire(), Wire()]
    async with wires[0].client() as h0, wires[1].client() as h1:
        async with (
            Client(
                streamable_http_client(server.mcp_url, http_client=h0),
                mode="legacy",
                client_info=types.Implementation(name="sessiongate-pytest-a", version="1"),
            ) as a,
            Client(
                streamable_http_client(server.mcp_url, http_client=h1),
                mode="legacy",
                client_info=types.Implementation(name="sessiongate-pytest-b", version="1"),
            ) as b,
        ):
            ra = (await a.call_tool("session_info", {})).structured_content
            rb = (await b.call_tool("session_info", {})).structured_content
            (ida,) = wires[0].minted_session_ids()
            (idb,) = wires[1].minted_session_ids()
    assert ida != idb
    assert (ra["session_id"], ra["client_name"]) == (ida, "sessiongate-pytest-a")
    assert (rb["session_id"], rb["client_name"]) == (idb, "sessiongate-pytest-b")
    for w, sid in ((wires[0], ida), (wires[1], idb)):
        _check_terminated(server, w, sid)
