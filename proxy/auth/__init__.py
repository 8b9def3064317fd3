"""Authentication: bearer token verification (jwt), key sources (keys). No aiohttp here."""
