"""Signs of tool poisoning in the text a model reads: descriptions, titles and every string of a schema.

Each check looks at one text at a time and says what it found and where; none of them needs the network.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from proxy.tools.findings import Finding, Rule, Severity, finding

INSTRUCTIONS = Rule("poisoning.model-instructions", "text addressed to the model rather than describing the tool",
                    "Remove the instructions from the definition; a description says what the tool does, nothing "
                    "more. Do not expose the server until its author explains them.")
CREDENTIALS = Rule("poisoning.credential-reference", "text that points at credentials, keys or dotfiles",
                   "A tool description has no reason to name secrets or dotfiles: remove it, and check what the "
                   "tool sends where.")
INVISIBLE = Rule("poisoning.invisible-unicode", "zero-width, tag or direction-changing characters in the text",
                 "Strip the invisible characters (the lock file and `tools diff` show them as \\uXXXX) and find out "
                 "what they hid.")
ENCODED = Rule("poisoning.encoded-blob", "a long encoded blob (base64 or hex) in the text",
               "Decode it and remove it: a model may follow instructions hidden in it.")
LONG_TEXT = Rule("poisoning.long-text", "text far longer than a tool needs",
                 "Shorten the description to what the tool does; long descriptions are where instructions hide.")
SHADOWING = Rule("poisoning.tool-shadowing", "a tool named like another tool, or text telling the model to call one",
                 "Rename the tool, or remove the text that steers the model towards another tool.")
RULES = (INSTRUCTIONS, CREDENTIALS, INVISIBLE, ENCODED, LONG_TEXT, SHADOWING)

# Addressed to the model: hiding things from the user, overriding instructions, chores before the call.
_INSTRUCTION_PATTERNS = (
    (r"\bignore\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|other)\s+(instructions|rules)", True),
    (r"\b(do\s+not|don'?t|never)\s+(tell|inform|mention|reveal|show|alert|notify)\b[^.]{0,40}\buser", True),
    (r"\bwithout\s+(telling|informing|notifying|alerting)\s+(the\s+)?user", True),
    (r"\b(keep|it\s+is)\s+(this\s+)?(a\s+)?secret\s+from\s+the\s+user", True),
    (r"<\s*/?\s*(important|system|instructions?|secret)\s*>", False),
    (r"\bbefore\s+(using|calling|running|invoking)\s+(this|the)\s+tool\b[^.]{0,30}\b(read|open|fetch|send|call|run|"
     r"pass|include|get)\b", False),
    (r"\byou\s+(must|should|have\s+to)\s+(first\s+)?(read|open|send|include|pass|call|fetch|upload)\b", False),
    (r"\b(override|supersede)s?\s+(any|all|the)\s+(other\s+)?(instructions|tools?)\b", False),
)
_INSTRUCTIONS = tuple((re.compile(pattern, re.IGNORECASE), hides) for pattern, hides in _INSTRUCTION_PATTERNS)
_CREDENTIALS = re.compile(
    r"(~/\.|\$HOME/\.)[\w.-]+|\bid_(rsa|ed25519|ecdsa|dsa)\b|\.ssh\b|\.aws/credentials|\.netrc\b|\.npmrc\b|"
    r"\.pgpass\b|\.env\b|\bprivate[\s_-]key\b|\b(api|access|secret)[\s_-]?keys?\b|\bpasswords?\b|\bcredentials?\b|"
    r"\bbearer\s+tokens?\b|/etc/(passwd|shadow)\b", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_HEX = re.compile(r"\b[0-9a-fA-F]{64,}\b")
_CALL_OTHER = r"\b(call|use|invoke|run|instead\s+of|before|after)\s+(the\s+)?[`'\"]?{name}[`'\"]?(\s+tool)?\b"
LONG_DESCRIPTION = 1500  # characters: about four times the longest description on the published servers tested
LONG_FIELD = 500  # a parameter's description or a title

# Invisible characters a model reads and a reviewer does not see.
TAG_CHARACTERS = range(0xE0000, 0xE0080)
BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])
ZERO_WIDTH = frozenset([0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E])


def escape_hidden(text: str) -> str:
    """Control and invisible format characters as \\uXXXX, so a reviewer sees what the model would read."""
    return "".join((f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}") if _hidden(char) else char
                   for char in text)


def _hidden(char: str) -> bool:
    return char != "\t" and (unicodedata.category(char) in ("Cf", "Cc", "Co") or ord(char) in TAG_CHARACTERS)


def texts(definition: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a definition a model reads, with its dotted path (keys named `name` are identifiers)."""
    if isinstance(definition, str):
        yield path, definition
    elif isinstance(definition, dict):
        for key, value in definition.items():
            yield from texts(value, f"{path}.{key}" if path else str(key))
    elif isinstance(definition, list):
        for index, value in enumerate(definition):
            yield from texts(value, f"{path}[{index}]")


