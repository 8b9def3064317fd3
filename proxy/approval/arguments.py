"""What an approver sees of a waiting call's arguments, and the hash that binds a decision to exactly them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.audit import redact


def arguments_hash(method: str | None, target: str | None, arguments: Mapping[str, Any] | None) -> str:
    """sha256 of the canonical JSON of method, target and arguments: a decision naming it cannot release a call
    with other arguments (or another tool), even one given the same approval id."""
    canonical = orjson.dumps({"method": method, "target": target, "arguments": arguments},
                             option=orjson.OPT_SORT_KEYS, default=repr)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def shown_arguments(arguments: Mapping[str, Any] | None, mode: str, paths: tuple[str, ...]) -> Any:
    """The arguments as `approval.show_arguments` lets approvers see them (None for `none`)."""
    if mode == "none" or arguments is None:
        return None
    if mode == "full":
        return dict(arguments)
    return redact(dict(arguments), paths)
