"""A FastMCP server (the official `mcp` SDK's MCPServer) for the gateway tests:
sessiongate runs it as a stdio child and relays it to the SDK's clients.

It offers a bit of everything a relay must carry: a plain tool, one that
reports progress, one that logs, one that asks the client (elicitation) and
one that samples, one that adds a tool (list changed), a prompt, a static
resource and a template.

    python fastmcp_server.py        serves on stdin and stdout
"""

from __future__ import annotations

import warnings

import mcp_types as types
from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("fastmcp-upstream", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def count_to(n: int, ctx: Context) -> str:
    """Counts to n, reporting progress at each step."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
    return f"counted to {n}"


@server.tool()
async def shout(text: str, ctx: Context) -> str:
    """Logs the text at warning level and returns it in capitals."""
    await ctx.warning(f"shouting {text}")
    return text.upper()


@server.tool()
async def add_tool_named(name: str, ctx: Context) -> str:
    """Adds a tool under the given name and announces that the list changed."""

    def added() -> str:
        return f"{name} here"

    server.add_tool(added, name=name, description="Added at run time")
    await ctx.session.send_tool_list_changed()
    return "added"


class Name(BaseModel):
    name: str


@server.tool()
async def greet_someone(ctx: Context) -> str:
    """Asks the client for a name, then greets it."""
    answer = await ctx.elicit("Who should be greeted?", Name)
    if answer.action != "accept":
        return f"no greeting ({answer.action})"
    return f"Hello, {answer.data.name}!"


@server.tool()
async def haiku(topic: str, ctx: Context) -> str:
    """Asks the client's model for a haiku (sampling)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=f"A haiku on {topic}"))],
            max_tokens=50,
            related_request_id=ctx.request_id,
        )
    content = result.content
    return content.text if isinstance(content, types.TextContent) else str(content)


@server.prompt()
def review(code: str) -> str:
    """Asks for a review of some code."""
    return f"Please review this code:\n\n{code}"


@server.resource("notes://today")
def today() -> str:
    """Today's notes."""
    return "buy milk"


@server.resource("notes://day/{day}")
def day(day: str) -> str:
    """The notes of a given day."""
    return f"notes of {day}"


if __name__ == "__main__":
    server.run("stdio")
