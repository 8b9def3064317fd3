"""A local OTLP/HTTP receiver for benchmarks: accepts exports (traces, metrics, logs), counts them, keeps nothing.

    python -m bench.otlp_sink --port 4318
"""

from __future__ import annotations

import argparse
from collections import Counter

from aiohttp import web

received: Counter[str] = Counter()


async def export(request: web.Request) -> web.Response:
    await request.read()
    received[request.match_info["signal"]] += 1
    return web.Response(body=b"", content_type=request.content_type or "application/x-protobuf")


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dict(received))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/{signal}", export)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
