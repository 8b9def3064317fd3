"""Sidecar profiles: config overlays made of named feature parts, applied only where this build has the feature.

A profile (bench/profiles/<name>.yaml) has `parts` (feature name -> config sections, plus an optional `load` entry
for what the load generator must do when the part is on, such as sending a token), optional `load` options for the
whole profile (`repeat`, `headers`) and optional `needs_any` (parts without which the target is pointless).
A part whose sections the build's Config does not define is reported missing; one that does not validate is
reported invalid with its problems. Neither is faked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from proxy.config import Config, ConfigError, load_config

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass
class Profile:
    name: str
    overlay: dict[str, Any] = field(default_factory=dict)  # the config sections of the parts that are on
    on: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"on": self.on, "missing": self.missing, "invalid": self.invalid, "skipped": self.skip_reason}


def load_profile(name: str, base: dict[str, Any], placeholders: dict[str, str]) -> Profile:
    """Read a profile, fill its placeholders ({tmp}, {root}, {profile}, {run_id}, {otlp_url}, {redis_url},
    {jwt_*}) and
    keep the parts this build can run; `base` is the sidecar config every profile starts from."""
    raw = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text()) or {}
    filled = _fill(raw, {**placeholders, "profile": name})
    profile = Profile(name, load=filled.get("load") or {})
    known = set(Config.model_fields)
    for part, contents in (filled.get("parts") or {}).items():
        sections = dict(contents)
        part_load = sections.pop("load", {})  # what the load generator must do for this part (e.g. a token)
        absent = sorted(set(sections) - known)
        if absent:
            profile.missing.append(f"{part} (no `{'`, `'.join(absent)}` config in this build)")
            continue
        problems = _problems(merge(base, profile.overlay, sections))
        if problems:
            profile.invalid[part] = problems
            continue
        profile.overlay = merge(profile.overlay, sections)
        profile.load = merge(profile.load, part_load)
        profile.on.append(part)
    needs = filled.get("needs_any") or []
    if needs and not set(needs) & set(profile.on):
        profile.skip_reason = "needs one of: " + ", ".join(needs) + " (not in this build)"
    return profile


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of config dicts, later layers winning."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _problems(data: dict[str, Any]) -> list[str]:
    flat = {f"{section}.{key}": value for section, values in data.items() for key, value in values.items()}
    try:
        load_config(None, env={}, overrides=flat)
    except ConfigError as exc:
        return exc.problems
    return []


def _fill(node: Any, placeholders: dict[str, str]) -> Any:
    if isinstance(node, str):
        return node.format_map(placeholders)
    if isinstance(node, dict):
        return {key: _fill(value, placeholders) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, placeholders) for value in node]
    return node
