"""Manifold backend type `stdio`: an MCP server run as a child process."""
