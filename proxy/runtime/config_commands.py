"""`mcp-sidecar config check [FILE]` and `mcp-sidecar config reference`.

`check` validates the configuration exactly as `serve` would (file, then `MCP_SIDECAR__*` variables) and prints
the effective result as YAML with secrets masked: fields marked secret in the model (literal header values,
`upstream.env`, collector headers) and the password of any URL. Exit status 2 on any problem.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from proxy.config import ConfigError, load_config

MASK = "***"
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@\s:]*:)[^/@\s]+@", re.IGNORECASE)
EXIT_CONFIG = 2


def masked(model: BaseModel) -> dict[str, Any]:
    """The model as plain data, every secret replaced by `***`."""
    data = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret") and value is not None:
            data[name] = {key: MASK for key in value} if isinstance(value, dict) else MASK
        elif isinstance(value, BaseModel):
            data[name] = masked(value)
        elif isinstance(value, dict):
            data[name] = {key: _masked_item(item, data[name][key]) for key, item in value.items()}
        elif isinstance(value, tuple):
            data[name] = [_masked_item(item, dumped) for item, dumped in zip(value, data[name], strict=True)]
    return {key: _without_url_passwords(value) for key, value in data.items()}


def _masked_item(item: Any, dumped: Any) -> Any:
    return masked(item) if isinstance(item, BaseModel) else dumped


def _without_url_passwords(value: Any) -> Any:
    if isinstance(value, str):
        return URL_PASSWORD.sub(lambda match: match.group("head") + MASK + "@", value)
    if isinstance(value, dict):
        return {key: _without_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_url_passwords(item) for item in value]
    return value


def add_parser(commands: Any) -> None:
    config = commands.add_parser("config", help="check a configuration, print the configuration reference")
    actions = config.add_subparsers(title="config commands", required=True)
    check = actions.add_parser("check", help="validate FILE (and MCP_SIDECAR__* variables) and print the "
                                             "effective configuration, secrets masked; exit 2 on error")
    check.add_argument("file", nargs="?", help="YAML or JSON config file (default: none, environment only)")
    check.set_defaults(run=check_command)
    reference = actions.add_parser("reference", help="print the configuration reference (docs/configuration.md)")
    reference.set_defaults(run=reference_command)


def check_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        return report_config_error(exc)
    print(yaml.safe_dump(masked(config), sort_keys=False, default_flow_style=False), end="")
    return 0


def report_config_error(exc: ConfigError) -> int:
    """Every problem on stderr, one a line with its dotted path; the exit status for a bad configuration."""
    print("mcp-sidecar: invalid configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_CONFIG


def reference_command(_args: argparse.Namespace) -> int:
    from proxy.config.reference import render

    print(render(), end="")
    return 0
