#!/usr/bin/env bash
# Installs the published npm MCP servers the e2e tests drive into .tools/ (project-local, pinned versions).
# Without npm this does nothing; the tests that need these servers then skip and say why.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVER_EVERYTHING_VERSION=2026.8.31
if ! command -v npm >/dev/null 2>&1; then
  echo "install_tools: npm not found; npm-based e2e tests will be skipped" >&2
  exit 0
fi
marker=.tools/node_modules/@modelcontextprotocol/server-everything/package.json
if [ -f "$marker" ] && grep -q "\"version\": \"$SERVER_EVERYTHING_VERSION\"" "$marker"; then
  exit 0
fi
mkdir -p .tools
npm install --prefix .tools --no-audit --no-fund --loglevel=error \
  "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION"
