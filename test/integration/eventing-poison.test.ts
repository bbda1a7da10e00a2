// Poison input through a real `kumo server`: malformed events on POST /events are refused with
// the reason (400/413) and nothing reaches the bus; events whose functions always throw or always
// time out end on kumo.dlq with the reason and every attempt, while a healthy trigger on the same
// event type keeps receiving every event meanwhile.

import { rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmbeddedBus, type EventBus } from "../../services/bus/index.ts";
import { DLQ_TOPIC, EVENTS_TOPIC, type DeadLetter } from "../../services/model/index.ts";
import { openDatabase } from "../../services/store/index.ts";
import { runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";

const API = "/apis/kumo.dev/v1/namespaces/default";
const EVENT_TYPE = "com.example.poison";
const MAX_BODY = 4096;
/** Events published to the three triggers. */
const EVENTS = 10;

let server: ServerProcess;
/** A second connection to the server's database, to count the records on the bus as they are on disk. */
let db: DatabaseSync;
let bus: EventBus;
const dirs: string[] = [];
/** Event ids the healthy function received, in arrival order. */
const healthySeen: string[] = [];
let witness: ReturnType<typeof createServer>;

async function startWitness(): Promise<string> {
  witness = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      healthySeen.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => witness.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(witness.address() as AddressInfo).port}`;
}

async function deploy(name: string, source: string, flags: string[] = []): Promise<void> {
  const dir = await tempDir(`kumo-poison-${name}-`);
  dirs.push(dir);
  await writeFile(join(dir, "index.ts"), source);
  const r = await runKumo(["deploy", dir, "--name", name, ...flags], { KUMO_SERVER: server.url });
  expect(r.code, r.stderr).toBe(0);
}

async function createTrigger(name: string, fn: string, delivery: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${server.url}${API}/triggers`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ metadata: { name }, spec: { function: fn, source: { kind: "event", filter: { exact: { type: EVENT_TYPE } } }, delivery } }),
  });
  expect(res.status, await res.text()).toBe(201);
  for (let i = 0; i < 200; i++) {
    const t = (await (await fetch(`${server.url}${API}/triggers/${name}`)).json()) as { status?: { startOffsets?: unknown; conditions?: { type: string; status: string }[] } };
    if (t.status?.startOffsets !== undefined && t.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`trigger ${name} never became Ready`);
}

/** Records on a topic, all partitions together. */
async function recordCount(topic: string): Promise<bigint> {
  let n = 0n;
  for (const end of (await bus.endOffsets(topic)).values()) n += BigInt(end);
  return n;
}

/** A trigger's dead letters, as `GET …/deadletters` lists them. */
async function deadLetters(trigger: string): Promise<DeadLetter[]> {
  const res = await fetch(`${server.url}${API}/deadletters?trigger=${trigger}&limit=1000`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as { items: { letter: DeadLetter }[] }).items.map((i) => i.letter);
}

