"""Coordination patterns: ways to run several tool calls as one request."""
