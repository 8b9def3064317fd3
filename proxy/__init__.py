"""mcp-sidecar: a sidecar reverse proxy for MCP servers."""

__version__ = "0.1.0"
