#!/bin/bash
# make bench: every benchmark, on the project's Node 24. wrk comes from Debian (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else echo "bench: wrk is not installed: sudo apt-get install wrk" >&2; exit 1; fi
fi
NODE="node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning"
$NODE bench/hotpath.ts "$@"
$NODE bench/coldstart.ts
