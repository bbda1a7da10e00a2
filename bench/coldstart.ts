// Cold-start and deploy benchmarks.
// 1. Isolate cold start: a request that has to create its instance (new isolate, context, web
//    globals, module load) and then runs, measured at the revision pool; p50/p99 over N.
// 2. Deploy to first successful invoke of hello over HTTP: pack, upload, build, revision,
//    ready, first request (cold) — the api path `kumo deploy` takes, and the CLI end to end.
//
//   node_modules/.bin/node --no-node-snapshot bench/coldstart.ts [--n 200] [--deploys 10]

import { spawn } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildFunction } from "../services/builder/index.ts";
import { RevisionPool } from "../services/gateway/index.ts";
import { systemClock } from "../services/model/index.ts";
import { createIsolateBackend } from "../runtime/isolate/index.ts";
import { deploy, machine, percentile, repoRoot, saveResult, startKumo } from "./lib.ts";

const { values } = parseArgs({ options: { n: { type: "string", default: "200" }, deploys: { type: "string", default: "10" } } });
const n = Number(values.n);
const deploys = Number(values.deploys);

// 1. Isolate cold start.
const built = await buildFunction({ sourceDir: join(repoRoot, "examples/hello-http"), runtime: "isolate" });
const backend = createIsolateBackend();
const cold: number[] = [];
for (let i = 0; i < n + 10; i++) {
  const pool = new RevisionPool(
    { namespace: "default", function: "hello", revision: `hello-${i}`, code: built.code, env: {}, timeoutMs: 5000, memoryMb: 128 },
    backend,
    { concurrency: 10, maxInstances: 1, minInstances: 0, queueLimit: 10, queueTimeoutMs: 5000 },
    systemClock,
  );
  const t0 = performance.now();
  const inv = await pool.invoke({ requestId: `r${i}`, kind: "http", input: { method: "GET", path: "/", rawQuery: "name=cold", headers: {}, body: "" }, deadline: Date.now() + 5000 });
  const ms = performance.now() - t0;
  if (inv.result.status !== 200 || !inv.coldStart) throw new Error(`cold start run ${i} failed: ${inv.result.status} ${inv.result.body}`);
  if (i >= 10) cold.push(ms); // the first few warm up the JIT of the host side
  await pool.drain();
}
await backend.close();

// 2. Deploy → first successful invoke.
const kumo = await startKumo();
const apiRuns: number[] = [];
const cliRuns: number[] = [];
try {
  const base = await mkdtemp(join(tmpdir(), "kumo-bench-fn-"));
  for (let i = 0; i < deploys; i++) {
    const dir = join(base, `v${i}`);
    await cp(join(repoRoot, "examples/hello-http"), dir, { recursive: true });
    const src = await readFile(join(dir, "index.ts"), "utf8");
    await writeFile(join(dir, "index.ts"), src.replaceAll("hello, ", `hello v${i}, `));
    const t0 = performance.now();
    await deploy(kumo.url, `api-${i}`, dir);
    const res = await fetch(`${kumo.url}/default/api-${i}?name=x`);
    if (res.status !== 200) throw new Error(`first invoke failed: ${res.status}`);
    await res.text();
    apiRuns.push(performance.now() - t0);

    const t1 = performance.now();
    await new Promise<void>((resolveRun, reject) => {
      const p = spawn(join(repoRoot, "bin/kumo"), ["deploy", dir, "--name", `cli-${i}`], { env: { ...process.env, KUMO_SERVER: kumo.url }, stdio: "ignore" });
      p.on("exit", (code) => (code === 0 ? resolveRun() : reject(new Error(`kumo deploy exited ${String(code)}`))));
    });
    const res2 = await fetch(`${kumo.url}/default/cli-${i}?name=x`);
    if (res2.status !== 200) throw new Error(`first invoke failed: ${res2.status}`);
    await res2.text();
    cliRuns.push(performance.now() - t1);
  }
  await rm(base, { recursive: true, force: true });
} finally {
  await kumo.stop();
}

const f = (v: number) => v.toFixed(2);
console.log(`\n## Cold start and deploy (${machine()})\n`);
console.log("| measurement | n | p50 ms | p99 ms | aim |");
console.log("|---|---|---|---|---|");
console.log(`| isolate cold start (request → new isolate → response) | ${cold.length} | ${f(percentile(cold, 50))} | ${f(percentile(cold, 99))} | p50 < 5 ms |`);
console.log(`| deploy → first 200, over the api | ${apiRuns.length} | ${f(percentile(apiRuns, 50))} | ${f(percentile(apiRuns, 99))} | < 1000 ms |`);
console.log(`| deploy → first 200, \`kumo deploy\` CLI process | ${cliRuns.length} | ${f(percentile(cliRuns, 50))} | ${f(percentile(cliRuns, 99))} | < 1000 ms |`);
await saveResult("coldstart", { machine: machine(), isolateColdStartMs: cold, deployApiMs: apiRuns, deployCliMs: cliRuns });