beforeAll(async () => {
  server = await startKumoServer({ env: { KUMO_EVENTS_MAX_BODY_BYTES: String(MAX_BODY) } });
  db = openDatabase(server.dataDir);
  bus = createEmbeddedBus({ db });
  const witnessUrl = await startWitness();
  await Promise.all([
    deploy("thrower", `export default async () => { throw new Error("poisoned input"); };\n`),
    deploy("sleeper", `export default async () => { await new Promise((r) => setTimeout(r, 10_000)); return "too late"; };\n`, ["--timeout", "200ms"]),
    deploy(
      "healthy",
      `export default async (event: { id: string }) => {
  const res = await fetch(${JSON.stringify(`${witnessUrl}/seen`)}, { method: "POST", body: event.id });
  if (res.status !== 204) throw new Error("witness answered " + res.status);
  return { ok: true };
};
`,
    ),
  ]);
  await createTrigger("to-thrower", "thrower", { retries: 2, backoffDelayMs: 50 });
  // One event at a time: the timeouts take a while, long after the healthy trigger is done.
  await createTrigger("to-sleeper", "sleeper", { retries: 2, backoffDelayMs: 50, concurrency: 1 });
  await createTrigger("to-healthy", "healthy", {});
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await bus?.close();
  db?.close();
  if (witness !== undefined) {
    witness.closeAllConnections();
    await new Promise<void>((r) => witness.close(() => r()));
  }
  for (const dir of [...dirs, server?.dataDir]) if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Refused {
  name: string;
  headers: Record<string, string>;
  body: string;
  status: number;
  code: string;
  reason: RegExp;
}

const binary = { "ce-specversion": "1.0", "ce-id": "bad-1", "ce-source": "/test/poison", "ce-type": EVENT_TYPE, "content-type": "application/json" };
const structured = { "content-type": "application/cloudevents+json" };
const valid = { specversion: "1.0", id: "bad-2", source: "/test/poison", type: EVENT_TYPE, data: { n: 1 } };
const { "ce-source": _source, ...binaryWithoutSource } = binary;
const { type: _type, ...withoutType } = valid;

const refused: Refused[] = [
  { name: "a structured body that is not JSON", headers: structured, body: "{not json", status: 400, code: "KUMO_E_VALIDATION", reason: /not valid JSON/ },
  { name: "a binary event without ce-source", headers: binaryWithoutSource, body: "{}", status: 400, code: "KUMO_E_VALIDATION", reason: /source/ },
  { name: "a structured event without type", headers: structured, body: JSON.stringify(withoutType), status: 400, code: "KUMO_E_VALIDATION", reason: /type/ },
  { name: "a structured event without id", headers: structured, body: JSON.stringify({ ...valid, id: undefined }), status: 400, code: "KUMO_E_VALIDATION", reason: /id is required/ },
  { name: "specversion 2.0", headers: { ...binary, "ce-specversion": "2.0" }, body: "{}", status: 400, code: "KUMO_E_VALIDATION", reason: /specversion "2\.0" is not supported/ },
  { name: "specversion 0.3", headers: structured, body: JSON.stringify({ ...valid, specversion: "0.3" }), status: 400, code: "KUMO_E_VALIDATION", reason: /specversion "0\.3" is not supported/ },
  { name: "a plain body with no CloudEvent in it", headers: { "content-type": "text/plain" }, body: "hello", status: 400, code: "KUMO_E_VALIDATION", reason: /CloudEvent/ },
  {
    name: "a batch with one bad event among good ones (nothing of it is appended)",
    headers: { "content-type": "application/cloudevents-batch+json" },
    body: JSON.stringify([valid, { ...valid, id: "bad-3" }, { ...withoutType, id: "bad-4" }]),
    status: 400,
    code: "KUMO_E_VALIDATION",
    reason: /type/,
  },
  { name: "the reserved kumotrigger extension", headers: { ...binary, "ce-kumotrigger": "default/to-healthy" }, body: "{}", status: 400, code: "KUMO_E_VALIDATION", reason: /kumotrigger.*reserved/ },
  { name: `a body over KUMO_EVENTS_MAX_BODY_BYTES (${MAX_BODY})`, headers: binary, body: JSON.stringify({ pad: "x".repeat(MAX_BODY) }), status: 413, code: "KUMO_E_BODY_TOO_LARGE", reason: new RegExp(`larger than ${MAX_BODY} bytes`) },
  {
    name: "a structured body over the limit",
    headers: structured,
    body: JSON.stringify({ ...valid, data: "x".repeat(MAX_BODY * 4) }),
    status: 413,
    code: "KUMO_E_BODY_TOO_LARGE",
    reason: /larger than/,
  },
];

describe("malformed events on POST /events", () => {
  it.each(refused)("refuses $name with $status and the reason, and appends nothing", async (c) => {
    const before = { events: await recordCount(EVENTS_TOPIC), dlq: await recordCount(DLQ_TOPIC) };
    const res = await fetch(`${server.url}/events`, { method: "POST", headers: c.headers, body: c.body });
    const text = await res.text();
    expect(res.status, text).toBe(c.status);
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(c.code);
    expect(body.error.message).toMatch(c.reason);
    expect({ events: await recordCount(EVENTS_TOPIC), dlq: await recordCount(DLQ_TOPIC) }).toEqual(before);
  });

  it("the server still takes a good event afterwards (202, appended once)", async () => {
    const before = await recordCount(EVENTS_TOPIC);
    const res = await fetch(`${server.url}/events`, { method: "POST", headers: { ...binary, "ce-id": "good-after-bad", "ce-type": "com.example.unrelated" }, body: "{}" });
    expect(res.status, await res.text()).toBe(202);
    expect(await recordCount(EVENTS_TOPIC)).toBe(before + 1n);
  });
});

describe("functions that always fail", () => {
  const ids = Array.from({ length: EVENTS }, (_, i) => `poison-${i}`);

  it("dead-letters every event with the reason and each attempt, while the healthy trigger keeps receiving every event", async () => {
    for (const id of ids) {
      const res = await fetch(`${server.url}/events`, { method: "POST", headers: { ...binary, "ce-id": id }, body: JSON.stringify({ id }) });
      expect(res.status, await res.text()).toBe(202);
    }

    // The healthy trigger gets everything while the sleeper's events are still in their retries
    // (each takes 3 timeouts of 200 ms, one event at a time: seconds in all).
    for (let i = 0; i < 300 && !ids.every((id) => healthySeen.includes(id)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(ids.filter((id) => !healthySeen.includes(id)), "events the healthy function never received").toEqual([]);
    const sleeperLettersSoFar = (await deadLetters("to-sleeper")).length;
    expect(sleeperLettersSoFar, "the healthy trigger should not wait for the poisoned one").toBeLessThan(EVENTS);

    const settle = async (trigger: string): Promise<DeadLetter[]> => {
      let letters: DeadLetter[] = [];
      for (let i = 0; i < 60; i++) {
        letters = await deadLetters(trigger);
        if (letters.length >= EVENTS) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      return letters;
    };
    const cases = [
      { trigger: "to-thrower", fn: "thrower", attempt: /^function_error: .*poisoned input/ },
      { trigger: "to-sleeper", fn: "sleeper", attempt: /^timeout: / },
    ];
    for (const c of cases) {
      const letters = await settle(c.trigger);
      expect(letters.map((l) => l.event?.id).sort(), `${c.trigger}: one dead letter per event`).toEqual([...ids].sort());
      for (const letter of letters) {
        expect(letter.origin).toBe("dispatcher");
        expect(letter.trigger).toEqual({ namespace: "default", name: c.trigger, function: c.fn });
        expect(letter.reason).toMatch(new RegExp(`^delivery to function "${c.fn}" failed after 3 attempt\\(s\\); last: `));
        expect(letter.event?.type).toBe(EVENT_TYPE);
        expect(letter.event?.data).toEqual({ id: letter.event?.id });
        const attempts = letter.attempts ?? [];
        expect(attempts, JSON.stringify(letter)).toHaveLength(3);
        for (const a of attempts) {
          expect(a.error).toMatch(c.attempt);
          expect(Number.isNaN(Date.parse(a.at))).toBe(false);
        }
        const times = attempts.map((a) => Date.parse(a.at));
        expect([...times].sort((a, b) => a - b)).toEqual(times);
        expect(Date.parse(letter.time)).toBeGreaterThanOrEqual(times[times.length - 1]!);
      }
    }
    expect(await deadLetters("to-healthy")).toEqual([]);
    // Every event reached the healthy function; the poisoned ones did not make it deliver twice.
    expect([...healthySeen].sort()).toEqual([...ids].sort());
  }, 90_000);
});
