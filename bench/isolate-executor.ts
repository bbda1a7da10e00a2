// A quick measurement of the isolate executor (not a test): start() latency, invokes/s of a hello
// handler through one instance, and node:http + executor against a raw node:http hello server, in
// each dispatch mode ("auto" measured after its warm-up has moved the revision to the fast path).
// Run: node_modules/.bin/node --no-node-snapshot bench/isolate-executor.ts [seconds-per-http-run]

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { HttpInput, Instance, InstanceBackend, InvokeRequest, LoadSpec } from "../services/model/index.ts";
import { createIsolateBackend } from "../runtime/isolate/index.ts";
import type { IsolateBackendOptions } from "../runtime/isolate/index.ts";

const HELLO = "export default async (req) => ({ hello: req.query.name ?? 'world' })";
const spec = (revision: string): LoadSpec => ({ namespace: "bench", function: "hello", revision, code: HELLO, env: {}, timeoutMs: 10_000, memoryMb: 64 });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function coldStarts(options: IsolateBackendOptions, n: number): Promise<string> {
  const backend = createIsolateBackend(options);
  await (await backend.start(spec("warm"))).dispose();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const instance = await backend.start(spec("r1"));
    times.push(performance.now() - t);
    await instance.dispose();
  }
  await backend.close();
  times.sort((a, b) => a - b);
  return `p50 ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms`;
}

// isolated-vm keeps each crossing's timer until it expires, and every expiry wakes its timer thread:
// a cost each crossing pays in steady state. A deadline shorter than a run makes every mode pay it
// within the run (a 10 s one would hide it from all but "auto", whose inline crossings are capped
// at 250 ms), while staying above the cap so "auto" still runs capped crossings.
const DEADLINE_MS = 1_000;

function request(rawQuery: string): InvokeRequest {
  return { requestId: "r", kind: "http", input: { method: "GET", path: "/", rawQuery, headers: { host: "x", "user-agent": "bench" }, body: "" }, deadline: Date.now() + DEADLINE_MS };
}

const MODES = ["auto", "inline", "thread"] as const;

/** A backend and a warm instance; "auto" has finished its warm-up (the revision runs inline). */
async function warmInstance(dispatch: (typeof MODES)[number]): Promise<{ backend: InstanceBackend; instance: Instance }> {
  let promoted = false;
  const backend = createIsolateBackend({ dispatch, onDispatchChange: (r, d, why) => { promoted = d === "inline"; console.log(`  [${r} -> ${d}: ${why}]`); } });
  const instance = await backend.start(spec("r1"));
  for (let i = 0; i < 100; i++) await instance.invoke(request("name=warm"));
  if (dispatch === "auto" && !promoted) throw new Error("auto dispatch did not move the revision to the fast path during the warm-up");
  return { backend, instance };
}

async function invokesPerSecond(dispatch: (typeof MODES)[number], concurrency: number, ms: number): Promise<string> {
  const { backend, instance } = await warmInstance(dispatch);
  const cpu = process.cpuUsage();
  const main = process.threadCpuUsage();
  let count = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        // A fresh deadline per request, as the gateway sets them: isolated-vm keeps a timer per
        // crossing until it expires, and tens of thousands expiring in the same instant overflow
        // its timer thread's stack.
        await instance.invoke(request("name=kumo"));
        count++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  const usedMain = process.threadCpuUsage(main);
  await backend.close();
  return (
    `${Math.round(count / (ms / 1000)).toLocaleString("en")} invokes/s, CPU/invoke ${((used.user + used.system) / count).toFixed(1)} µs ` +
    `(main thread ${((usedMain.user + usedMain.system) / count).toFixed(1)} µs)`
  );
}

const LOAD = `
const http = require("node:http");
const [port, conns, secs] = process.argv.slice(1).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
let done = 0, stop = false; const lat = [];
const one = () => new Promise((res, rej) => { const s = performance.now(); http.get({ port, path: "/hello?name=x", agent }, (r) => { r.resume(); r.on("end", () => { lat.push(performance.now() - s); res(); }); }).on("error", rej); });
const loop = async () => { while (!stop) { await one(); done++; } };
setTimeout(() => { stop = true; }, secs * 1000);
const t = performance.now();
Promise.all(Array.from({ length: conns }, loop)).then(() => {
  lat.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ rps: done / ((performance.now() - t) / 1000), p50: lat[lat.length >> 1] }));
  agent.destroy();
});`;

