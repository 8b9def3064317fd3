"""Where a client finds this resource's OAuth metadata (RFC 9728): the well-known path and its path form."""

from __future__ import annotations

from urllib.parse import urlsplit

from proxy.config import ServerConfig

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(server: ServerConfig) -> str:
    """RFC 9728 path form: the well-known prefix inserted before the resource's path."""
    parts = urlsplit(server.resource_url)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"
