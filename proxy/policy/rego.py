"""Rego evaluation with regopy: compile modules and data once into a bundle, query its entrypoints fast.

Measured pitfalls this module guards against (MCP-FACTS section 6): a built-in the engine lacks silently
evaluates undefined (so calls are linted at compile time and strict built-in errors are on), a runtime error comes
back as an S-expression instead of JSON, and a bare false can read as undefined (entrypoints avoid that).
The C calls are made directly through regopy's ctypes layer: building the input term that way costs about a third
less than regopy's generic converter, and strings go in JSON-escaped (see _escaped), which regopy's converter gets
wrong.
Only the input paths the modules mention are handed over, and results are remembered per compiled policy when
that is exact (see projection.py and memo.py); a tools/call's arguments are cut down to those the policy names
(narrowing.py), so that the memo also serves calls with fresh arguments.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import regopy
from regopy import Interpreter, LogLevel, RegoError
from regopy import rego_shared as native

from proxy.policy import narrowing
from proxy.policy.memo import ResultMemo
from proxy.policy.projection import InputUse, input_use, project

ENTRYPOINTS = ("mcp/decision", "mcp/visible", narrowing.ENTRYPOINT)

_KEYWORDS = frozenset({"if", "not", "some", "every", "in", "contains", "else", "default", "with", "as", "import",
                       "package", "true", "false", "null", "print", "set"})  # set(): the empty set
_CALL = re.compile(r"(?<![\w.\]])([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*\(")
_DEFINITION = re.compile(r"^([A-Za-z_][\w]*)\s*\(", re.MULTILINE)
_IMPORT = re.compile(r"^import\s+([\w.]+)(?:\s+as\s+(\w+))?", re.MULTILINE)
_STRINGS_AND_COMMENTS = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|#[^\n]*')
_WITH = re.compile(r"\bwith\b")
_TEMPLATE = re.compile(r"\$[\"`]")


class PolicyCompileError(Exception):
    """A module that does not parse, compile or lint; each problem is `file:line:col: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class EvaluationError(Exception):
    """Evaluation failed (a built-in error, a conflict, a missing function); the message is the engine's."""


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    bundle: regopy.Bundle
    modules: tuple[str, ...]
    use: InputUse  # the input paths the modules read; whether results may be remembered
    memo: ResultMemo | None = None  # present when use.cacheable
    narrows_arguments: bool = False  # defines data.mcp.argument_names (see narrowing.py)


def compile_policy(modules: Mapping[str, str], data: Mapping[str, Any] | None = None,
                   entrypoints: tuple[str, ...] = ENTRYPOINTS) -> CompiledPolicy:
    """Parse, lint and compile; raises PolicyCompileError naming file and line of every problem found."""
    builder = Interpreter()
    builder.log_level = LogLevel.NONE  # otherwise rego-cpp prints parse errors to stdout by itself
    problems: list[str] = []
    for name, source in modules.items():
        try:
            builder.add_module(name, source)
        except RegoError as exc:
            problems.extend(describe_errors(str(exc), modules))
    problems.extend(lint_builtins(modules, builder))
    if problems:
        raise PolicyCompileError(problems)
    try:
        if data:
            builder.add_data_json(orjson.dumps(dict(data)).decode())
        bundle = builder.build(None, list(entrypoints))
    except RegoError as exc:
        raise PolicyCompileError(describe_errors(str(exc), modules)) from None
    if not bundle.ok():
        raise PolicyCompileError(["the policy bundle did not build"])
    blanked = [_blank_literals(source) for source in modules.values()]
    called = {match.group(1) for text in blanked for match in _CALL.finditer(text)}
    use = input_use(blanked, called, interpolated=any(_TEMPLATE.search(source) for source in modules.values()))
    return CompiledPolicy(bundle, tuple(modules), use, ResultMemo() if use.cacheable else None,
                          narrowing.defines_argument_names(blanked))


def lint_builtins(modules: Mapping[str, str], builder: Interpreter) -> list[str]:
    """Every function call must be a user function or a built-in this engine has (else it would be undefined),
    and no `with` (which brings the engine down)."""
    defined: set[str] = set()
    for source in modules.values():
        defined.update(_DEFINITION.findall(_blank_literals(source)))
    problems = []
    for name, source in modules.items():
        text = _blank_literals(source)
        for match in _WITH.finditer(text):
            line, column = _position(source, match.start())
            problems.append(f"{name}:{line}:{column}: `with` is not supported: rego-cpp 1.5.2 crashes on it (a test "
                            "takes its input from a `<test>_input` rule instead)")
        aliases = {"data", "input"}
        for path, alias in _IMPORT.findall(text):
            aliases.add(alias or path.rsplit(".", 1)[-1])
        for match in _CALL.finditer(text):
            function = match.group(1)
            head = function.split(".", 1)[0]
            if function in _KEYWORDS or head in aliases or function in defined or builder.is_builtin(function):
                continue
            line, column = _position(source, match.start(1))
            problems.append(f"{name}:{line}:{column}: unknown or unsupported built-in function {function}()")
    return problems


def _blank_literals(source: str) -> str:
    """The source with strings and comments replaced by spaces, so offsets still match."""
    return _STRINGS_AND_COMMENTS.sub(lambda match: " " * len(match.group(0)), source)


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


_ERROR_AT = re.compile(r"\(error (\d+):")
_MESSAGE = re.compile(r"\(errormsg (\d+):")


def describe_errors(text: str, modules: Mapping[str, str]) -> list[str]:
    """Turn rego-cpp's error S-expression into `file:line:col: message` lines."""
    problems = []
    for chunk in text.split("(error ")[1:]:
        chunk = "(error " + chunk
        message = _length_prefixed(_MESSAGE, chunk) or "error"
        location = ""
        name_len = _ERROR_AT.match(chunk)
        if name_len:
            start = name_len.end()
            name = chunk[start:start + int(name_len.group(1))]
            rest = chunk[start + len(name):].split(None, 1)[0].split("|")
            if name in modules and len(rest) >= 2 and rest[1].isdigit():
                line, column = _position(modules[name], int(rest[1]))
                location = f"{name}:{line}:{column}: "
            elif name:
                location = f"{name}: "
        problems.append(location + message)
    return problems or [text.strip() or "unknown Rego error"]


def _length_prefixed(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if match is None:
        return None
    return text[match.end():match.end() + int(match.group(1))]


class Evaluator:
    """Queries compiled bundles with one interpreter per thread (regopy does not promise thread safety)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _interpreter(self) -> Interpreter:
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = Interpreter()
            interpreter.strict_built_in_errors = True  # a failing built-in is an error (deny), not undefined
            interpreter.log_level = LogLevel.NONE
            self._local.interpreter = interpreter
        return interpreter

    def evaluate_narrowed(self, policy: CompiledPolicy, entrypoint: str, document: Any) -> Any:
        """evaluate() as the sidecar queries a message's entrypoint: a tools/call's arguments cut down first to the
        ones the policy's argument_names reads, when it defines that entrypoint."""
        if not policy.narrows_arguments or narrowing.call_tool(document) is None:
            return self.evaluate(policy, entrypoint, document)
        projected = project(document, policy.use.paths)  # projected once, cut down and queried twice as it is
        try:
            narrowed = narrowing.narrow(projected, lambda bare: self._evaluate(policy, narrowing.ENTRYPOINT, bare))
        except narrowing.IllTypedNamesError as exc:
            raise EvaluationError(str(exc)) from None
        return self._evaluate(policy, entrypoint, narrowed)

    def evaluate(self, policy: CompiledPolicy, entrypoint: str, document: Any) -> Any:
        """The entrypoint's value, or None when undefined; raises EvaluationError when evaluation failed."""
        return self._evaluate(policy, entrypoint, project(document, policy.use.paths))

    def _evaluate(self, policy: CompiledPolicy, entrypoint: str, projected: Any) -> Any:
        key = _memo_key(entrypoint, projected) if policy.memo is not None else None
        if key is not None:
            text = policy.memo.get(key)
            if text is not None:
                return _value_of(text)
        text = self._run(policy, entrypoint, projected)
        if key is not None:
            policy.memo.put(key, text)
        return _value_of(text)

    def _run(self, policy: CompiledPolicy, entrypoint: str, document: Any) -> str:
        """The engine's output text for the entrypoint; raises EvaluationError when evaluation failed."""
        interpreter = self._interpreter()
        term = native.rego_new_input()
        try:
            _push(term, document)
            if native.rego.regoSetInput(interpreter._impl, term) != 0:
                raise EvaluationError("the input document was rejected")
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EvaluationError(f"input not representable in Rego: {exc}") from None
        finally:
            native.rego_free_input(term)
        output = native.rego_bundle_query_entrypoint(interpreter._impl, policy.bundle._impl, entrypoint)
        try:
            text = native.rego_output_string(output)
        except RegoError as exc:
            raise EvaluationError(str(exc)) from None
        finally:
            native.rego_free_output(output)
        if text != "undefined" and not text.startswith("{"):
            raise EvaluationError(_length_prefixed(_MESSAGE, text) or text.strip())  # never remembered
        return text


def _memo_key(entrypoint: str, document: Any) -> bytes | None:
    try:
        text = orjson.dumps(document)
    except (TypeError, orjson.JSONEncodeError):
        return None  # not plain JSON: evaluated (or refused by _push) every time
    if b"null" in text and _non_finite(document):
        return None  # orjson writes NaN and infinities as null: such a key would match a real null's
    return entrypoint.encode() + b"\0" + text


def _non_finite(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return not math.isfinite(value)
    if kind is dict:
        return any(_non_finite(item) for item in value.values())
    if kind is list or kind is tuple:
        return any(_non_finite(item) for item in value)
    return False


def _value_of(text: str) -> Any:
    if text == "undefined":
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise EvaluationError(_length_prefixed(_MESSAGE, text) or text.strip()) from None
    expressions = parsed.get("expressions") if isinstance(parsed, dict) else None
    if not expressions:
        return None
    return expressions[0]


_rego = native.rego
# Bound once: looking the C functions up on the library object per value costs about 5 us per call decision.
_input_string, _input_item, _input_object = _rego.regoInputString, _rego.regoInputObjectItem, _rego.regoInputObject
_input_array, _input_boolean, _input_null = _rego.regoInputArray, _rego.regoInputBoolean, _rego.regoInputNull
_input_int, _input_float = _rego.regoInputInt, _rego.regoInputFloat
_ESCAPED: dict[str, bytes] = {}  # short strings (keys, names, roles) already escaped; bounded, never evicted
_ESCAPED_MAX_ENTRIES, _ESCAPED_MAX_LENGTH = 4096, 64


def _escaped(text: str) -> bytes:
    """The string JSON-escaped without its quotes, as rego-cpp keeps strings parsed from policy text and JSON: a
    raw string would compare unequal to the same literal, and would come back unescaped in the output JSON (an
    injection). A NUL is refused outright: it has no business in a name, a path or a statement."""
    escaped = _ESCAPED.get(text)
    if escaped is None:
        if "\x00" in text:
            raise ValueError("strings must not contain NUL characters")
        escaped = orjson.dumps(text)[1:-1]
        if len(text) <= _ESCAPED_MAX_LENGTH and len(_ESCAPED) < _ESCAPED_MAX_ENTRIES:
            _ESCAPED[text] = escaped
    return escaped


def _push(term: Any, value: Any) -> None:
    """Build the input term on the engine's stack: children first, then the container."""
    kind = type(value)
    if kind is str:
        _input_string(term, _escaped(value))
    elif kind is dict:
        for key, item in value.items():
            _input_string(term, _escaped(key if type(key) is str else str(key)))
            _push(term, item)
            _input_item(term)
        _input_object(term, len(value))
    elif kind is bool:
        _input_boolean(term, value)
    elif kind is int:
        if not -(2**63) <= value < 2**63:
            raise OverflowError("integer out of range")
        _input_int(term, value)
    elif value is None:
        _input_null(term)
    elif kind is float:
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
        _input_float(term, value)
    elif kind is list or kind is tuple:
        for item in value:
            _push(term, item)
        _input_array(term, len(value))
    else:
        raise TypeError(f"cannot pass {kind.__name__} to Rego")
