"""The Python baseline of bench/loadtest: the smallest server of the official
`mcp` SDK (its FastMCP, named MCPServer since mcp 2) with one `echo` tool,
served over Streamable HTTP by the SDK's own uvicorn runner.

    python server.py PORT               sessionful (the SDK's defaults)
    python server.py PORT --stateless   no sessions (stateless_http)
"""

import argparse

from mcp.server.mcpserver import MCPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()

    # WARNING: the INFO default logs every request, which would measure logging.
    server = MCPServer("fastmcp-baseline", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Returns its text argument."""
        return text

    server.run(
        "streamable-http",
        host="127.0.0.1",
        port=args.port,
        stateless_http=args.stateless,
    )


if __name__ == "__main__":
    main()
