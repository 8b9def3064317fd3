"""Routes: exact paths; an unknown path is 404, a known path with another method 405 with Allow."""

from __future__ import annotations

from proxy.net.listener import HttpRequest, HttpResponse, Routes


async def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text(200, "ok")


async def other(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text(200, "other")


def test_a_known_path_and_method_find_their_handler() -> None:
    routes = Routes()
    routes.add("POST", "/mcp", ok)
    routes.add("GET", "/mcp", other)
    assert routes.find("POST", "/mcp") is ok and routes.find("GET", "/mcp") is other


def test_an_unknown_path_is_404() -> None:
    routes = Routes()
    routes.add("GET", "/mcp", ok)
    for path in ("/", "/mcp/", "/MCP", "/mcpx"):  # exact paths only
        found = routes.find("GET", path)
        assert isinstance(found, HttpResponse) and found.status == 404 and found.body == b"Not Found"


def test_another_method_is_405_naming_the_allowed_ones_sorted() -> None:
    routes = Routes()
    for method in ("POST", "DELETE", "GET"):
        routes.add(method, "/mcp", ok)
    found = routes.find("PUT", "/mcp")
    assert isinstance(found, HttpResponse) and found.status == 405
    assert found.headers["Allow"] == "DELETE, GET, POST"


def test_adding_a_method_again_replaces_its_handler() -> None:
    routes = Routes()
    routes.add("GET", "/x", ok)
    routes.add("GET", "/x", other)
    assert routes.find("GET", "/x") is other
