// OpenStack notifications end to end: RabbitMQ → the OpenStack provider → the event bus → the
// dispatcher → a trigger → an isolate function, whose fetch (bridged to the host) reports each
// event id to a witness HTTP server in this process. Publishes N versioned instance.create.end
// notifications the way oslo.messaging does (v2 envelope, unique message_id and instance uuid)
// as fast as RabbitMQ confirms them, then measures throughput (first publish → last invoke),
// latency per message (publish → witness), and that none was lost or duplicated. A second, paced
// run (--rate per second) measures latency below saturation, where a backlog does not dominate.
//
//   node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning bench/openstack.ts \
//     [--n 10000] [--rate 500] [--paced-seconds 5] [--warmup 50] [--delivery-concurrency 100] [--prefetch 100] [--timeout 120]
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
  },
});
const n = Number(values.n);
const warmupCount = Number(values.warmup);
const timeoutMs = Number(values.timeout) * 1000;
const AMQP_URL = process.env.KUMO_BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const FIXTURE = join(repoRoot, "../shared/fixtures/openstack/wire/versioned_instance-create-end.json");
const run = randomBytes(4).toString("hex");
const exchange = `nova-bench-${run}`;
const queue = `kumo-bench-${run}`;

const HANDLER = `// Reports each event's id to the benchmark's witness server (fetch is bridged to the host).
export default async (event, ctx) => {
  const res = await fetch(ctx.env.WITNESS_URL, { method: "POST", body: event.id + " " + Date.now() });
  if (!res.ok) throw new Error("witness answered " + res.status);
  await res.text();
};
`;

// Everything to undo, whatever happens.
const STOP_GRACE_MS = 15_000;
let server: Child | undefined;
let witness: Server | undefined;
let connection: amqp.ChannelModel | undefined;
const tempDirs: string[] = [];
async function cleanup(): Promise<void> {
  const s = server;
  server = undefined;
  if (s !== undefined && s.proc.exitCode === null && s.proc.signalCode === null) {
    // SIGTERM drains; a server that has not exited after the grace is killed so the run still ends.
    const killer = setTimeout(() => s.proc.kill("SIGKILL"), STOP_GRACE_MS);
    await s.stop();
    clearTimeout(killer);
  }
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

/** When each message was published and when the function reported it, by message_id. */
const published = new Map<string, number>();
const arrived = new Map<string, number>();
/** Epoch ms of each publish and of each handler start (Date.now() in the isolate: same clock, ms resolution). */
const publishedEpoch = new Map<string, number>();
const handlerEpoch = new Map<string, number>();
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

try {
  // The witness: one POST per invocation, body = the event id.
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
  const witnessUrl = `http://127.0.0.1:${(w.address() as AddressInfo).port}/seen`;

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
  await writeFile(join(fnDir, "index.js"), HANDLER);
  await deploy(base, "witness", fnDir, { env: { WITNESS_URL: witnessUrl } });
  const trig = await fetch(`${base}/apis/kumo.dev/v1/namespaces/default/triggers`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      metadata: { name: "on-create" },
      spec: {
        function: "witness",
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
        published.set(id, performance.now());
        publishedEpoch.set(id, Date.now());
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
    latencyMs: { p50: number; p90: number; p99: number; max: number };
    /** Publish → the handler starting (epoch ms on both sides), the part before the function's own fetch. */
    toHandlerMs: { p50: number; p99: number };
    lost: number;
    duplicates: number;
    complete: boolean;
  }
  const measure = async (name: string, count: number, rate?: number): Promise<RunResult> => {
    published.clear();
    arrived.clear();
    publishedEpoch.clear();
    handlerEpoch.clear();
    measuredArrivals = 0;
    duplicates = 0;
    const t0 = performance.now();
    await publish(count, true, rate);
    const confirmedAt = performance.now();
    const complete = await untilArrived(() => measuredArrivals, count, timeoutMs);
    const lat: number[] = [];
    const toHandler: number[] = [];
    let last = 0;
    for (const [id, at] of arrived) {
      const sent = published.get(id);
      if (sent === undefined) continue; // a late message of an earlier run
      lat.push(at - sent);
      toHandler.push(handlerEpoch.get(id)! - publishedEpoch.get(id)!);
      if (at > last) last = at;
    }
    return {
      name,
      count,
      publishPerSecond: count / ((confirmedAt - t0) / 1000),
      deliveredPerSecond: lat.length / ((last - t0) / 1000),
      latencyMs: { p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99), max: Math.max(...lat) },
      toHandlerMs: { p50: percentile(toHandler, 50), p99: percentile(toHandler, 99) },
      lost: count - lat.length,
      duplicates,
      complete,
    };
  };

  // Warm up: the function's instance, the dispatcher, JIT; these are not measured.
  await publish(warmupCount, false);
  if (!(await untilArrived(() => arrived.size, warmupCount, 30_000))) throw new Error(`warm-up: only ${arrived.size}/${warmupCount} notifications reached the function`);

  // Burst: throughput, and the latency of a backlog draining. Paced: latency below saturation.
  const runs: RunResult[] = [await measure("burst (as fast as RabbitMQ confirms)", n)];
  const rate = Number(values.rate);
  if (rate > 0 && Number(values["paced-seconds"]) > 0) runs.push(await measure(`paced at ${rate}/s`, Math.round(rate * Number(values["paced-seconds"])), rate));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const metric = (name: string): number => {
    let sum = 0;
    for (const line of metrics.split("\n")) if (line.startsWith(name + " ") || line.startsWith(name + "{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1)) || 0;
    return sum;
  };

  const f = (v: number) => v.toFixed(1);
  console.log(`\n## OpenStack notifications → function (${machine()}; RabbitMQ at ${new URL(AMQP_URL).host}, prefetch ${values.prefetch}, trigger concurrency ${values["delivery-concurrency"]})\n`);
  console.log("| run | notifications | published/s (confirmed) | delivered/s (first publish → last invoke) | p50 ms | p90 ms | p99 ms | max ms | to handler start p50 / p99 ms | lost | duplicates |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of runs) {
    const l = r.latencyMs;
    console.log(`| ${r.name} | ${r.count} | ${f(r.publishPerSecond)} | ${f(r.deliveredPerSecond)} | ${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${f(l.max)} | ${r.toHandlerMs.p50} / ${r.toHandlerMs.p99} | ${r.lost}${r.complete ? "" : " (timed out)"} | ${r.duplicates} |`);
  }
  console.log(
    `\naims: >= 2000 delivered/s with none lost (burst), p50 < 20 ms (paced). ` +
      `provider: ${metric("kumo_provider_messages_in_total")} in, ${metric("kumo_provider_messages_failed_total")} failed, ${metric("kumo_provider_sink_errors_total")} sink errors; ` +
      `dispatcher: ${metric("kumo_dispatcher_retries_total")} retries, ${metric("kumo_dispatcher_dead_letters_total")} dead letters, ` +
      `bus append → delivery start mean ${f((1000 * metric("kumo_dispatcher_delivery_latency_seconds_sum")) / metric("kumo_dispatcher_delivery_latency_seconds_count"))} ms (all runs)`,
  );
  const file = await saveResult("openstack", { machine: machine(), options: values, runs });
  console.log(`(raw numbers: ${file})`);
  process.exitCode = runs.every((r) => r.lost === 0 && r.duplicates === 0) ? 0 : 1;
} finally {
  await cleanup();
}
