// Hot-path benchmark: the hello example deployed on Kumo, through the gateway, against a raw
// node:http hello server; same machine, same run, same load generator (wrk). Prints req/s,
// p50/p99 and the ratios; writes bench/results/hotpath.json.
//
//   make bench            (all benchmarks)
//   node_modules/.bin/node bench/hotpath.ts [--seconds 10] [--connections 50] [--rounds 2]

import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { deploy, machine, repoRoot, saveResult, startKumo, startRaw, wrk, type WrkResult } from "./lib.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "50" },
    rounds: { type: "string", default: "2" },
    dispatch: { type: "string" },
    // --function quiet: a hello that writes no log line (the example logs one per request).
    function: { type: "string", default: "example" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);

const raw = await startRaw();
// --dispatch thread|auto|inline sets KUMO_ISOLATE_DISPATCH (default: the server's default).
const dispatch = values.dispatch ?? "auto";
const kumo = await startKumo({ KUMO_ISOLATE_DISPATCH: dispatch });
try {
  let fnDir = join(repoRoot, "examples/hello-http");
  if (values.function === "quiet") {
    fnDir = await mkdtemp(join(tmpdir(), "kumo-bench-quiet-"));
    await writeFile(join(fnDir, "index.ts"), `export default (req: { query: Record<string, string> }) => ({ message: \`hello, \${req.query.name ?? "world"}\` });\n`);
  } else if (values.function !== "example") throw new Error(`--function is "example" or "quiet", not ${String(values.function)}`);
  await deploy(kumo.url, "hello", fnDir);
  const targets = { raw: `${raw.url}/?name=bench`, kumo: `${kumo.url}/default/hello?name=bench` };
  // Warm both (JIT, the isolate, connection pools).
  for (const url of Object.values(targets)) await wrk(url, connections, 2);

  const best = (runs: WrkResult[]): WrkResult => runs.reduce((a, b) => (b.rps > a.rps ? b : a));
  const median = (runs: WrkResult[], key: "p50ms" | "p99ms"): number => runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
  const load: Record<string, WrkResult[]> = { raw: [], kumo: [] };
  const single: Record<string, WrkResult[]> = { raw: [], kumo: [] };
  // Alternate the two so drift (thermal, other load) hits both alike.
  for (let i = 0; i < rounds; i++) {
    for (const [k, url] of Object.entries(targets)) load[k]!.push(await wrk(url, connections, seconds));
    for (const [k, url] of Object.entries(targets)) single[k]!.push(await wrk(url, 1, Math.max(3, Math.floor(seconds / 2))));
  }
  const r = best(load.raw!);
  const k = best(load.kumo!);
  const r1 = { p50ms: median(single.raw!, "p50ms"), p99ms: median(single.raw!, "p99ms") };
  const k1 = { p50ms: median(single.kumo!, "p50ms"), p99ms: median(single.kumo!, "p99ms") };
  const ratio = k.rps / r.rps;
  const addedP50 = k1.p50ms - r1.p50ms;
  console.log(`\n## Hot path (${machine()}, isolate dispatch "${dispatch}", function ${values.function === "quiet" ? "hello without logging" : "examples/hello-http"}, wrk -t1, ${connections} connections, ${seconds}s, best of ${rounds})\n`);
  console.log("| server | req/s | p50 ms | p99 ms | 1-conn p50 ms | 1-conn p99 ms | errors |");
  console.log("|---|---|---|---|---|---|---|");
  console.log(`| raw node:http | ${r.rps.toFixed(0)} | ${r.p50ms.toFixed(3)} | ${r.p99ms.toFixed(3)} | ${r1.p50ms.toFixed(3)} | ${r1.p99ms.toFixed(3)} | ${r.errors} |`);
  console.log(`| kumo gateway → isolate | ${k.rps.toFixed(0)} | ${k.p50ms.toFixed(3)} | ${k.p99ms.toFixed(3)} | ${k1.p50ms.toFixed(3)} | ${k1.p99ms.toFixed(3)} | ${k.errors} |`);
  console.log(`\nthroughput ratio kumo/raw: ${ratio.toFixed(2)}x (aim >= 0.70); added p50 at one connection: ${addedP50.toFixed(3)} ms (aim < 0.200)`);
  const file = await saveResult(`hotpath-${dispatch}-${values.function}`, { machine: machine(), dispatch, seconds, connections, rounds, raw: { load: load.raw, single: single.raw }, kumo: { load: load.kumo, single: single.kumo }, ratio, addedP50ms: addedP50 });
  console.log(`(raw numbers: ${file})`);
} finally {
  await kumo.stop();
  await raw.stop();
}
