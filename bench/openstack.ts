// OpenStack notifications end to end: RabbitMQ → the OpenStack provider → the event bus → the
// dispatcher → a trigger → an isolate function. Publishes N versioned instance.create.end
// notifications the way oslo.messaging does (v2 envelope, unique message_id and instance uuid)
// as fast as RabbitMQ confirms them, then measures throughput (first publish → last invoke),
// latency per message, and that none was lost or duplicated. A second, paced run (--rate per
// second) measures latency below saturation, where a backlog does not dominate.
// How invocations are witnessed (--witness):
//   records (default)  the function is a no-op; afterwards the bench reads every invocation record
//                      back over the api (eventId = message_id, start, durationMs, outcome), so
//                      measuring adds nothing to the pipeline while it runs.
//   http               the function's fetch (bridged to the host) reports each event id to a
//                      witness HTTP server in this process: one extra HTTP round trip per event.
//
//   node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning bench/openstack.ts \
//     [--witness records|http] [--n 10000] [--rate 500] [--paced-seconds 5] [--warmup 50] [--delivery-concurrency 100] [--prefetch 100] [--timeout 120]
//   (RabbitMQ from KUMO_BENCH_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672)

import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import amqp from "amqplib";
import { deploy, machine, percentile, repoRoot, saveResult, startChild, type Child } from "./lib.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    warmup: { type: "string", default: "50" },
    "delivery-concurrency": { type: "string", default: "100" },
    prefetch: { type: "string", default: "100" },
    timeout: { type: "string", default: "120" },
    rate: { type: "string", default: "500" },
    "paced-seconds": { type: "string", default: "5" },
    witness: { type: "string", default: "records" },
  },
});
const mode = values.witness;
if (mode !== "records" && mode !== "http") throw new Error(`--witness "${mode}": use records or http`);
const n = Number(values.n);
const warmupCount = Number(values.warmup);
const timeoutMs = Number(values.timeout) * 1000;
const AMQP_URL = process.env.KUMO_BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const FIXTURE = join(repoRoot, "../shared/fixtures/openstack/wire/versioned_instance-create-end.json");
const run = randomBytes(4).toString("hex");
const exchange = `nova-bench-${run}`;
const queue = `kumo-bench-${run}`;

/** The deployed function's name and source, by mode. */
const FN = mode === "http" ? "witness" : "noop";
const NOOP_HANDLER = `// Does nothing: the bench reads the platform's invocation records instead.
export default async () => {};
`;
const WITNESS_HANDLER = `// Reports each event's id to the benchmark's witness server (fetch is bridged to the host).
export default async (event, ctx) => {
  const res = await fetch(ctx.env.WITNESS_URL, { method: "POST", body: event.id + " " + Date.now() });
  if (!res.ok) throw new Error("witness answered " + res.status);
  await res.text();
};
`;

// Everything to undo, whatever happens.
let server: Child | undefined;
let witness: Server | undefined;
let connection: amqp.ChannelModel | undefined;
const tempDirs: string[] = [];
async function cleanup(): Promise<void> {
  const s = server;
  server = undefined;
  // SIGTERM drains; stop() kills a server that has not exited after 15 s, so the run still ends.
  await s?.stop();
  const c = connection;
  connection = undefined;
  if (c !== undefined) {
    const ch = await c.createChannel().catch(() => undefined);
    await ch?.deleteQueue(queue).catch(() => undefined);
    await ch?.deleteExchange(exchange).catch(() => undefined);
    await c.close().catch(() => undefined);
  }
  const w = witness;
  witness = undefined;
  if (w !== undefined) {
    w.closeAllConnections();
    await new Promise<void>((r) => w.close(() => r()));
  }
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** When each message was published (performance.now()), by message_id; only measured runs. */
const published = new Map<string, number>();
/** Epoch ms of each publish: Date.now() (http, compared with the isolate's Date.now()) or timeOrigin + now() (records). */
const publishedEpoch = new Map<string, number>();
/** http: when the witness heard of each message (performance.now()) and its handler started (epoch ms, ms resolution). */
const arrived = new Map<string, number>();
const handlerEpoch = new Map<string, number>();
/** records: each measured message's first successful invocation, epoch ms (start has ms resolution). */
const recorded = new Map<string, { start: number; end: number }>();
/** records: successful invocations seen so far, measured or not (the warm-up waits on it). */
let successes = 0;
/** records: invocations of measured messages that did not succeed (a retry may still deliver them). */
let failedInvocations = 0;
let duplicates = 0;
/** Arrivals of measured (not warm-up) messages. */
let measuredArrivals = 0;
let onArrival: (() => void) | undefined;

async function untilArrived(ids: () => number, want: number, limitMs: number): Promise<boolean> {
  const deadline = performance.now() + limitMs;
  while (ids() < want) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await new Promise<void>((r) => {
      const t = setTimeout(r, Math.min(left, 1000));
      onArrival = () => {
        if (ids() >= want) {
          clearTimeout(t);
          r();
        }
      };
    });
  }
  return true;
}

