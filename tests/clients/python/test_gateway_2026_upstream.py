"""sessiongate as a gateway in front of an HTTP server that speaks only
2026-07-28 (`crates/testkit/fixtures/http_2026_mcp_server.py`: initialize
refused, input asked with input-required results under its own keys),
driven by the official Python SDK's client on the sessionful 2025-11-25
revision and on 2026-07-28.

A session's requests go to the upstream with `_meta` built from the
session's `initialize`, and the upstream's input requests come to the
client as requests on the call's stream; a 2026-07-28 client gets them as
the upstream's own input-required results. Either way the SDK's callbacks
answer them and the call completes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, Server, Wire, _serve

pytestmark = pytest.mark.anyio

FIXTURE = REPO / "crates" / "testkit" / "fixtures" / "http_2026_mcp_server.py"
MODERN = "2026-07-28"
MODES = ["legacy", MODERN]


@pytest.fixture(scope="module")
def upstream() -> str:
    proc = subprocess.Popen([sys.executable, str(FIXTURE)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = proc.stdout.readline().decode().strip()
    yield f"http://127.0.0.1:{port}/mcp"
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Server:
    yield from _serve(tmp_path_factory, "--upstream", f"only={upstream}")


async def _elicit(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"ok": True})


async def _sample(_context: object, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content
    topic = asked.text if isinstance(asked, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled-{topic.replace(' ', '-')}"),
        model="test-model",
    )


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_the_upstreams_input_requests_are_answered_by_this_client(
    gateway: Server, wire: Wire, mode: str
) -> None:
    async with wire.client() as http:
        client = Client(
            streamable_http_client(gateway.mcp_url, http_client=http),
            mode=mode,
            elicitation_callback=_elicit,
            sampling_callback=_sample,
        )
        async with client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "confirm" in names, names

            said = json.loads(_text(await client.call_tool("whoami", {})))
            assert said["capabilities"].get("sampling") is not None, said

            confirmed = await client.call_tool("confirm", {})
            assert _text(confirmed) == "ok=true draft=sampled-Draft-it"
    if mode == MODERN:
        # The upstream's own keys and state came back on the retry.
        retries = [c for c in wire.by_rpc("tools/call") if "inputResponses" in c.body["params"]]
        assert len(retries) == 1, wire.by_rpc("tools/call")
        params = retries[0].body["params"]
        assert sorted(params["inputResponses"]) == ["upstream_draft", "upstream_ok"]
        assert params["requestState"] == "round-1"
