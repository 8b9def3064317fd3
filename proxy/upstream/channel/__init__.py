"""Message channels shared by many callers (a child's stdio, a legacy SSE connection): multiplexing,
supervision, sessions."""
