"""Keep the backend's connections alive across calls.

The SDK's streamable-HTTP client closes a POST's event stream as soon as it has
read the response event, before the server's end of the stream has been read;
the connection pool then cannot reuse that connection, so every call would open
a new TCP connection (and leave one in TIME-WAIT). This transport reads such a
stream to its end when it is closed, within `DRAIN_S`, so the connection goes
back to the pool. A stream that does not end by then is closed as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx2

DRAIN_S = 0.25
"""How long closing a POST's event stream may wait for the server to end it."""


class _Draining(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            with anyio.move_on_after(DRAIN_S):
                async for _ in self._inner:  # the server ends a finished POST stream at once
                    pass
        except httpx2.HTTPError:
            pass
        finally:
            await self._inner.aclose()


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    """`httpx2.AsyncHTTPTransport` whose POST event streams end cleanly when closed early."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        event_stream = response.headers.get("content-type", "").startswith("text/event-stream")
        if request.method == "POST" and event_stream and isinstance(response.stream, httpx2.AsyncByteStream):
            response.stream = _Draining(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
