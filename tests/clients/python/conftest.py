"""Fixtures for the official MCP Python SDK client tests.

`server` starts the sessiongate binary (``$SESSIONGATE_BIN``, default
``<repo>/target/debug/sessiongate``) on a free loopback port with a fresh data
directory and admin token, waits until it answers, and stops it afterwards.
`Wire` records every HTTP exchange the SDK makes, so tests can check what was
actually sent (``MCP-Protocol-Version``, ``Mcp-Session-Id``, the DELETE).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

REPO = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base_url: str
    admin_token: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def log_tail(self, max_chars: int = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<cannot read {self.log_path}: {e}>"
        return text[-max_chars:]

    def admin_get(self, path: str) -> tuple[int, Any]:
        """GET a management-API path with the admin token; returns (status, parsed JSON or text)."""
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def admin_session(self, session_id: str) -> dict[str, Any]:
        status, body = self.admin_get(f"/api/mcp/sessions/{session_id}")
        assert status == 200, f"GET /api/mcp/sessions/{session_id} -> {status}: {body}"
        return body["session"]

    def wait_disconnected(self, session_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The session's admin record once its status is no longer `active` (or the last one seen)."""
        deadline = time.monotonic() + timeout_s
        record = self.admin_session(session_id)
        while record.get("status") == "active" and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.admin_session(session_id)
        return record


def _start(bin_path: Path, data_dir: Path, log_path: Path, extra: tuple[str, ...] = ()) -> Server:
    token = "pytest-" + secrets.token_hex(16)
    port = _free_port()
    # Hermetic: no SESSIONGATE_* setting from the caller's environment leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGATE_")}
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the process is stopped
    proc = subprocess.Popen(
        [
            str(bin_path),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            "--admin-token",
            token,
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    server = Server(f"http://127.0.0.1:{port}", token, log_path, proc)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sessiongate exited with {proc.returncode} at startup:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/api/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    _stop(server)
    raise RuntimeError(f"sessiongate did not answer /api/health within {STARTUP_TIMEOUT_S}s:\n{server.log_tail()}")


def _stop(server: Server) -> None:
    proc = server.process
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _serve(tmp_path_factory: pytest.TempPathFactory, *extra: str):  # type: ignore[no-untyped-def]
    bin_path = Path(os.environ.get("SESSIONGATE_BIN") or REPO / "target" / "debug" / "sessiongate")
    if not bin_path.is_file():
        pytest.fail(f"sessiongate binary not found at {bin_path} (build it or set SESSIONGATE_BIN)")
    base = tmp_path_factory.mktemp("sessiongate")
    last_error: Exception | None = None
    for attempt in range(3):  # a free port can be taken between probe and bind
        try:
            srv = _start(bin_path, base / f"data{attempt}", base / f"server{attempt}.log", extra)
            break
        except RuntimeError as e:
            last_error = e
    else:
        raise last_error  # type: ignore[misc]
    yield srv
    _stop(srv)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="session")
def conformance_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """sessiongate with the conformance fixtures (long-running and polling tools)."""
    yield from _serve(tmp_path_factory, "--conformance")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    srv = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(srv, Server):
        report.sections.append(("sessiongate log (tail)", srv.log_tail()))


# ------------------------------------------------------------------ wire capture


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    body: Any
    status: int
    response_headers: dict[str, str]

    @property
    def rpc_method(self) -> str | None:
        return self.body.get("method") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return (
            f"{self.method} {self.rpc_method or ''} -> {self.status} "
            f"req={self.request_headers} resp={self.response_headers}"
        )


@dataclass
class Wire:
    """An httpx2 client for the SDK transport that records each request/response pair."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def _on_response(self, response: httpx2.Response) -> None:
        request = response.request
        try:
            raw = request.content
            body: Any = json.loads(raw) if raw else None
        except Exception:  # streaming or non-JSON body
            body = None
        self.exchanges.append(
            Exchange(
                method=request.method,
                url=str(request.url),
                request_headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                status=response.status_code,
                response_headers={k.lower(): v for k, v in response.headers.items()},
            )
        )

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [self._on_response]},
        )

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST"]

    def requests_(self) -> list[Exchange]:
        """POSTs that carry a JSON-RPC request (have an id and a method)."""
        return [e for e in self.posts() if isinstance(e.body, dict) and "id" in e.body and "method" in e.body]

    def by_rpc(self, method: str) -> list[Exchange]:
        return [e for e in self.posts() if e.rpc_method == method]

    def minted_session_ids(self) -> set[str]:
        return {e.response_headers["mcp-session-id"] for e in self.exchanges if "mcp-session-id" in e.response_headers}


@pytest.fixture
def wire() -> Wire:
    return Wire()