interface HttpRun {
  rps: number;
  p50: number;
  /** Server CPU time per request (µs), all threads: stable even when other processes share the cores. */
  cpuUs: number;
  /** The part of cpuUs spent on the server's (event-loop) thread. */
  mainCpuUs: number;
}

async function httpRun(instance: Instance | null, secs: number, connections = 32): Promise<HttpRun> {
  let served = 0;
  const server = createServer((req, res) => {
    served++;
    if (instance === null) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ hello: "x" }));
      return;
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const input: HttpInput = { method: req.method ?? "GET", path: q < 0 ? url : url.slice(0, q), rawQuery: q < 0 ? "" : url.slice(q + 1), headers: req.headers as Record<string, string>, body: "" };
    void instance.invoke({ requestId: "r", kind: "http", input, deadline: Date.now() + DEADLINE_MS }).then((r) => {
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const cpu = process.cpuUsage();
  const main = process.threadCpuUsage();
  const child = spawn(process.execPath, ["-e", LOAD, String(port), String(connections), String(secs)], { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  await new Promise<void>((resolve) => child.once("close", () => resolve()));
  const used = process.cpuUsage(cpu);
  const usedMain = process.threadCpuUsage(main);
  const out = JSON.parse(stdout) as { rps: number; p50: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { ...out, cpuUs: (used.user + used.system) / served, mainCpuUs: (usedMain.user + usedMain.system) / served };
}

const secs = Number(process.argv[2] ?? 4);
const only = process.argv[3];
if (only !== "http") {
  console.log("start() latency (snapshot + code cache):", await coldStarts({}, 200));
  console.log("start() latency (no snapshot, no code cache):", await coldStarts({ snapshot: false, codeCache: false }, 200));
}
for (const dispatch of only === "http" ? [] : MODES) {
  console.log(`invoke, ${dispatch} dispatch, 1 in flight:`, await invokesPerSecond(dispatch, 1, 2000));
  console.log(`invoke, ${dispatch} dispatch, 32 in flight:`, await invokesPerSecond(dispatch, 32, 2000));
}
{
  // Unmeasured: warms the host side of both dispatch paths, so the first measured mode pays no JIT.
  for (const dispatch of ["inline", "thread"] as const) {
    const { backend, instance } = await warmInstance(dispatch);
    await httpRun(instance, 1);
    await backend.close();
  }
}
for (const connections of [32, 1]) {
  const raw = await httpRun(null, secs, connections);
  console.log(`${connections} connection(s): node:http raw hello: ${Math.round(raw.rps)} req/s, p50 ${raw.p50.toFixed(3)} ms, ${raw.cpuUs.toFixed(1)} µs CPU/req (main thread ${raw.mainCpuUs.toFixed(1)} µs)`);
  for (const dispatch of MODES) {
    const { backend, instance } = await warmInstance(dispatch);
    const viaIsolate = await httpRun(instance, secs, connections);
    await backend.close();
    console.log(
      `${connections} connection(s): node:http + isolate (${dispatch}): ${Math.round(viaIsolate.rps)} req/s (${(viaIsolate.rps / raw.rps).toFixed(2)}x raw), ` +
        `p50 ${viaIsolate.p50.toFixed(3)} ms (+${(viaIsolate.p50 - raw.p50).toFixed(3)} ms), ` +
        `${viaIsolate.cpuUs.toFixed(1)} µs CPU/req (${(raw.cpuUs / viaIsolate.cpuUs).toFixed(2)}x raw when CPU-bound), ` +
        `main thread ${viaIsolate.mainCpuUs.toFixed(1)} µs/req (${(raw.mainCpuUs / viaIsolate.mainCpuUs).toFixed(2)}x raw)`,
    );
  }
}
