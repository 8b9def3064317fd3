"""Straight-line code for frozen, slotted dataclasses on the hot path (CallContext: one per message, several copies).

A frozen dataclass sets each field through `object.__setattr__`, and `dataclasses.replace` rebuilds the whole
instance through `__init__`; both cost more than calling each slot's own setter, once per field, in generated code.
The generated text is made of the class's field names only; tests hold both helpers to `dataclasses.replace` and to
the dataclass's own `__init__`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def slot_setters(cls: type) -> dict[str, Callable[[Any, Any], None]]:
    """Each field's slot setter, which assigns even on a frozen instance."""
    return {item.name: cls.__dict__[item.name].__set__ for item in dataclasses.fields(cls)}


def field_copier(cls: type) -> Callable[[Any, Any], None]:
    """`copy_fields(source, target)`: one setter call per field, copying every field of `source` onto `target`."""
    setters = slot_setters(cls)
    ordered = sorted(setters)
    lines = [f"    set_{name}(target, source.{name})" for name in ordered]
    namespace: dict[str, Any] = {f"set_{name}": setters[name] for name in ordered}
    exec("def copy_fields(source, target):\n" + "\n".join(lines), namespace)  # field names only
    return namespace["copy_fields"]


def install_fast_init(cls: type) -> None:
    """Replace the dataclass's `__init__` by one with the same signature and defaults that sets each field through
    its slot's setter: about half the cost."""
    namespace: dict[str, Any] = {"MISSING": dataclasses.MISSING}
    params, lines = [], []
    for item in dataclasses.fields(cls):
        name = value = item.name
        namespace[f"set_{name}"] = cls.__dict__[name].__set__
        if item.default is not dataclasses.MISSING:
            namespace[f"default_{name}"] = item.default
            params.append(f"{name}=default_{name}")
        elif item.default_factory is not dataclasses.MISSING:
            namespace[f"factory_{name}"] = item.default_factory
            params.append(f"{name}=MISSING")
            value = f"factory_{name}() if {name} is MISSING else {name}"
        else:
            params.append(name)
        lines.append(f"    set_{name}(self, {value})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines), namespace)  # field names only
    cls.__init__ = namespace["__init__"]  # type: ignore[misc]
