#!/bin/bash
# make bench: every benchmark, on the project's Node 24; each prints a markdown table and writes
# bench/results/<name>.json (the step load also docs/benchmarks/stepload.{csv,svg}).
# wrk comes from Debian; the OpenStack benchmark needs RabbitMQ on 127.0.0.1:5672.
#   make bench                 all of them (about 6 minutes)
#   make bench ONLY=hotpath    one of: hotpath coldstart serving stepload events openstack
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else echo "bench: wrk is not installed: sudo apt-get install wrk" >&2; exit 1; fi
fi
NODE="node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning"
only="${ONLY:-}"
run() { if [ -z "$only" ] || [ "$only" = "$1" ]; then shift; echo "+ $*" >&2; "$@"; fi; }
run hotpath   $NODE bench/hotpath.ts --dispatch thread
run hotpath   $NODE bench/hotpath.ts --dispatch auto
run coldstart $NODE bench/coldstart.ts
run serving   $NODE bench/serving.ts
run stepload  $NODE bench/stepload.ts
run events    $NODE bench/events.ts
run openstack $NODE bench/openstack.ts
