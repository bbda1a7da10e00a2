// At-least-once delivery across a crash: `kumo server` takes 500 events on POST /events (each
// 202 only after the durable append), is SIGKILLed while a trigger is still delivering them, and
// is restarted on the same data dir; every event must then reach the function at least once.
// Run on the embedded bus and on Kafka (the test broker lives in this process and outlives the kill).
// The function reports each event it receives to a "witness" HTTP server in this process, which
// survives the kill (the first server's invocation records may be lost with it).

import { rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";
import { startTestKafkaBroker, type TestKafkaBroker } from "../support/kafka-broker/index.ts";

const EVENTS = 500;
const EVENT_TYPE = "com.example.crash";
/** Distinct events delivered before the kill: some, far from all. */
const KILL_AFTER = 100;
const API = "/apis/kumo.dev/v1/namespaces/default";

/** The test's record of what the function received; it outlives the servers. */
interface Witness {
  url: string;
  /** Deliveries per event id. */
  readonly seen: Map<string, number>;
  /** Holds the function's reports (so deliveries stall) until open() is called. */
  open(): void;
  /** Resolves once `n` distinct events were reported (checked as each report arrives). */
  whenDistinct(n: number): Promise<void>;
  close(): Promise<void>;
}

async function startWitness(): Promise<Witness> {
  const seen = new Map<string, number>();
  const held: (() => void)[] = [];
  let opened = false;
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      seen.set(body, (seen.get(body) ?? 0) + 1);
      for (const w of waiters.filter((x) => seen.size >= x.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      const answer = (): void => void res.writeHead(204).end();
      if (opened) answer();
      else held.push(answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    open() {
      opened = true;
      for (const answer of held.splice(0)) answer();
    },
    whenDistinct(n) {
      if (seen.size >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A `kumo server` child process on a given data dir. */
async function api(server: ServerProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${server.url}${API}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text === "" ? undefined : (JSON.parse(text) as unknown) };
}

/** Waits until the dispatcher subscribed the trigger (Ready, start offsets recorded). */
async function triggerReady(server: ServerProcess, name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { json } = await api(server, "GET", `/triggers/${name}`);
    const status = (json as { status?: { startOffsets?: unknown; conditions?: { type: string; status: string }[] } }).status;
    if (status?.startOffsets !== undefined && status.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`trigger ${name} never became Ready:\n${server.output()}`);
}

/** Publishes one event in binary mode; resolves with the HTTP status. */
async function publish(server: ServerProcess, id: string): Promise<number> {
  const res = await fetch(`${server.url}/events`, {
    method: "POST",
    headers: { "ce-specversion": "1.0", "ce-id": id, "ce-source": "/test/crash", "ce-type": EVENT_TYPE, "content-type": "application/json" },
    body: JSON.stringify({ id }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Runs `work` over `items` with at most `width` at a time. */
async function inParallel<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  return out;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean().catch(() => undefined);
});

/**
 * The whole flow for one bus: deploy, subscribe, publish, kill mid-delivery, restart, and
 * check that every published event reached the function. Returns the duplicate count.
 */
async function crashAndRecover(bus: string, env: Record<string, string>, restartWithinMs: number): Promise<void> {
  const witness = await startWitness();
  cleanups.push(() => witness.close());
  const dataDir = await tempDir("kumo-crash-data-");
  const fnDir = await tempDir("kumo-crash-fn-");
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }), () => rm(fnDir, { recursive: true, force: true }));

  let server = await startKumoServer({ dataDir, env });
  cleanups.push(() => server.kill());
  // Reports the event, then works a few ms: a kill lands between report and completion.
  await writeFile(
    join(fnDir, "index.ts"),
    `export default async (event: { id: string }) => {
  const res = await fetch(${JSON.stringify(`${witness.url}/seen`)}, { method: "POST", body: event.id });
  if (res.status !== 204) throw new Error("witness answered " + res.status);
  await new Promise((r) => setTimeout(r, 5));
  return { ok: true };
};
`,
  );
  const deployed = await runKumo(["deploy", fnDir, "--name", "recorder"], { KUMO_SERVER: server.url });
  expect(deployed.code, deployed.stderr).toBe(0);
  const created = await api(server, "POST", "/triggers", {
    metadata: { name: "record" },
    spec: { function: "recorder", source: { kind: "event", filter: { exact: { type: EVENT_TYPE } } }, delivery: { retries: 5, backoffDelayMs: 50, concurrency: 4 } },
  });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  await triggerReady(server, "record");

  // Deliveries stall at the witness until every event is published, so the kill lands mid-stream.
  const ids = Array.from({ length: EVENTS }, (_, i) => `${bus}-${String(i).padStart(4, "0")}`);
  const statuses = await inParallel(ids, 16, (id) => publish(server, id));
  expect(statuses.filter((s) => s !== 202)).toEqual([]);
  witness.open();
  await witness.whenDistinct(KILL_AFTER);
  await server.kill();
  const atKill = witness.seen.size;
  expect(atKill, "the kill should land while events are still being delivered").toBeLessThan(EVENTS);

  const restartedAt = Date.now();
  server = await startKumoServer({ dataDir, env });
  const restartMs = Date.now() - restartedAt;
  const everything = witness.whenDistinct(EVENTS);
  const deadline = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), restartWithinMs + 30_000).unref());
  await Promise.race([everything, deadline]);

  const lost = ids.filter((id) => !witness.seen.has(id));
  expect(lost, `events never delivered after the restart (server output:\n${server.output().slice(-3000)})`).toEqual([]);
  const deliveries = [...witness.seen.values()].reduce((a, b) => a + b, 0);
  const duplicates = deliveries - EVENTS;
  console.log(`[${bus}] ${EVENTS} events published, ${atKill} delivered before SIGKILL, ${deliveries} deliveries in all: ${duplicates} duplicate(s), 0 lost; the restarted server was ready after ${restartMs} ms`);
  expect([...witness.seen.keys()].filter((id) => !ids.includes(id))).toEqual([]);
  await server.stop();
}

describe("at-least-once delivery when kumo server is killed mid-delivery", () => {
  it("embedded bus: every event accepted with 202 is delivered after a SIGKILL and restart", async () => {
    await crashAndRecover("embedded", {}, 30_000);
  }, 90_000);

  it("Kafka bus: every event accepted with 202 is delivered after a SIGKILL and restart", async () => {
    const broker: TestKafkaBroker = await startTestKafkaBroker();
    cleanups.push(() => broker.close());
    // A short session timeout: the restarted dispatcher rejoins its group as soon as the dead member expires.
    await crashAndRecover("kafka", { KUMO_KAFKA_BROKERS: broker.brokers.join(","), KUMO_KAFKA_SESSION_TIMEOUT_MS: "6000" }, 60_000);
  }, 150_000);
});
