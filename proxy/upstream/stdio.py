"""The stdio upstream: spawn an MCP server program and serve it on the sidecar's endpoints.

One supervised child serves every 2026-07-28 caller (ids remapped); each 2025-era session gets a child of its own.
"""

from __future__ import annotations

from proxy.config import StdioUpstreamConfig
from proxy.upstream.channel.upstream import ChannelUpstream
from proxy.upstream.process import ChildProcess, ProcessSpec, child_environment


class StdioUpstream(ChannelUpstream):
    def __init__(self, config: StdioUpstreamConfig) -> None:
        spec = ProcessSpec(
            argv=tuple(config.command),
            env=child_environment(config.env),
            cwd=config.cwd,
            max_line_bytes=config.max_event_bytes,
            shutdown_grace=config.shutdown_grace_seconds,
        )
        super().__init__(config, lambda label: ChildProcess(spec, label), f"stdio {config.command[0]}")
