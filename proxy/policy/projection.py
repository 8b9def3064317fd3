"""What part of the input document a policy reads, and whether its results may be remembered.

Rego reaches the input only through the word `input`, so the dotted paths after every `input` in the modules
(strings and comments blanked) bound what evaluation can see. Each path keeps its whole subtree: `input.a.b[x]`,
`x := input.a.b` and `import input.a.b` all keep `a.b`; a bare `input` (or `input[x]`) keeps everything. Handing
rego-cpp only that projection costs far fewer native calls, and evaluating it gives the same result as the whole.

A result may be remembered, keyed by the projection, when the projection holds nothing that differs on every
request (the time, the request id) and no module calls a built-in whose answer depends on the moment or chance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Path = tuple[str, ...]
# For isinstance(): dict first, an exact check that spares nearly every call the Mapping ABC's slower one.
MAPPINGS = (dict, Mapping)
MAX_WRITTEN_DEPTH = 8  # see _taker

_INPUT_REF = re.compile(r"(?<![\w.])input\b((?:\s*\.\s*[A-Za-z_]\w*)*)")
_NAME = re.compile(r"[A-Za-z_]\w*")
# Fields new on every request: a cache keyed by a projection that holds one of them would never hit.
PER_REQUEST: tuple[Path, ...] = (("request", "time"), ("request", "time_ns"), ("request", "id"))
# Built-ins whose value depends on the clock, chance or the outside world, not only on their arguments.
UNREPEATABLE = frozenset({
    "time.now_ns", "rand.intn", "uuid.rfc4122", "io.jwt.decode_verify", "http.send", "net.lookup_ip_addr",
    "opa.runtime", "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
})


@dataclass(frozen=True, slots=True)
class InputUse:
    paths: tuple[Path, ...] | None  # None: the whole input
    cacheable: bool


def input_use(blanked_sources: Iterable[str], called: Iterable[str], interpolated: bool = False) -> InputUse:
    """The input paths a set of modules reads (sources with strings and comments already blanked).
    `interpolated`: a module has template strings (`$"..."`), whose expressions hide in what was blanked."""
    found: set[Path] = {()} if interpolated else set()
    for source in blanked_sources:
        for match in _INPUT_REF.finditer(source):
            found.add(tuple(_NAME.findall(match.group(1))))
    paths = None if () in found else _outermost(found)
    reads_per_request = paths is None or any(_overlaps(path, field) for path in paths for field in PER_REQUEST)
    cacheable = not reads_per_request and not UNREPEATABLE.intersection(called)
    return InputUse(paths, cacheable)


def _outermost(paths: set[Path]) -> tuple[Path, ...]:
    """Drop paths that lie under another kept path (its subtree is kept whole anyway)."""
    kept = [path for path in paths if not any(other != path and path[:len(other)] == other for other in paths)]
    return tuple(sorted(kept))


def _overlaps(path: Path, field: Path) -> bool:
    shorter = min(len(path), len(field))
    return path[:shorter] == field[:shorter]


def project(document: Any, paths: tuple[Path, ...] | None) -> Any:
    """The part of `document` under `paths`; a value met on the way that is not an object is kept whole."""
    if paths is None or not isinstance(document, MAPPINGS):
        return document
    return _taker(paths)(document)


@lru_cache(maxsize=64)
def _taker(paths: tuple[Path, ...]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function that takes the paths out of a document, written out as straight-line code once per set of paths:
    about half the time of walking the paths as a tree on every decision. Deeper paths are walked: Python allows
    20 nested blocks, and each level of the tree takes two."""
    tree = _tree(paths)
    if max(map(len, paths), default=0) > MAX_WRITTEN_DEPTH:
        return lambda source: _take(source, tree)
    lines = ["def take(source0):", "    result0 = {}", *_take_lines(tree, 0, "    "), "    return result0"]
    namespace: dict[str, Any] = {"MAPPINGS": MAPPINGS}
    exec("\n".join(lines), namespace)  # the text holds only the paths' names, written as Python string literals
    return namespace["take"]


def _tree(paths: tuple[Path, ...]) -> dict[str, Any]:
    """The paths as nested keys, None where a subtree is kept whole."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = None
    return tree


def _take_lines(tree: dict[str, Any], depth: int, indent: str) -> list[str]:
    """Code copying `tree` from source<depth> into result<depth>: a subtree is taken from an object and kept whole
    from any other value."""
    source, result, child = f"source{depth}", f"result{depth}", depth + 1
    lines = []
    for key, subtree in tree.items():
        name = repr(key)
        lines.append(f"{indent}if {name} in {source}:")
        if subtree is None:
            lines.append(f"{indent}    {result}[{name}] = {source}[{name}]")
            continue
        inner = indent + "        "
        lines += [f"{indent}    source{child} = {source}[{name}]",
                  f"{indent}    if isinstance(source{child}, MAPPINGS):",
                  f"{inner}result{child} = {{}}",
                  *_take_lines(subtree, child, inner),
                  f"{inner}{result}[{name}] = result{child}",
                  f"{indent}    else:",
                  f"{indent}        {result}[{name}] = source{child}"]
    return lines


def _take(source: Mapping[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, subtree in tree.items():
        if key in source:
            value = source[key]
            if subtree is None or not isinstance(value, MAPPINGS):
                result[key] = value
            else:
                result[key] = _take(value, subtree)
    return result
