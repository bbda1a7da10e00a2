#!/bin/sh
# Installs Kumo's dependencies, including Node 24 itself (the `node` package from the npm
# registry), so a fresh machine needs only some Node.js with npm and make. Idempotent: it does
# nothing when node_modules matches package-lock.json.
set -eu
cd "$(dirname "$0")/.."

stamp=node_modules/.kumo-setup
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ "$stamp" -nt package.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "kumo setup: npm is not installed. Install Node.js (any version >= 18) with npm, then run this again." >&2
  exit 1
fi
echo "kumo setup: installing dependencies and Node 24 from the npm registry (npm ci)..."
npm ci --no-audit --no-fund --loglevel=error
# isolated-vm's install step picks the prebuilt binary for the Node that runs it; make sure
# that was the project's Node 24 and not the system's.
if ! PATH="$PWD/node_modules/.bin:$PATH" node --no-node-snapshot -e "require('isolated-vm')" 2>/dev/null; then
  echo "kumo setup: rebuilding isolated-vm for Node $(node_modules/.bin/node --version)..."
  PATH="$PWD/node_modules/.bin:$PATH" npm rebuild isolated-vm --loglevel=error
  PATH="$PWD/node_modules/.bin:$PATH" node --no-node-snapshot -e "require('isolated-vm')"
fi
touch "$stamp"
echo "kumo setup: done (node $(node_modules/.bin/node --version))."
