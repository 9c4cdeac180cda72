"""The bare-client baseline of start-to-ready: open N stdio sessions to our echo server concurrently.

    python bench/bare_start.py N ECHO_SERVER

Prints `ready` once every session is open (the same handshake the gateway's
stdio backends do: mode legacy), then closes them and exits.
"""

import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main(n: int, echo: str) -> None:
    opened = 0
    done = anyio.Event()
    close = anyio.Event()

    async def one(i: int) -> None:
        nonlocal opened
        params = StdioServerParameters(command=sys.executable, args=[echo, "--name", f"e{i}", "--extra-tools", "41"])
        async with Client(params, mode="legacy", cache=None):
            opened += 1
            if opened == n:
                done.set()
            await close.wait()

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
        await done.wait()
        print("ready", flush=True)
        close.set()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), sys.argv[2])
