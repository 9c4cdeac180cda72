"""The ASGI app: MCP at the configured path, plus /healthz, /readyz, /status and /metrics.

Bearer tokens (constant-time compared) guard the MCP path only; the operations
endpoints answer without one so probes and scrapers need no secret, and show
no secret. Host and Origin are checked against DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.app import Gateway
from gateway.errors import ConfigError, Problem


class _StaticTokens:
    """The SDK's TokenVerifier for the bearer tokens of MANIFOLD_AUTH_TOKEN."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode()
        matched = False
        for known in self._tokens:  # compare against every token, so timing tells nothing
            matched |= hmac.compare_digest(given, known)
        return AccessToken(token="redacted", client_id="manifold-client", scopes=[]) if matched else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(gateway: Gateway) -> Starlette:
    s = gateway.settings
    tokens = s.tokens()
    if not tokens and not is_loopback(s.host) and not s.allow_insecure:
        raise ConfigError([Problem(
            "settings", "host (MANIFOLD_HOST)",
            f"refusing to serve on non-loopback address {s.host} without a bearer token",
            "set MANIFOLD_AUTH_TOKEN in the env file, or MANIFOLD_ALLOW_INSECURE=true if you really mean it",
        )])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready = gateway.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def status(request: Request) -> Response:
        return JSONResponse(gateway.status())

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(gateway.metrics.render(gateway.health.values()), media_type=CONTENT_TYPE_LATEST)

    security = None
    if not is_loopback(s.host):
        wildcard = s.host in ("0.0.0.0", "::")
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=not wildcard,
            allowed_hosts=[f"{s.host}:*", s.host],
            allowed_origins=[f"http://{s.host}:*", f"https://{s.host}:*"],
        )
    auth = (
        AuthSettings(issuer_url=f"http://{s.host}:{s.port}", resource_server_url=None)  # type: ignore[arg-type]
        if tokens else None
    )
    return gateway.mcp.server.streamable_http_app(
        streamable_http_path=s.path,
        stateless_http=s.stateless,
        max_request_body_size=s.max_body_bytes,
        host=s.host,
        transport_security=security,
        auth=auth,
        token_verifier=_StaticTokens(tokens) if tokens else None,
        custom_starlette_routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/status", status),
            Route("/metrics", metrics),
        ],
    )
