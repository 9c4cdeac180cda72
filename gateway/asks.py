"""Backends' sampling, elicitation and roots requests, put to the client whose call they serve.

A handshake-era client gets them as ordinary server-to-client requests on its
call's own stream. A 2026-07-28 client has no such channel: the gateway runs
the call in the background and answers the client's `tools/call` with an
`InputRequiredResult` holding the backend's request; the client retries with
its answer and the `request_state` token, and the gateway hands the answer to
the waiting backend and goes on (the "input-required round" of that era).

A client that did not declare the capability gets nothing asked: the backend
gets an error at once, never a hang. A parked call whose client does not come
back within `PARKED_TIMEOUT_S` is answered with an error and ends.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import MCPError
from mcp.server.session import ServerSession
from mcp.shared.message import ServerMessageMetadata

from gateway.backends import AskFn, ClientAsk

log = logging.getLogger("manifold.asks")

PARKED_TIMEOUT_S = 300.0
"""How long a call waits for a 2026-07-28 client to come back with its answer."""
MAX_PARKED = 1000
"""Calls parked at once, all clients together; past it, a new ask is refused."""
ANSWER_KEY = "manifold"

Answer = types.CreateMessageResult | types.ElicitResult | types.ListRootsResult

_KINDS: dict[type[Any], tuple[str, type[Answer], types.ClientCapabilities]] = {
    types.CreateMessageRequest: (
        "sampling", types.CreateMessageResult, types.ClientCapabilities(sampling=types.SamplingCapability())),
    types.ElicitRequest: (
        "elicitation", types.ElicitResult, types.ClientCapabilities(elicitation=types.ElicitationCapability())),
    types.ListRootsRequest: ("roots", types.ListRootsResult, types.ClientCapabilities(roots=types.RootsCapability())),
}


def can_answer(session: ServerSession) -> bool:
    """Whether the client declared any capability a backend could ask it to use."""
    caps = session.client_capabilities
    return caps is not None and (caps.sampling is not None or caps.elicitation is not None or caps.roots is not None)


def _check(session: ServerSession, request: ClientAsk) -> type[Answer]:
    kind, answer, capability = _KINDS[type(request)]
    if not session.check_client_capability(capability):
        raise MCPError(types.INVALID_REQUEST, f"manifold: the client did not declare the {kind} capability, "
                                              f"so the backend's {request.method} request cannot reach it")
    return answer


def direct(session: ServerSession, request_id: types.RequestId | None) -> AskFn:
    """Asks for a handshake-era client: a request on the stream of the call it serves."""

    async def ask(request: ClientAsk) -> Answer:
        answer = _check(session, request)
        metadata = ServerMessageMetadata(related_request_id=request_id) if request_id is not None else None
        return await session.send_request(request, answer, metadata=metadata)

    return ask


@dataclass(eq=False)
class _Parked:
    """A call of a 2026-07-28 client running in the background, and what it is waiting for.

    The call sends `("ask", request, reply)` for each request it makes of the
    client, then `("done", result)` or `("raise", exc)`; the client's requests
    receive them one at a time.
    """

    send: MemoryObjectSendStream[tuple[Any, ...]]
    receive: MemoryObjectReceiveStream[tuple[Any, ...]]
    reply: _Reply | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @classmethod
    def new(cls) -> _Parked:
        send, receive = anyio.create_memory_object_stream[tuple[Any, ...]](8)
        return cls(send, receive)


@dataclass(eq=False)
class _Reply:
    answer_type: type[Answer]
    ready: anyio.Event = field(default_factory=anyio.Event)
    value: Answer | None = None
    error: types.ErrorData | None = None


class Bridge:
    """Input-required rounds for 2026-07-28 clients whose calls reach handshake-era backends."""

    def __init__(self) -> None:
        self.tasks: TaskGroup | None = None
        """Set while the gateway runs: parked calls live here, not in one client request."""
        self._parked: dict[str, _Parked] = {}

    @property
    def ready(self) -> bool:
        return self.tasks is not None

    async def start(
        self, session: ServerSession, run: Callable[[AskFn], Awaitable[types.CallToolResult]]
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Run `run(ask)` in the background; its result, or the first thing it asks the client."""
        assert self.tasks is not None
        token = secrets.token_urlsafe(18)
        parked = _Parked.new()
        self._parked[token] = parked
        send = parked.send

        async def ask(request: ClientAsk) -> Answer:
            answer = _check(session, request)
            if len(self._parked) > MAX_PARKED:
                raise MCPError(types.INTERNAL_ERROR, "manifold: too many calls wait for client input")
            reply = _Reply(answer)
            await send.send(("ask", request, reply))
            with anyio.move_on_after(PARKED_TIMEOUT_S):
                await reply.ready.wait()
            if reply.error is not None:
                raise MCPError(reply.error.code, reply.error.message)
            if reply.value is None:
                raise MCPError(types.REQUEST_TIMEOUT, f"manifold: the client did not answer {request.method} "
                                                      f"within {PARKED_TIMEOUT_S:g} s")
            return reply.value

        async def background() -> None:
            event: tuple[Any, ...] = ("raise", MCPError(types.INTERNAL_ERROR, "manifold: the call was cancelled"))
            with parked.scope:  # cancelled when the client gives up on the call (see `_next`)
                try:
                    event = ("done", await run(ask))
                except Exception as exc:  # raised to the client's request that is waiting, as it would be inline
                    event = ("raise", exc)
            with send, anyio.move_on_after(PARKED_TIMEOUT_S):
                await send.send(event)
            self._parked.pop(token, None)

        self.tasks.start_soon(background)
        return await self._next(token, parked)

    async def resume(
        self, token: str, responses: types.InputResponses | None
    ) -> types.CallToolResult | types.InputRequiredResult:
        """The client came back with its answer: hand it to the waiting backend and go on."""
        parked = self._parked.get(token)
        if parked is None or parked.reply is None:
            raise MCPError(types.INVALID_PARAMS, "manifold: unknown or expired request_state; call the tool again")
        reply, parked.reply = parked.reply, None
        answer = (responses or {}).get(ANSWER_KEY)
        if answer is None:
            reply.error = types.ErrorData(code=types.INVALID_REQUEST, message="the client gave no answer")
        elif isinstance(answer, reply.answer_type):
            reply.value = answer
        else:
            try:
                reply.value = reply.answer_type.model_validate(answer.model_dump(by_alias=True))
            except ValueError:
                reply.error = types.ErrorData(code=types.INVALID_REQUEST,
                                              message=f"the client answered with {type(answer).__name__}")
        reply.ready.set()
        return await self._next(token, parked)

    async def _next(self, token: str, parked: _Parked) -> types.CallToolResult | types.InputRequiredResult:
        try:
            event = await parked.receive.receive()
        except anyio.get_cancelled_exc_class():  # the client cancelled its request: so is the call, at its backend
            parked.scope.cancel()
            raise
        if event[0] != "ask":
            self._parked.pop(token, None)
            parked.receive.close()
            if event[0] == "raise":
                raise event[1]
            result: types.CallToolResult = event[1]
            return result
        _, request, reply = event
        parked.reply = reply
        return types.InputRequiredResult(input_requests={ANSWER_KEY: request}, request_state=token)
