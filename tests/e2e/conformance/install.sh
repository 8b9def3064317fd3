#!/bin/sh
# Installs the pinned MCP conformance suite (package.json + package-lock.json beside this script) into
# .tools/conformance at the repository root. Idempotent: does nothing when the installed lock file matches.
# Without node/npm it only says so; tests/e2e/test_conformance.py then skips with that reason.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DEST="$ROOT/.tools/conformance"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "conformance: node/npm not found; skipping install (the conformance test will be skipped)" >&2
    exit 0
fi
if [ -f "$DEST/.installed-lock.json" ] && cmp -s "$HERE/package-lock.json" "$DEST/.installed-lock.json" \
        && [ -d "$DEST/node_modules/@modelcontextprotocol/conformance" ]; then
    exit 0
fi
mkdir -p "$DEST"
cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error)
cp "$HERE/package-lock.json" "$DEST/.installed-lock.json"
echo "conformance: installed @modelcontextprotocol/conformance into $DEST"