/** The fields of an invocation record the bench reads. */
interface InvocationEntry {
  seq: number;
  record: { eventId?: string; start: string; durationMs: number; outcome: string };
}
/** The api's largest page (maxInvocationPage in services/api/invocations.ts). */
const PAGE = 1000;
/** Between reads of the invocation log while waiting; each read costs the server a flush and a query. */
const RECORD_POLL_MS = 500;
let recordCursor = 0;

/** Reads every invocation record written since the last read (paging with `after`) and tallies it. */
async function readRecords(base: string): Promise<void> {
  for (;;) {
    const res = await fetch(`${base}/apis/kumo.dev/v1/namespaces/default/functions/${FN}/invocations?limit=${PAGE}&after=${recordCursor}`);
    if (!res.ok) throw new Error(`reading invocation records failed: ${res.status} ${await res.text()}`);
    const { items } = (await res.json()) as { items: InvocationEntry[] };
    for (const { seq, record } of items) {
      recordCursor = seq;
      const id = record.eventId ?? "";
      const measured = published.has(id); // warm-up messages and late ones of an earlier run are not
      if (record.outcome !== "success") {
        if (measured) failedInvocations++;
        continue;
      }
      successes++;
      if (!measured) continue;
      if (recorded.has(id)) duplicates++;
      else {
        const start = Date.parse(record.start);
        recorded.set(id, { start, end: start + record.durationMs });
        measuredArrivals++;
      }
    }
    if (items.length < PAGE) return;
  }
}

/** Reads the invocation log until `count()` reaches `want`, or false after `limitMs`. */
async function untilRecorded(base: string, count: () => number, want: number, limitMs: number): Promise<boolean> {
  const deadline = performance.now() + limitMs;
  for (;;) {
    await readRecords(base);
    if (count() >= want) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await new Promise((r) => setTimeout(r, Math.min(left, RECORD_POLL_MS)));
  }
}

