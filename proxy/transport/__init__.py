"""Client-facing transports: thin aiohttp handlers that turn HTTP into CallContexts and Replies into HTTP."""
