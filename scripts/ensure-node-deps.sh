#!/bin/sh
# Install the Node test tools (Prism, @octokit/openapi) from package-lock.json.
#
# Runs `npm ci` when node_modules/.package-lock.json (written by npm on every install)
# is missing or older than package-lock.json; otherwise does nothing. Safe to call
# from every `make test`.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ensure-node-deps: 'node' and 'npm' are required for the contract tests (Prism needs Node.js >= 20)." >&2
    echo "ensure-node-deps: install them (Debian: apt-get install nodejs npm) and re-run." >&2
    exit 1
fi

STAMP=node_modules/.package-lock.json
if [ -f "$STAMP" ] && [ ! package-lock.json -nt "$STAMP" ] && [ -x node_modules/.bin/prism ]; then
    echo "ensure-node-deps: node_modules is up to date"
    exit 0
fi

echo "ensure-node-deps: running npm ci (node $(node --version), npm $(npm --version 2>/dev/null))"
start=$(date +%s)
npm ci --no-audit --no-fund --loglevel=error
echo "ensure-node-deps: npm ci done in $(( $(date +%s) - start ))s"
