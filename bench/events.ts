// Event throughput benchmark: events per second through the embedded bus → dispatcher → a no-op
// function in an isolate, and publish-to-invoke latency (p50/p99). It composes, in this process,
// the same pieces `kumo server` does (SQLite database, embedded bus, dispatcher, route table,
// event invoker, isolate backend, controller and builder), so times are taken without HTTP noise.
// Prints a markdown table; writes bench/results/events.json.
//
//   node_modules/.bin/node --no-node-snapshot bench/events.ts [--events 50000] [--batch 100] [--concurrency 50] [--latency 2000] [--rate 1000] [--dispatch thread|auto|inline]

import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Registry } from "prom-client";
import { packSource, buildFunction, unpackSource } from "../services/builder/index.ts";
import { createEmbeddedBus } from "../services/bus/index.ts";
import { Controller } from "../services/controller/index.ts";
import { Dispatcher, createBusSink, createDispatcherMetrics, ensureEventTopics, type EventInvoker } from "../services/dispatcher/index.ts";
import { RouteTable, createEventInvoker, createGatewayMetrics } from "../services/gateway/index.ts";
import { API_VERSION, getCondition, systemClock, validateFunctionInput, validateTriggerInput, type KumoCloudEvent } from "../services/model/index.ts";
import { FileBlobStore, openDatabase, openInvocationLog, openSqliteStore } from "../services/store/index.ts";
import { createIsolateBackend } from "../runtime/isolate/index.ts";
import { machine, percentile, saveResult } from "./lib.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "50000" },
    batch: { type: "string", default: "100" },
    concurrency: { type: "string", default: "50" },
    latency: { type: "string", default: "2000" },
    rate: { type: "string", default: "1000" },
    dispatch: { type: "string", default: "thread" },
  },
});
const total = Number(values.events);
const batch = Number(values.batch);
const concurrency = Number(values.concurrency);
const latencyEvents = Number(values.latency);
const rate = Number(values.rate);
const dispatch = values.dispatch;
if (dispatch !== "thread" && dispatch !== "auto" && dispatch !== "inline") throw new Error(`--dispatch "${dispatch}": use thread, auto or inline`);

const EVENT_TYPE = "dev.kumo.bench.event";
const NS = "default";

// ---- the pieces `kumo server` composes ----
const dataDir = await mkdtemp(join(tmpdir(), "kumo-bench-events-"));
const fnDir = await mkdtemp(join(tmpdir(), "kumo-bench-noop-"));
const db = openDatabase(dataDir);
const store = openSqliteStore({ db });
const invocations = openInvocationLog({ db, retentionPerFunction: 1000 });
const blobs = new FileBlobStore(dataDir);
const registry = new Registry();
const isolate = createIsolateBackend({ dispatch });
const backends = { isolate, process: undefined };
const routes = new RouteTable({
  store,
  blobs,
  backends,
  metrics: createGatewayMetrics(registry),
  clock: systemClock,
  defaults: { queueLimit: 100_000, queueTimeoutMs: 30_000, bounds: () => ({ min: 0, max: 10 }) },
});
const controller = new Controller({
  store,
  blobs,
  builder: { buildFunction, unpackSource },
  backends,
  clock: systemClock,
  functionUrl: (ns, fn) => `http://bench.invalid/${ns}/${fn}`,
  routed: (ns, fn, rev) => routes.whenRouted(ns, fn, rev),
  log: () => undefined,
});
const bus = createEmbeddedBus({ db });
await ensureEventTopics(bus);
const sink = createBusSink(bus);

/** When each event was handed to the bus, and when its invocation started and ended (performance.now()). */
const published = new Map<string, number>();
const started = new Map<string, number>();
const done = new Map<string, number>();
let failures = 0;
let waiter: { count: number; resolve: () => void } | undefined;
const gatewayInvoker = createEventInvoker(routes, invocations);
// The server's invoker, with a stopwatch around it.
const invoker: EventInvoker = {
  async invokeEvent(namespace, fn, event, meta) {
    started.set(event.id, performance.now());
    const result = await gatewayInvoker.invokeEvent(namespace, fn, event, meta);
    done.set(event.id, performance.now());
    if (result.outcome !== "success") failures += 1;
    if (waiter !== undefined && done.size >= waiter.count) waiter.resolve();
    return result;
  },
};
const dispatcher = new Dispatcher({ bus, store, invoker, metrics: createDispatcherMetrics(registry), clock: systemClock, log: (level, m) => level === "error" && console.error(m) });

