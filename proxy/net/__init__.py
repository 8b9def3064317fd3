"""The project's own network infrastructure: the HTTP/1.1 listener, the upstream connection pool, SSE framing."""