try {
  // http: the witness, one POST per invocation, body = the event id and the handler's Date.now().
  let witnessUrl = "";
  if (mode === "http") {
    witness = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (body += d));
      req.on("end", () => {
        const now = performance.now();
        const [id = "", started = ""] = body.split(" ");
        handlerEpoch.set(id, Number(started));
        if (arrived.has(id)) duplicates++;
        else {
          arrived.set(id, now);
          if (published.has(id)) measuredArrivals++;
        }
        res.end("ok");
        onArrival?.();
      });
    });
    const w = witness;
    await new Promise<void>((r) => w.listen(0, "127.0.0.1", () => r()));
    witnessUrl = `http://127.0.0.1:${(w.address() as AddressInfo).port}/seen`;
  }
  const rate = Number(values.rate);
  const pacedCount = rate > 0 && Number(values["paced-seconds"]) > 0 ? Math.round(rate * Number(values["paced-seconds"])) : 0;

  // Nagle would hold each small publish frame for the broker's delayed ACK (~40 ms on Linux): oslo.messaging (kombu/py-amqp) sets TCP_NODELAY too.
  connection = await amqp.connect(AMQP_URL, { noDelay: true });
  const setup = await connection.createChannel();
  // nova declares its exchange (topic, not durable) before publishing.
  await setup.assertExchange(exchange, "topic", { durable: false });
  await setup.close();

  const dataDir = await mkdtemp(join(tmpdir(), "kumo-bench-os-"));
  tempDirs.push(dataDir);
  server = await startChild(join(repoRoot, "bin/kumo"), ["server", "--port", "0", "--data-dir", dataDir], /(http:\/\/127\.0\.0\.1:\d+)/, (u) => u, {
    KUMO_OPENSTACK_AMQP_URL: AMQP_URL,
    KUMO_OPENSTACK_EXCHANGES: exchange,
    KUMO_OPENSTACK_QUEUE: queue,
    KUMO_OPENSTACK_PREFETCH: values.prefetch,
    // records: every invocation of the whole run must stay readable (retries may add some).
    ...(mode === "records" ? { KUMO_INVOCATION_RETENTION: String(warmupCount + n + pacedCount + 10_000) } : {}),
  });
  const base = server.url;
  // The queue must be bound before the first publish, or RabbitMQ drops the messages.
  for (let i = 0; ; i++) {
    const body = (await (await fetch(`${base}/readyz`)).json()) as { checks?: Record<string, { ok: boolean; message: string }> };
    if (body.checks?.["provider/openstack"]?.ok === true) break;
    if (i > 150) throw new Error(`the OpenStack provider did not connect: ${JSON.stringify(body.checks?.["provider/openstack"])}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  const fnDir = await mkdtemp(join(tmpdir(), "kumo-bench-os-fn-"));
  tempDirs.push(fnDir);
  await writeFile(join(fnDir, "index.js"), mode === "http" ? WITNESS_HANDLER : NOOP_HANDLER);
  await deploy(base, FN, fnDir, mode === "http" ? { env: { WITNESS_URL: witnessUrl } } : {});
  const trig = await fetch(`${base}/apis/kumo.dev/v1/namespaces/default/triggers`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      metadata: { name: "on-create" },
      spec: {
        function: FN,
        source: { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.end" } } },
        delivery: { concurrency: Number(values["delivery-concurrency"]) },
      },
    }),
  });
  if (!trig.ok) throw new Error(`trigger create failed: ${trig.status} ${await trig.text()}`);

  // The fixture as nova sends it; each copy gets its own message_id and instance uuid.
  const wire = JSON.parse(await readFile(FIXTURE, "utf8")) as { routing_key: string; body: { "oslo.version": string; "oslo.message": string } };
  const inner = JSON.parse(wire.body["oslo.message"]) as { message_id: string; payload: { "nova_object.data": { uuid: string } } };
  const properties = { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, priority: 0 };
  const message = (id: string): Buffer => {
    inner.message_id = id;
    inner.payload["nova_object.data"].uuid = randomUUID();
    return Buffer.from(JSON.stringify({ "oslo.version": wire.body["oslo.version"], "oslo.message": JSON.stringify(inner) }));
  };
  const channel = await connection.createConfirmChannel();

  /**
   * Publishes `count` messages, as fast as the channel takes them or at `rate` per second (in
   * 10 ms slices); resolves when RabbitMQ has confirmed all of them.
   */
  const publish = async (count: number, record: boolean, rate?: number): Promise<void> => {
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      if (rate !== undefined) {
        const due = started + (i / rate) * 1000;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      const id = randomUUID();
      const body = message(id);
      if (record) {
        const at = performance.now();
        published.set(id, at);
        publishedEpoch.set(id, mode === "http" ? Date.now() : performance.timeOrigin + at);
      }
      if (!channel.publish(exchange, wire.routing_key, body, { ...properties, messageId: id })) {
        await new Promise<void>((r) => channel.once("drain", () => r()));
      }
    }
    await channel.waitForConfirms();
  };

  /** One measured run's numbers. */
  interface RunResult {
    name: string;
    count: number;
    publishPerSecond: number;
    deliveredPerSecond: number;
    /** Publish → the witness hearing of it (http), or → the invocation record's start (records). */
    latencyMs: { p50: number; p90: number; p99: number; max: number };
    /** Publish → the handler starting (http: the part before the function's own fetch), or → the invocation's end (records: start + durationMs). */
    secondaryMs: { p50: number; p99: number };
    lost: number;
    duplicates: number;
    /** records: invocations of these messages that did not succeed (http: not observable, 0). */
    failedInvocations: number;
    complete: boolean;
  }
  const measure = async (name: string, count: number, rate?: number): Promise<RunResult> => {
    published.clear();
    arrived.clear();
    publishedEpoch.clear();
    handlerEpoch.clear();
    recorded.clear();
    measuredArrivals = 0;
    duplicates = 0;
    failedInvocations = 0;
    const t0 = performance.now();
    await publish(count, true, rate);
    const confirmedAt = performance.now();
    const complete = mode === "http" ? await untilArrived(() => measuredArrivals, count, timeoutMs) : await untilRecorded(base, () => measuredArrivals, count, timeoutMs);
    const lat: number[] = [];
    const secondary: number[] = [];
    /** Seconds from the first publish to the last invocation finishing. */
    let elapsed = 0;
    if (mode === "http") {
      let last = 0;
      for (const [id, at] of arrived) {
        const sent = published.get(id);
        if (sent === undefined) continue; // a late message of an earlier run
        lat.push(at - sent);
        secondary.push(handlerEpoch.get(id)! - publishedEpoch.get(id)!);
        if (at > last) last = at;
      }
      elapsed = (last - t0) / 1000;
    } else {
      let last = 0;
      for (const [id, { start, end }] of recorded) {
        const sent = publishedEpoch.get(id)!;
        lat.push(start - sent);
        secondary.push(end - sent);
        if (end > last) last = end;
      }
      elapsed = (last - (performance.timeOrigin + t0)) / 1000;
    }
    return {
      name,
      count,
      publishPerSecond: count / ((confirmedAt - t0) / 1000),
      deliveredPerSecond: lat.length / elapsed,
      latencyMs: { p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99), max: Math.max(...lat) },
      secondaryMs: { p50: percentile(secondary, 50), p99: percentile(secondary, 99) },
      lost: count - lat.length,
      duplicates,
      failedInvocations,
      complete,
    };
  };

  // Warm up: the function's instance, the dispatcher, JIT; these are not measured.
  await publish(warmupCount, false);
  const warm = mode === "http" ? await untilArrived(() => arrived.size, warmupCount, 30_000) : await untilRecorded(base, () => successes, warmupCount, 30_000);
  if (!warm) throw new Error(`warm-up: only ${mode === "http" ? arrived.size : successes}/${warmupCount} notifications reached the function`);

  // Burst: throughput, and the latency of a backlog draining. Paced: latency below saturation.
  const runs: RunResult[] = [await measure("burst (as fast as RabbitMQ confirms)", n)];
  if (pacedCount > 0) runs.push(await measure(`paced at ${rate}/s`, pacedCount, rate));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const metric = (name: string): number => {
    let sum = 0;
    for (const line of metrics.split("\n")) if (line.startsWith(name + " ") || line.startsWith(name + "{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1)) || 0;
    return sum;
  };

  const f = (v: number) => v.toFixed(1);
  const witnessed = mode === "http" ? "witness: the function's fetch to an HTTP server in the bench" : "witness: invocation records read back over the api";
  console.log(`\n## OpenStack notifications → function (${witnessed}; ${machine()}; RabbitMQ at ${new URL(AMQP_URL).host}, prefetch ${values.prefetch}, trigger concurrency ${values["delivery-concurrency"]})\n`);
  const secondaryColumn = mode === "http" ? "publish → handler start p50 / p99 ms" : "publish → invocation end p50 / p99 ms";
  console.log(`| run | notifications | published/s (confirmed) | delivered/s (first publish → last invoke) | p50 ms | p90 ms | p99 ms | max ms | ${secondaryColumn} | lost | duplicates |`);
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of runs) {
    const l = r.latencyMs;
    console.log(
      `| ${r.name} | ${r.count} | ${f(r.publishPerSecond)} | ${f(r.deliveredPerSecond)} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${f(l.max)} | ${f(r.secondaryMs.p50)} / ${f(r.secondaryMs.p99)} | ${r.lost}${r.complete ? "" : " (timed out)"} | ${r.duplicates} |`,
    );
  }
  console.log(
    mode === "http"
      ? "\nlatency: publish → the witness receiving the function's POST (includes that round trip); handler start is Date.now() in the isolate (ms resolution)."
      : "\nlatency: publish → the invocation record's start (the invoker taking the event, before any wait for an instance); " +
          "start has millisecond resolution (truncated), so each latency reads up to 1 ms low. Invocation end = start + durationMs. " +
          `Failed invocations of measured messages: ${runs.map((r) => r.failedInvocations).join(" / ")}.`,
  );
  console.log(
    `\naims: >= 2000 delivered/s with none lost (burst), p50 < 20 ms (paced). ` +
      `provider: ${metric("kumo_provider_messages_in_total")} in, ${metric("kumo_provider_messages_failed_total")} failed, ${metric("kumo_provider_sink_errors_total")} sink errors; ` +
      `dispatcher: ${metric("kumo_dispatcher_retries_total")} retries, ${metric("kumo_dispatcher_dead_letters_total")} dead letters, ` +
      `bus append → delivery start mean ${f((1000 * metric("kumo_dispatcher_delivery_latency_seconds_sum")) / metric("kumo_dispatcher_delivery_latency_seconds_count"))} ms (all runs)`,
  );
  const file = await saveResult("openstack", { machine: machine(), witness: mode, options: values, runs });
  console.log(`(raw numbers: ${file})`);
  process.exitCode = runs.every((r) => r.lost === 0 && r.duplicates === 0) ? 0 : 1;
} finally {
  await cleanup();
}