async function poll(what: string, ready: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once `count` invocations (in all) have ended. */
function invoked(count: number, timeoutMs = 120_000): Promise<void> {
  if (done.size >= count) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${done.size} of ${count} events were invoked within ${timeoutMs} ms`)), timeoutMs);
    waiter = {
      count,
      resolve: () => {
        clearTimeout(timer);
        waiter = undefined;
        resolve();
      },
    };
  });
}

let seq = 0;
function event(): KumoCloudEvent {
  seq += 1;
  return { specversion: "1.0", id: `e${seq}-${randomUUID().slice(0, 8)}`, source: "bench/events", type: EVENT_TYPE, data: { n: seq } };
}

/** Appends events in one bus write, noting when each was handed over. */
async function publish(events: KumoCloudEvent[]): Promise<void> {
  const t = performance.now();
  for (const e of events) published.set(e.id, t);
  await sink.append(events.map((e) => ({ event: e })));
}

function latencies(ids: string[], until: Map<string, number>): number[] {
  return ids.map((id) => (until.get(id) ?? NaN) - (published.get(id) ?? NaN));
}

interface Row {
  phase: string;
  events: number;
  perSecond: number;
  startP50: number;
  startP99: number;
  doneP50: number;
  doneP99: number;
}

function row(phase: string, ids: string[], seconds: number): Row {
  const start = latencies(ids, started);
  const end = latencies(ids, done);
  return { phase, events: ids.length, perSecond: ids.length / seconds, startP50: percentile(start, 50), startP99: percentile(start, 99), doneP50: percentile(end, 50), doneP99: percentile(end, 99) };
}

try {
  await routes.start();
  await controller.start();
  await dispatcher.start();

  // Deploy a no-op function, as the api does after an upload.
  await writeFile(join(fnDir, "index.ts"), "export default async () => undefined;\n");
  const packed = await packSource(fnDir);
  const digest = await blobs.put(packed.bytes);
  const fnInput = validateFunctionInput({ metadata: { name: "noop" }, spec: { source: { digest } } }, NS);
  await store.create("Function", { apiVersion: API_VERSION, kind: "Function", metadata: { name: fnInput.metadata.name, namespace: NS }, spec: fnInput.spec, status: {} });
  await poll("the function to be Ready", async () => {
    const fn = await store.get("Function", NS, "noop");
    return fn !== undefined && getCondition(fn.status.conditions, "Ready")?.status === "True" && routes.get(`${NS}/noop`) !== undefined;
  });
  const trInput = validateTriggerInput({ metadata: { name: "bench" }, spec: { function: "noop", source: { kind: "event", filter: { exact: { type: EVENT_TYPE } } }, delivery: { concurrency } } }, NS);
  await store.create("Trigger", { apiVersion: API_VERSION, kind: "Trigger", metadata: { name: "bench", namespace: NS }, spec: trInput.spec, status: {} });
  await poll("the trigger to be subscribed", async () => {
    const t = await store.get("Trigger", NS, "bench");
    return t?.status.startOffsets !== undefined;
  });

  // Warm-up: JIT, the isolate, the SQLite pages.
  const warm = Math.min(2000, total);
  for (let i = 0; i < warm; i += batch) await publish(Array.from({ length: Math.min(batch, warm - i) }, event));
  await invoked(warm);
  let expected = done.size;

  // 1. Throughput: appends of `batch` events as fast as the bus takes them, until all are invoked.
  const burstIds: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i += batch) {
    const events = Array.from({ length: Math.min(batch, total - i) }, event);
    for (const e of events) burstIds.push(e.id);
    await publish(events);
  }
  const appendedAt = performance.now();
  expected += total;
  await invoked(expected);
  const burstSeconds = (performance.now() - t0) / 1000;
  const burst = row(`burst: ${total} events in appends of ${batch}`, burstIds, burstSeconds);

  // 2. Latency, one event in flight: publish, wait for its invocation to end, repeat.
  const singleIds: string[] = [];
  const t1 = performance.now();
  for (let i = 0; i < latencyEvents; i++) {
    const e = event();
    singleIds.push(e.id);
    expected += 1;
    const seen = invoked(expected);
    await publish([e]);
    await seen;
  }
  const single = row("one at a time", singleIds, (performance.now() - t1) / 1000);

  // 3. Latency at a steady rate: single-event appends every 1/rate s (open loop).
  const pacedIds: string[] = [];
  const t2 = performance.now();
  const interval = 1000 / rate;
  for (let i = 0; i < latencyEvents; i++) {
    const due = t2 + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const e = event();
    pacedIds.push(e.id);
    await publish([e]);
  }
  expected += latencyEvents;
  await invoked(expected);
  const paced = row(`paced: ${rate} events/s, single appends`, pacedIds, (performance.now() - t2) / 1000);

  const rows = [burst, single, paced];
  const ms = (n: number): string => n.toFixed(3);
  console.log(`\n## Events: embedded bus → dispatcher → no-op isolate (${machine()}, isolate dispatch "${dispatch}", trigger concurrency ${concurrency})\n`);
  console.log("| run | events | events/s | publish→invoke p50 ms | p99 ms | publish→done p50 ms | p99 ms |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.phase} | ${r.events} | ${r.perSecond.toFixed(0)} | ${ms(r.startP50)} | ${ms(r.startP99)} | ${ms(r.doneP50)} | ${ms(r.doneP99)} |`);
  console.log(`\nburst appends took ${((appendedAt - t0) / 1000).toFixed(2)} s; failed invocations: ${failures}`);
  console.log(`aim: >= 5000 events/s (burst: ${burst.perSecond.toFixed(0)}), p50 publish→invoke < 5 ms (one at a time: ${ms(single.startP50)}, paced: ${ms(paced.startP50)})`);
  const file = await saveResult("events", { machine: machine(), dispatch, concurrency, batch, failures, rows });
  console.log(`(raw numbers: ${file})`);
  if (failures > 0) process.exitCode = 1;
} finally {
  await dispatcher.stop();
  await controller.stop();
  await routes.stop();
  await bus.close();
  await isolate.close();
  await invocations.close();
  await store.close();
  db.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(fnDir, { recursive: true, force: true });
}
