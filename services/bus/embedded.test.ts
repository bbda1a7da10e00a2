import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeClock, KumoError } from "../model/index.ts";
import type { BusConsumer, ConsumedBatch, ConsumedRecord, EventBus } from "./bus.ts";
import { createEmbeddedBus } from "./embedded.ts";
import type { EmbeddedBus, EmbeddedBusOptions } from "./embedded.ts";
import { partitionForKey } from "./partitioner.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kumo-bus-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openDb(file: string): DatabaseSync {
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  return db;
}

/** A bus on a fresh WAL database file, closed after the test. */
function openBus(options: Partial<EmbeddedBusOptions> = {}, file = join(tempDir(), "kumo.db")): { bus: EmbeddedBus; db: DatabaseSync; file: string } {
  const db = openDb(file);
  const bus = createEmbeddedBus({ ...options, db });
  cleanups.push(async () => {
    await bus.close();
    db.close();
  });
  return { bus, db, file };
}

function values(records: readonly ConsumedRecord[]): string[] {
  return records.map((r) => decoder.decode(r.value));
}

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Runs a consumer that keeps what it receives and commits after each batch. */
async function collect(bus: EventBus, group: string, topic: string, start: "earliest" | "latest" = "earliest"): Promise<{ consumer: BusConsumer; records: ConsumedRecord[] }> {
  const consumer = bus.consumer({ group, topic, start });
  const records: ConsumedRecord[] = [];
  await consumer.run(async (batch) => {
    records.push(...batch.records);
    const last = batch.records.at(-1);
    if (last !== undefined) await consumer.commit(batch.partition, String(Number(last.offset) + 1));
  });
  return { consumer, records };
}

function rowCount(db: DatabaseSync): number {
  return Number(db.prepare("SELECT COUNT(*) AS n FROM bus_records").get()?.["n"]);
}

async function expectKumoError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KumoError);
  expect((err as KumoError).code).toBe(code);
  expect((err as KumoError).message).toMatch(message);
}

describe("embedded bus: topics and appends", () => {
  it("refuses publishes and consumers on a topic that was never ensured", async () => {
    const { bus } = openBus();
    await expectKumoError(bus.publish("nope", [{ value: bytes("x") }]), "KUMO_E_INTERNAL", /ensureTopic\("nope"/);
    await expectKumoError(bus.consumer({ group: "g", topic: "nope" }).run(async () => undefined), "KUMO_E_INTERNAL", /does not exist/);
  });

  it("validates topic names and partition counts", async () => {
    const { bus } = openBus();
    await expectKumoError(bus.ensureTopic("bad name!", 1), "KUMO_E_VALIDATION", /letters, digits/);
    await expectKumoError(bus.ensureTopic("ok", 0), "KUMO_E_VALIDATION", /positive integer/);
  });

  it("keeps an existing topic's partition count", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 2);
    await bus.ensureTopic("t", 5);
    expect((await bus.endOffsets("t")).size).toBe(2);
  });

  it("spreads keyless records round-robin and keyed ones like Kafka's default partitioner", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 3);
    const keyless = await bus.publish("t", Array.from({ length: 6 }, () => ({ value: bytes("x") })));
    expect(keyless.map((p) => p.partition).sort()).toEqual([0, 0, 1, 1, 2, 2]);
    const keys = ["vm-1", "vm-2", "net-7", "vol-9"];
    const keyed = await bus.publish("t", keys.map((key) => ({ key, value: bytes(key) })));
    expect(keyed.map((p) => p.partition)).toEqual(keys.map((k) => partitionForKey(k, 3)));
  });

  it("gives concurrent single-record publishes distinct contiguous offsets", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 1);
    const positions = await Promise.all(Array.from({ length: 50 }, (_, i) => bus.publish("t", [{ value: bytes(`c${i}`) }])));
    expect(positions.map((p) => p[0]?.offset)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect((await bus.endOffsets("t")).get(0)).toBe("50");
  });

  it("keeps what publish acknowledged when the process is killed right after", () => {
    const dir = tempDir();
    const file = join(dir, "kumo.db");
    const script = join(dir, "publisher.ts");
    writeFileSync(
      script,
      `import { DatabaseSync } from "node:sqlite";
import { createEmbeddedBus } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "embedded.ts")).href)};
const db = new DatabaseSync(${JSON.stringify(file)});
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
const bus = createEmbeddedBus({ db });
await bus.ensureTopic("t", 2);
let acked = 0;
for (let i = 0; i < 20; i++) {
  const positions = await bus.publish("t", Array.from({ length: 10 }, (_, j) => ({ key: "k" + j, value: new TextEncoder().encode("r" + (i * 10 + j)) })));
  acked += positions.length;
}
process.stdout.write(String(acked));
process.kill(process.pid, "SIGKILL");
`,
    );
    const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 60_000 });
    expect(child.signal).toBe("SIGKILL");
    expect(child.stdout).toBe("200");
    const db = openDb(file);
    cleanups.push(() => db.close());
    expect(rowCount(db)).toBe(200);
  });

  it("wakes an idle consumer through polling when another connection appends", async () => {
    const { bus, file } = openBus({ pollIntervalMs: 20 });
    await bus.ensureTopic("t", 1);
    const { records } = await collect(bus, "g", "t", "latest");
    const other = openBus({}, file);
    await other.bus.publish("t", [{ value: bytes("from-elsewhere") }]);
    await vi.waitFor(() => expect(values(records)).toEqual(["from-elsewhere"]), { timeout: 10_000 });
  });

  it("rejects publishes after close and stops its consumers", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 1);
    const { records } = await collect(bus, "g", "t", "latest");
    await bus.close();
    await expectKumoError(bus.publish("t", [{ value: bytes("late") }]), "KUMO_E_UNAVAILABLE", /closed/);
    expect(records).toEqual([]);
  });
});

