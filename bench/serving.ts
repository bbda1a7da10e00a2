// Serving cold start, per runtime: a request that has to create its instance, measured at the
// revision pool in-process (a new RevisionPool per sample, time from invoke to the first
// response). Isolates (new isolate, context, globals, module) and processes (spawn Node, load the
// worker runtime and the bundle, listen on a unix socket). Prints a markdown table and writes
// bench/results/serving-coldstart.json.
//
//   node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning bench/serving.ts [--isolates 200] [--processes 40] [--warmup 5]

import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildFunction, type BuildRuntime } from "../services/builder/index.ts";
import { RevisionPool } from "../services/gateway/index.ts";
import { systemClock, type InstanceBackend } from "../services/model/index.ts";
import { createIsolateBackend } from "../runtime/isolate/index.ts";
import { createProcessBackend } from "../runtime/process/index.ts";
import { machine, percentile, repoRoot, saveResult } from "./lib.ts";

const { values } = parseArgs({ options: { isolates: { type: "string", default: "200" }, processes: { type: "string", default: "40" }, warmup: { type: "string", default: "5" } } });
const warmup = Number(values.warmup);

/** Cold-start samples of one runtime: total (invoke → response) and the instance start within it. */
interface Samples {
  runtime: BuildRuntime;
  totalMs: number[];
  startMs: number[];
}

async function measure(runtime: BuildRuntime, backend: InstanceBackend, n: number): Promise<Samples> {
  const built = await buildFunction({ sourceDir: join(repoRoot, "examples/hello-http"), runtime });
  const out: Samples = { runtime, totalMs: [], startMs: [] };
  // The first few warm up the host's JIT and, for processes, Node's compile cache of the worker runtime.
  for (let i = 0; i < n + warmup; i++) {
    let startMs = NaN;
    const pool = new RevisionPool(
      { namespace: "default", function: "hello", revision: `hello-${runtime}-${i}`, code: built.code, env: {}, timeoutMs: 10_000, memoryMb: 128 },
      backend,
      { concurrency: 10, maxInstances: 1, minInstances: 0, queueLimit: 10, queueTimeoutMs: 10_000 },
      systemClock,
      { onColdStart: (ms) => (startMs = ms) },
    );
    try {
      const t0 = performance.now();
      const inv = await pool.invoke({ requestId: `r${i}`, kind: "http", input: { method: "GET", path: "/", rawQuery: "name=cold", headers: {}, body: "" }, deadline: Date.now() + 10_000 });
      const ms = performance.now() - t0;
      if (inv.result.status !== 200 || !inv.coldStart) throw new Error(`${runtime} cold start ${i} failed: ${inv.result.status} ${inv.result.body}`);
      if (i >= warmup) {
        out.totalMs.push(ms);
        out.startMs.push(startMs);
      }
    } finally {
      await pool.drain();
    }
  }
  return out;
}

const isolate = createIsolateBackend();
const processes = createProcessBackend();
let results: Samples[];
try {
  results = [await measure("isolate", isolate, Number(values.isolates)), await measure("process", processes, Number(values.processes))];
} finally {
  await isolate.close();
  await processes.close();
}

const aims: Record<BuildRuntime, number> = { isolate: 5, process: 150 };
const f = (v: number) => v.toFixed(2);
console.log(`\n## Serving cold start at the revision pool (${machine()})\n`);
console.log("| runtime | n | p50 ms | p90 ms | p99 ms | instance start p50 ms | aim (p50) | met |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const p50 = percentile(r.totalMs, 50);
  console.log(`| ${r.runtime} | ${r.totalMs.length} | ${f(p50)} | ${f(percentile(r.totalMs, 90))} | ${f(percentile(r.totalMs, 99))} | ${f(percentile(r.startMs, 50))} | < ${aims[r.runtime]} ms | ${p50 < aims[r.runtime] ? "yes" : "no"} |`);
}
const file = await saveResult("serving-coldstart", { machine: machine(), warmup, runtimes: results });
console.log(`\n(raw numbers: ${file})`);
