// The Kafka test broker against a stock kafkajs client: topics, produce/fetch with keys and
// headers, consumer groups (one and two members, rebalance on leave), committed offsets and
// the idempotent producer.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Kafka, logLevel, type Consumer, type EachMessagePayload } from "kafkajs";
import { startTestKafkaBroker, type TestKafkaBroker } from "./index.ts";

const FAST_GROUP = { sessionTimeout: 2_000, rebalanceTimeout: 2_000, heartbeatInterval: 100, maxWaitTimeInMs: 100 };

let broker: TestKafkaBroker;
let kafka: Kafka;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  broker = await startTestKafkaBroker({ port: 0 });
  kafka = new Kafka({ clientId: "broker-test", brokers: broker.brokers, logLevel: logLevel.NOTHING });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await broker.close();
});

async function admin(): Promise<ReturnType<Kafka["admin"]>> {
  const a = kafka.admin();
  await a.connect();
  cleanups.push(() => a.disconnect());
  return a;
}

async function consumer(groupId: string): Promise<Consumer> {
  const c = kafka.consumer({ groupId, ...FAST_GROUP });
  await c.connect();
  cleanups.push(() => c.disconnect());
  return c;
}

/** Resolves once `predicate` holds, polling; rejects after `ms`. */
async function until(predicate: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("kafka test broker", () => {
  it("creates topics once and lists their partitions and offsets", async () => {
    const a = await admin();
    expect(await a.createTopics({ topics: [{ topic: "t1", numPartitions: 3 }] })).toBe(true);
    expect(await a.createTopics({ topics: [{ topic: "t1", numPartitions: 3 }] })).toBe(false);
    const meta = await a.fetchTopicMetadata({ topics: ["t1"] });
    expect(meta.topics[0]?.partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
    const offsets = await a.fetchTopicOffsets("t1");
    expect(offsets.map((o) => o.high)).toEqual(["0", "0", "0"]);
  });

  it("round-trips keys, values, headers and timestamps from a producer to a group consumer", async () => {
    const a = await admin();
    await a.createTopics({ topics: [{ topic: "rt", numPartitions: 2 }] });
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const sent = await producer.send({
      topic: "rt",
      acks: -1,
      messages: [
        { key: "a", value: "one", headers: { ce_id: "1", ce_type: "t" }, partition: 1, timestamp: "1700000000000" },
        { key: "b", value: "two", partition: 1 },
        { key: null, value: Buffer.from([0, 255]), partition: 0 },
      ],
    });
    expect(sent.map((s) => [s.partition, s.baseOffset]).sort()).toEqual([
      [0, "0"],
      [1, "0"],
    ]);

    const seen: EachMessagePayload[] = [];
    const c = await consumer("g-rt");
    await c.subscribe({ topic: "rt", fromBeginning: true });
    await c.run({ eachMessage: async (m) => void seen.push(m) });
    await until(() => seen.length === 3);

    const p1 = seen.filter((m) => m.partition === 1).map((m) => m.message);
    expect(p1.map((m) => [m.offset, m.key?.toString(), m.value?.toString()])).toEqual([
      ["0", "a", "one"],
      ["1", "b", "two"],
    ]);
    expect(p1[0]?.timestamp).toBe("1700000000000");
    expect(p1[0]?.headers?.["ce_id"]?.toString()).toBe("1");
    expect(p1[0]?.headers?.["ce_type"]?.toString()).toBe("t");
    const p0 = seen.find((m) => m.partition === 0)?.message;
    expect(p0?.key).toBeNull();
    expect([...(p0?.value ?? [])]).toEqual([0, 255]);
  });

  it("wakes a long-polling fetch when a record is produced", async () => {
    const a = await admin();
    await a.createTopics({ topics: [{ topic: "lp", numPartitions: 1 }] });
    const seen: string[] = [];
    const c = kafka.consumer({ groupId: "g-lp", ...FAST_GROUP, maxWaitTimeInMs: 20_000 });
    await c.connect();
    await c.subscribe({ topic: "lp", fromBeginning: true });
    await c.run({ eachMessage: async ({ message }) => void seen.push(message.value?.toString() ?? "") });
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    await new Promise((r) => setTimeout(r, 300)); // the consumer is now parked in a 20 s fetch
    await producer.send({ topic: "lp", messages: [{ value: "wake" }] });
    // Well within the 20 s max wait: only a wakeup on produce delivers it in time.
    await until(() => seen.length === 1, 8_000);
    expect(seen).toEqual(["wake"]);
    // kafkajs's disconnect waits for the fetch in flight; closing the broker first ends it.
    await broker.close();
    await c.disconnect();
  });

  it("splits partitions between two members and gives all to the survivor when one leaves", async () => {
    const a = await admin();
    await a.createTopics({ topics: [{ topic: "grp", numPartitions: 4 }] });
    const assigned = new Map<string, number[]>();
    const track = (name: string, c: Consumer): void => {
      c.on(c.events.GROUP_JOIN, (e) => assigned.set(name, e.payload.memberAssignment["grp"] ?? []));
    };
    const c1 = await consumer("g-two");
    const c2 = kafka.consumer({ groupId: "g-two", ...FAST_GROUP });
    await c2.connect();
    track("c1", c1);
    track("c2", c2);
    for (const c of [c1, c2]) {
      await c.subscribe({ topic: "grp", fromBeginning: true });
      await c.run({ eachMessage: async () => {} });
    }
    await until(() => (assigned.get("c1")?.length ?? 0) + (assigned.get("c2")?.length ?? 0) === 4 && (assigned.get("c2")?.length ?? 0) > 0 && (assigned.get("c1")?.length ?? 0) > 0);
    expect([...(assigned.get("c1") ?? []), ...(assigned.get("c2") ?? [])].sort()).toEqual([0, 1, 2, 3]);

    await c2.disconnect();
    await until(() => assigned.get("c1")?.length === 4);
  });

  it("resumes a group from its committed offsets", async () => {
    const a = await admin();
    await a.createTopics({ topics: [{ topic: "co", numPartitions: 1 }] });
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    await producer.send({ topic: "co", messages: ["a", "b", "c"].map((value) => ({ value })) });

    const first: string[] = [];
    const c1 = kafka.consumer({ groupId: "g-co", ...FAST_GROUP });
    await c1.connect();
    await c1.subscribe({ topic: "co", fromBeginning: true });
    await c1.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        first.push(message.value?.toString() ?? "");
        if (message.offset === "1") await c1.commitOffsets([{ topic: "co", partition: 0, offset: "2" }]);
      },
    });
    await until(() => first.length === 3);
    await c1.disconnect();
    expect(await a.fetchOffsets({ groupId: "g-co", topics: ["co"] })).toEqual([{ topic: "co", partitions: [{ partition: 0, offset: "2", metadata: null }] }]);

    const second: string[] = [];
    const c2 = await consumer("g-co");
    await c2.subscribe({ topic: "co", fromBeginning: true });
    await c2.run({ eachMessage: async ({ message }) => void second.push(message.value?.toString() ?? "") });
    await until(() => second.length === 1);
    expect(second).toEqual(["c"]);
  });

  it("runs an idempotent producer, and refuses one when idempotence is not advertised", async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const res = await producer.send({ topic: "idem", acks: -1, messages: [{ value: "x" }, { value: "y" }] });
    await producer.send({ topic: "idem", acks: -1, messages: [{ value: "z" }] });
    expect(res[0]?.baseOffset).toBe("0");
    const a = await admin();
    expect((await a.fetchTopicOffsets("idem"))[0]?.high).toBe("3");

    const plain = await startTestKafkaBroker({ idempotence: false });
    try {
      const other = new Kafka({ clientId: "no-idem", brokers: plain.brokers, logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 10 } });
      const p = other.producer({ idempotent: true, maxInFlightRequests: 1 });
      await expect(p.connect()).rejects.toThrow(/does not support/);
      await p.disconnect();
    } finally {
      await plain.close();
    }
  });
});