describe("embedded bus: consumer groups in one process", () => {
  it("shares partitions among a group's members and moves a stopped member's partitions to the rest", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 4);
    const a = await collect(bus, "g", "t");
    const b = await collect(bus, "g", "t");
    await bus.publish("t", Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: bytes(`r${i}`) })));
    await vi.waitFor(() => expect(a.records.length + b.records.length).toBe(40), { timeout: 10_000 });
    const partitionsOf = (records: ConsumedRecord[]): Set<number> => new Set(records.map((r) => r.partition));
    expect([...partitionsOf(a.records)].every((p) => !partitionsOf(b.records).has(p))).toBe(true);
    expect(partitionsOf(a.records).size).toBeGreaterThan(0);
    expect(partitionsOf(b.records).size).toBeGreaterThan(0);

    await a.consumer.stop();
    await bus.publish("t", Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: bytes(`s${i}`) })));
    await vi.waitFor(() => expect(values(b.records).filter((v) => v.startsWith("s"))).toHaveLength(20), { timeout: 10_000 });
    const all = [...values(a.records), ...values(b.records)];
    expect(new Set(all).size).toBe(all.length);
    expect(values(b.records).filter((v) => v.startsWith("s")).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
    await b.consumer.stop();
  });

  it("hands a partition to a new member only after the old owner's in-flight batch ends", async () => {
    const { bus } = openBus();
    await bus.ensureTopic("t", 2);
    const key = ["a", "b", "c", "d", "e"].find((k) => partitionForKey(k, 2) === 1) ?? "a";
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    const first = bus.consumer({ group: "g", topic: "t", start: "earliest" });
    await first.run(async (batch) => {
      entered = true;
      await gate;
      const last = batch.records.at(-1);
      if (last !== undefined) await first.commit(batch.partition, String(Number(last.offset) + 1));
    });
    await bus.publish("t", [{ key, value: bytes("held") }]);
    await vi.waitFor(() => expect(entered).toBe(true));

    const received: ConsumedBatch[] = [];
    const second = bus.consumer({ group: "g", topic: "t", start: "earliest" });
    let joined = false;
    const joining = second
      .run(async (batch) => {
        received.push(batch);
      })
      .then(() => {
        joined = true;
      });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(joined).toBe(false);
    release();
    await joining;
    await bus.publish("t", [{ key, value: bytes("after") }]);
    await vi.waitFor(() => expect(received.flatMap((b) => values(b.records))).toEqual(["after"]));
    await first.stop();
    await second.stop();
  });

  it("redelivers a batch whose handler rejected, after the retry backoff", async () => {
    const errors: unknown[] = [];
    const { bus } = openBus({ retryBackoffMs: 10, onHandlerError: (err) => errors.push(err) });
    await bus.ensureTopic("t", 1);
    const attempts: string[][] = [];
    const consumer = bus.consumer({ group: "g", topic: "t", start: "earliest" });
    await consumer.run(async (batch) => {
      attempts.push(values(batch.records));
      if (attempts.length === 1) throw new Error("downstream is down");
    });
    await bus.publish("t", [{ value: bytes("a") }, { value: bytes("b") }]);
    await vi.waitFor(() => expect(attempts).toEqual([["a", "b"], ["a", "b"]]));
    expect(errors).toHaveLength(1);
    await consumer.stop();
  });
});

