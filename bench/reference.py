"""Reference targets: nginx, a proxy written in C, placed where the sidecar runs (its core, the same upstream).

They answer what no sidecar figure can: how much of a gap to `direct` any proxy on the other core pays on this
machine, whatever its language.

- `ref-nginx`: nginx as a reverse proxy, keep-alive pool to the upstream, responses unbuffered (SSE relayed as it
  comes). The yardstick for the throughput ratio and the added latency.
- `ref-static`: nginx answering every call with a canned tool result, never asking the upstream. The floor of a cache
  hit: no server on that core answers this load generator faster.

nginx runs as one process (`master_process off`), so its CPU accounting is that process's, as for the sidecar.
A machine without nginx skips these targets (listed as skipped, never faked).
"""

from __future__ import annotations

import shutil
from pathlib import Path

NAMES = ("ref-nginx", "ref-static")
NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
CANNED_RESULT = ('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}],'
                 '"isError":false}}')


def nginx_binary() -> str | None:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def skip_reason() -> str | None:
    return None if nginx_binary() else "nginx is not installed (apt-get install nginx-light)"


def nginx_config(name: str, port: int, upstream_port: int, work: Path) -> str:
    """The whole nginx.conf of reference target `name`, listening on `port`, its files under `work`."""
    if name == "ref-nginx":
        # The SDK server checks Host against its own address (DNS-rebinding protection): send it that.
        location = (f"proxy_pass http://upstream; proxy_http_version 1.1; proxy_set_header Connection \"\"; "
                    f"proxy_set_header Host 127.0.0.1:{upstream_port}; proxy_buffering off; "
                    "proxy_read_timeout 60s;")
        pool = f"upstream upstream {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_timeout 4s; }}"
    elif name == "ref-static":
        location = f"default_type application/json; return 200 '{CANNED_RESULT}';"
        pool = ""
    else:
        raise ValueError(f"unknown reference target {name!r}")
    temp = " ".join(f"{kind}_temp_path {work / ('nginx-' + kind)};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"master_process off; daemon off; worker_processes 1; pid {work / f'{name}.pid'};\n"
            f"error_log {work / f'{name}-error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; keepalive_requests 100000; {temp}\n"
            f"  {pool}\n"
            f"  server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }}\n"
            "}\n")


def nginx_args(config: Path, work: Path) -> list[str]:
    """nginx's arguments (after the binary): its prefix and early error log in `work`, not in /var."""
    return ["-p", str(work), "-e", str(work / "nginx-startup.log"), "-c", str(config)]
