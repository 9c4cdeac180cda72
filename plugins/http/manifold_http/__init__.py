"""Manifold backend type `http`: a remote MCP server over streamable HTTP or SSE."""
