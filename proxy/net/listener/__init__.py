"""The MCP listener's HTTP/1.1 server, on httptools: a request costs a fraction of what aiohttp's server spends."""

from proxy.net.listener.messages import HttpRequest, HttpResponse, ResponseStream
from proxy.net.listener.routes import RouteHandler, Routes
from proxy.net.listener.server import HttpServer

__all__ = ["HttpRequest", "HttpResponse", "HttpServer", "ResponseStream", "RouteHandler", "Routes"]
