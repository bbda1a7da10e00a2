// A quick measurement of the process executor (not a test): cold start (start() to the first
// response, p50/p99) and invokes/s of a hello handler through one instance.
// Run: node_modules/.bin/node bench/process-executor.ts [cold-starts] [seconds-per-throughput-run]

import type { InvokeRequest, LoadSpec } from "../services/model/index.ts";
import { createProcessBackend } from "../runtime/process/index.ts";

const HELLO = "export default async (req) => ({ hello: req.query.name ?? 'world' })";
const spec = (revision: string): LoadSpec => ({ namespace: "bench", function: "hello", revision, code: HELLO, env: {}, timeoutMs: 10_000, memoryMb: 128 });
const coldRuns = Number(process.argv[2] ?? 50);
const seconds = Number(process.argv[3] ?? 3);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

function request(): InvokeRequest {
  return { requestId: "r", kind: "http", input: { method: "GET", path: "/", rawQuery: "name=kumo", headers: { host: "x" }, body: "" }, deadline: Date.now() + 10_000 };
}

const backend = createProcessBackend();
// The first start fills Node's compile cache (runtime/pod's TypeScript, stripped once).
await (await backend.start(spec("warm"))).dispose();

const cold: number[] = [];
for (let i = 0; i < coldRuns; i++) {
  const t = performance.now();
  const instance = await backend.start(spec(`r${i}`));
  const result = await instance.invoke(request());
  cold.push(performance.now() - t);
  if (result.status !== 200) throw new Error(`cold start ${i}: ${result.status} ${result.body}`);
  await instance.dispose();
}
cold.sort((a, b) => a - b);
console.log(`cold start (start() → first response), n=${coldRuns}: p50 ${percentile(cold, 0.5).toFixed(1)} ms, p99 ${percentile(cold, 0.99).toFixed(1)} ms`);

const instance = await backend.start(spec("hot"));
for (const concurrency of [1, 16]) {
  let count = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await instance.invoke(request());
        count++;
      }
    }),
  );
  console.log(`one instance, concurrency ${concurrency}: ${Math.round(count / seconds).toLocaleString("en")} invokes/s`);
}
await backend.close();
