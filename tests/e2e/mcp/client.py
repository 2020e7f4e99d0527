"""An MCP client this project did not write (the `mcp` package from PyPI)
talking to `actionbox mcp` over stdio: list the tools, call trackOrder, call
it with an unknown order (a tool error), call an unknown tool (a protocol
error). Prints one JSON object with what it saw; the Rust test checks it.

Usage: client.py ACTIONBOX_BIN CONFIG
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(binary: str, config: str) -> None:
    params = StdioServerParameters(command=binary, args=["mcp", "--config", config], env=dict(os.environ))
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["server_name"] = init.server_info.name
            tools = await session.list_tools()
            seen["tools"] = [
                {"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools.tools
            ]
            ok = await session.call_tool("trackOrder", {"order_id": "1001"})
            seen["ok"] = {"isError": ok.is_error, "structured": ok.structured_content,
                          "text": [c.text for c in ok.content if getattr(c, "type", "") == "text"]}
            missing = await session.call_tool("trackOrder", {"order_id": "no-such-order"})
            seen["missing"] = {"isError": missing.is_error, "structured": missing.structured_content}
            try:
                await session.call_tool("noSuchTool", {})
                seen["unknown_tool"] = "no error"
            except Exception as e:  # the protocol error surfaces as an exception
                seen["unknown_tool"] = f"{type(e).__name__}: {e}"
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
