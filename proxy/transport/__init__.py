"""Client-facing MCP transports on the project's own listener: handlers that turn HTTP requests into CallContexts, and
the one relay that turns Replies back into HTTP."""
