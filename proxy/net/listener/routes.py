"""The listener's routes: exact paths, each with its methods and handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from proxy.net.listener.messages import HttpRequest, HttpResponse, ResponseStream

RouteHandler = Callable[[HttpRequest], Awaitable[HttpResponse | ResponseStream]]


class Routes:
    """Exact paths, each with its methods. A known path asked with another method answers 405 with Allow."""

    def __init__(self) -> None:
        self._paths: dict[str, dict[str, RouteHandler]] = {}

    def add(self, method: str, path: str, handler: RouteHandler) -> None:
        self._paths.setdefault(path, {})[method] = handler

    def find(self, method: str, path: str) -> RouteHandler | HttpResponse:
        methods = self._paths.get(path)
        if methods is None:
            return HttpResponse.text(404, "Not Found")
        handler = methods.get(method)
        if handler is None:
            return HttpResponse.text(405, "Method Not Allowed", {"Allow": ", ".join(sorted(methods))})
        return handler