def check_text(tool: str, location: str, text: str) -> Iterator[Finding]:
    yield from _instructions(tool, location, text)
    yield from _unicode(tool, location, text)
    credential = _CREDENTIALS.search(text)
    if credential:
        yield finding(CREDENTIALS, Severity.HIGH, tool, location, _excerpt(text, credential.start(), credential.end()))
    blob = _BASE64.search(text) or _HEX.search(text)
    if blob and _looks_encoded(blob.group()):
        yield finding(ENCODED, Severity.HIGH, tool, location, _excerpt(text, blob.start(), blob.end()))
    limit = LONG_DESCRIPTION if location == "description" else LONG_FIELD
    if len(text) > limit:
        yield finding(LONG_TEXT, Severity.HIGH, tool, location,
                      f"{len(text)} characters (more than {limit}): {_excerpt(text, 0, 60)}")


def _instructions(tool: str, location: str, text: str) -> Iterator[Finding]:
    for pattern, hides in _INSTRUCTIONS:
        match = pattern.search(text)
        if match:
            severity = Severity.CRITICAL if hides else Severity.HIGH
            yield finding(INSTRUCTIONS, severity, tool, location, _excerpt(text, match.start(), match.end()))
            return


def _unicode(tool: str, location: str, text: str) -> Iterator[Finding]:
    points = [ord(char) for char in text]
    tags = [p for p in points if p in TAG_CHARACTERS]
    bidi = [p for p in points if p in BIDI_CONTROLS]
    zero = [p for p in points if p in ZERO_WIDTH]
    if tags or bidi:
        kinds = (["tag characters"] if tags else []) + (["bidi controls"] if bidi else [])
        shown = " ".join(f"U+{p:04X}" for p in sorted(set(tags + bidi))[:8])
        yield finding(INVISIBLE, Severity.CRITICAL, tool, location, f"{' and '.join(kinds)}: {shown}")
    elif zero:
        shown = " ".join(f"U+{p:04X}" for p in sorted(set(zero)))
        yield finding(INVISIBLE, Severity.HIGH, tool, location, f"{len(zero)} zero-width characters: {shown}")


def _looks_encoded(run: str) -> bool:
    """A run of letters alone is a long word or identifier; an encoding mixes digits and both cases in."""
    if all(char in "0123456789abcdefABCDEF" for char in run):
        return len(run) >= 64
    return any(c.isdigit() for c in run) and any(c.islower() for c in run) and any(c.isupper() for c in run)


def check_names(tools: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    """Tools whose names collide once case and separators are ignored, or use letters outside ASCII, and texts
    that tell the model to call another tool of the server."""
    seen: dict[str, str] = {}
    for name in sorted(tools):
        folded = re.sub(r"[\s_.-]", "", unicodedata.normalize("NFKC", name)).casefold()
        if not name.isascii():
            yield finding(SHADOWING, Severity.HIGH, name, "name", f"non-ASCII characters in the name {name!r} "
                          f"({escape_hidden(name.encode('ascii', 'backslashreplace').decode())})")
        if folded in seen:
            yield finding(SHADOWING, Severity.HIGH, name, "name", f"{name!r} looks like the tool {seen[folded]!r}")
        seen.setdefault(folded, name)
    for name, definition in sorted(tools.items()):
        yield from _mentions_of_others(name, definition, [other for other in tools if other != name])


def _mentions_of_others(name: str, definition: dict[str, Any], others: list[str]) -> Iterator[Finding]:
    for location, text in texts({k: v for k, v in definition.items() if k != "name"}):
        for other in others:
            match = re.search(_CALL_OTHER.format(name=re.escape(other)), text, re.IGNORECASE)
            if match:
                yield finding(SHADOWING, Severity.HIGH, name, location,
                              f"mentions the tool {other!r}: {_excerpt(text, match.start(), match.end())}")
                return


def _excerpt(text: str, start: int, end: int, context: int = 40) -> str:
    """The matched text with a little context, hidden characters escaped, on one line."""
    left, right = max(0, start - context), min(len(text), end + context)
    middle = text[left:right].replace("\n", " ")
    return ("..." if left else "") + escape_hidden(middle) + ("..." if right < len(text) else "")