describe("embedded bus: retention", () => {
  it("keeps only the newest maxRecordsPerPartition records, leaving offsets as they were", async () => {
    const { bus } = openBus({ retention: { maxRecordsPerPartition: 3 } });
    await bus.ensureTopic("t", 1);
    await bus.publish("t", Array.from({ length: 10 }, (_, i) => ({ value: bytes(`r${i}`) })));
    expect(await bus.enforceRetention()).toBe(7);
    expect(await bus.enforceRetention()).toBe(0);
    const { records } = await collect(bus, "g", "t");
    await vi.waitFor(() => expect(values(records)).toEqual(["r7", "r8", "r9"]));
    expect(records.map((r) => r.offset)).toEqual(["7", "8", "9"]);
    expect((await bus.endOffsets("t")).get(0)).toBe("10");
    expect(await bus.publish("t", [{ value: bytes("r10") }])).toEqual([{ partition: 0, offset: "10" }]);
  });

  it("deletes records older than maxAgeMs, as a prefix of each partition", async () => {
    const clock = new FakeClock(1_000_000);
    const { bus, db } = openBus({ clock, retention: { maxAgeMs: 1000 } });
    await bus.ensureTopic("t", 1);
    await bus.publish("t", [{ value: bytes("old-1") }, { value: bytes("old-2") }]);
    clock.advance(500);
    await bus.publish("t", [{ value: bytes("young") }, { value: bytes("stamped-old"), timestamp: 1 }]);
    clock.advance(600);
    expect(await bus.enforceRetention()).toBe(2);
    // "stamped-old" sits behind a young record, so it stays (Kafka also deletes only a prefix).
    expect(rowCount(db)).toBe(2);
    clock.advance(1000);
    expect(await bus.enforceRetention()).toBe(2);
    expect(rowCount(db)).toBe(0);
    expect((await bus.endOffsets("t")).get(0)).toBe("4");
  });

  it("deletes records a group has not read, like Kafka, and the group goes on from the oldest kept", async () => {
    const { bus } = openBus({ retention: { maxRecordsPerPartition: 2 } });
    await bus.ensureTopic("t", 1);
    const consumer = bus.consumer({ group: "slow", topic: "t", start: "earliest" });
    await bus.publish("t", Array.from({ length: 5 }, (_, i) => ({ value: bytes(`r${i}`) })));
    await bus.enforceRetention();
    const records: ConsumedRecord[] = [];
    await consumer.run(async (batch) => {
      records.push(...batch.records);
    });
    await vi.waitFor(() => expect(values(records)).toEqual(["r3", "r4"]));
    await consumer.stop();
  });

  it("runs periodically on the clock", async () => {
    const clock = new FakeClock(0);
    const { bus, db } = openBus({ clock, retention: { maxRecordsPerPartition: 1, intervalMs: 5000 } });
    await bus.ensureTopic("t", 2);
    await bus.publish("t", Array.from({ length: 10 }, (_, i) => ({ value: bytes(`r${i}`) })));
    clock.advance(4999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(rowCount(db)).toBe(10);
    clock.advance(1);
    await vi.waitFor(() => expect(rowCount(db)).toBe(2));
    await bus.publish("t", Array.from({ length: 4 }, (_, i) => ({ value: bytes(`s${i}`) })));
    await vi.waitFor(() => {
      clock.advance(5000);
      expect(rowCount(db)).toBe(2);
    });
  });

  it("deletes nothing without a policy", async () => {
    const { bus, db } = openBus();
    await bus.ensureTopic("t", 1);
    await bus.publish("t", [{ value: bytes("kept"), timestamp: 0 }]);
    expect(await bus.enforceRetention()).toBe(0);
    expect(rowCount(db)).toBe(1);
  });
});
