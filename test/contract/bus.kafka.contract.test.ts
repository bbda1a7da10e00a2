// Runs the EventBus contract on the Kafka bus: kafkajs over TCP to the in-memory Kafka test
// broker (test/support/kafka-broker); a restart is a new bus on the same broker. Then what only
// the Kafka bus does: CloudEvents as ce_* Kafka headers, idempotence fallback, publish
// coalescing, handler retries and group rebalances across members.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { createKafkaBus, fromBusRecord, toBusRecord } from "../../services/bus/index.ts";
import type { BusConsumer, ConsumedBatch, ConsumedRecord, EventBus, KafkaBusOptions, KafkaLogEntry } from "../../services/bus/index.ts";
import type { KumoCloudEvent } from "../../services/model/index.ts";
import { startTestKafkaBroker, type TestKafkaBroker } from "../support/kafka-broker/index.ts";
import { runBusContract } from "./bus.contract.ts";

const encoder = new TextEncoder();

runBusContract("kafka (kafkajs + test broker)", async () => {
  const broker = await startTestKafkaBroker({ port: 0 });
  const options: KafkaBusOptions = {
    brokers: broker.brokers,
    clientId: "kumo-contract",
    ssl: false,
    idempotent: true,
    partitions: 4,
    // Fast group protocol: joins, rebalances and stops take tens of milliseconds here.
    sessionTimeoutMs: 3_000,
    rebalanceTimeoutMs: 3_000,
    heartbeatIntervalMs: 100,
    maxWaitMs: 100,
    retryBackoffMs: 50,
  };
  let bus = createKafkaBus(options);
  return {
    bus,
    reopen: async () => {
      await bus.close();
      bus = createKafkaBus(options);
      return bus;
    },
    cleanup: async () => {
      await bus.close();
      await broker.close();
    },
  };
});

describe("Kafka bus", () => {
  let broker: TestKafkaBroker;
  let bus: EventBus;
  let logs: KafkaLogEntry[];
  const consumers: BusConsumer[] = [];

  function options(brokers: string[], extra: Partial<KafkaBusOptions> = {}): KafkaBusOptions {
    return {
      brokers,
      clientId: "kafka-bus-test",
      ssl: false,
      idempotent: true,
      partitions: 4,
      sessionTimeoutMs: 3_000,
      rebalanceTimeoutMs: 3_000,
      heartbeatIntervalMs: 100,
      maxWaitMs: 100,
      retryBackoffMs: 20,
      log: (entry) => void logs.push(entry),
      ...extra,
    };
  }

  beforeEach(async () => {
    logs = [];
    broker = await startTestKafkaBroker({ port: 0 });
    bus = createKafkaBus(options(broker.brokers));
  });

  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop();
    await bus.close();
    await broker.close();
  });

  async function until(what: string, predicate: () => boolean): Promise<void> {
    const end = Date.now() + 15_000;
    while (!predicate()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function collect(group: string, topic: string, handler?: (batch: ConsumedBatch) => Promise<void>): Promise<{ consumer: BusConsumer; records: ConsumedRecord[] }> {
    const consumer = bus.consumer({ group, topic, start: "earliest" });
    consumers.push(consumer);
    const records: ConsumedRecord[] = [];
    await consumer.run(async (batch) => {
      await handler?.(batch);
      records.push(...batch.records);
      const last = batch.records[batch.records.length - 1];
      if (last !== undefined) await consumer.commit(batch.partition, String(BigInt(last.offset) + 1n));
    });
    return { consumer, records };
  }

  it("carries CloudEvents in binary mode: attributes as ce_* Kafka headers, data as the value", async () => {
    await bus.ensureTopic("kumo.events", 2);
    const event: KumoCloudEvent = {
      specversion: "1.0",
      id: "9b7a-4c1e",
      source: "openstack/nova/compute-1",
      type: "org.openstack.nova.instance.create.end",
      subject: "3f1c-instance",
      time: "2024-05-01T10:00:00.000Z",
      datacontenttype: "application/json",
      openstackproject: "p-42",
      data: { instance_id: "3f1c-instance", state: "active" },
    };
    await bus.publish("kumo.events", [toBusRecord(event, "3f1c-instance")]);

    // A plain Kafka client (any language's) sees the Kafka protocol binding's binary mode.
    const kafka = new Kafka({ clientId: "plain", brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const plain = kafka.consumer({ groupId: "plain", maxWaitTimeInMs: 100, heartbeatInterval: 100 });
    const raw: { key: string | undefined; headers: Record<string, string>; value: string }[] = [];
    await plain.connect();
    try {
      await plain.subscribe({ topic: "kumo.events", fromBeginning: true });
      await plain.run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          raw.push({ key: message.key?.toString(), headers, value: message.value?.toString() ?? "" });
        },
      });
      await until("the plain consumer's record", () => raw.length === 1);
    } finally {
      await plain.disconnect();
    }
    expect(raw[0]?.key).toBe("3f1c-instance");
    expect(raw[0]?.headers).toEqual({
      ce_specversion: "1.0",
      ce_id: "9b7a-4c1e",
      ce_source: "openstack/nova/compute-1",
      ce_type: "org.openstack.nova.instance.create.end",
      ce_subject: "3f1c-instance",
      ce_time: "2024-05-01T10:00:00.000Z",
      ce_openstackproject: "p-42",
      "content-type": "application/json",
    });
    expect(JSON.parse(raw[0]?.value ?? "")).toEqual(event.data);

    // And the bus's own consumer maps the record back to the same event.
    const { records } = await collect("dispatcher", "kumo.events");
    await until("the bus consumer's record", () => records.length === 1);
    expect(fromBusRecord(records[0]!)).toEqual(event);
  });

  it("rejects a publish to a topic that was never ensured, naming the fix", async () => {
    await expect(bus.publish("nope", [{ value: encoder.encode("x") }])).rejects.toThrow(/call ensureTopic\("nope", partitions\) first/);
    await expect(bus.ensureTopic("bad name!", 1)).rejects.toMatchObject({ code: "KUMO_E_VALIDATION" });
  });

  it("publishes without idempotence, with a warning, when the brokers do not offer it", async () => {
    const plain = await startTestKafkaBroker({ idempotence: false });
    const other = createKafkaBus(options(plain.brokers));
    try {
      await other.ensureTopic("t", 1);
      const positions = await other.publish("t", [{ value: encoder.encode("a") }, { value: encoder.encode("b") }]);
      expect(positions).toEqual([
        { partition: 0, offset: "0" },
        { partition: 0, offset: "1" },
      ]);
      expect(logs.some((l) => l.level === "warn" && /idempotent/.test(l.message))).toBe(true);
    } finally {
      await other.close();
      await plain.close();
    }
  });

  it("coalesces concurrent publishes and gives each its own positions", async () => {
    await bus.ensureTopic("c", 1);
    const calls = await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish("c", [{ value: encoder.encode(`${i}a`) }, { value: encoder.encode(`${i}b`) }])));
    const offsets = calls.flatMap((positions) => positions.map((p) => Number(p.offset)));
    expect([...offsets].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const positions of calls) expect(Number(positions[1]?.offset)).toBe(Number(positions[0]?.offset) + 1);
    expect(await bus.endOffsets("c")).toEqual(new Map([[0, "40"]]));
  });

  it("redelivers a batch whose handler rejected, after telling onHandlerError", async () => {
    const errors: unknown[] = [];
    await bus.close();
    bus = createKafkaBus(options(broker.brokers, { onHandlerError: (err) => void errors.push(err) }));
    await bus.ensureTopic("retry", 1);
    await bus.publish("retry", [{ value: encoder.encode("once") }]);
    let attempts = 0;
    const { records } = await collect("g", "retry", async () => {
      attempts++;
      if (attempts < 3) throw new Error(`attempt ${attempts} failed`);
    });
    await until("a successful delivery", () => records.length === 1);
    expect(errors.map((e) => (e as Error).message)).toEqual(["attempt 1 failed", "attempt 2 failed"]);
    expect(records.map((r) => r.offset)).toEqual(["0"]);
  });

  it("shares a topic's partitions among a group's members and hands them over when one stops", async () => {
    await bus.ensureTopic("shared", 4);
    const publishRound = (round: string): Promise<unknown> =>
      bus.publish("shared", Array.from({ length: 40 }, (_, i) => ({ key: `vm-${i}`, value: encoder.encode(`${round}-${i}`) })));
    const a = await collect("workers", "shared");
    const b = await collect("workers", "shared");
    await publishRound("one");
    await until("round one", () => a.records.length + b.records.length >= 40);
    expect(a.records.length).toBeGreaterThan(0);
    expect(b.records.length).toBeGreaterThan(0);
    const partitionsOf = (records: ConsumedRecord[]): Set<number> => new Set(records.map((r) => r.partition));
    expect([...partitionsOf(a.records)].filter((p) => partitionsOf(b.records).has(p))).toEqual([]);

    await b.consumer.stop();
    await publishRound("two");
    const roundTwo = (): Set<string> => new Set(a.records.map((r) => new TextDecoder().decode(r.value)).filter((v) => v.startsWith("two-")));
    // At-least-once: a record may come twice around a rebalance, but every one comes.
    await until("all of round two on the survivor", () => roundTwo().size === 40);
    expect(partitionsOf(a.records)).toEqual(new Set([0, 1, 2, 3]));
  });

  it("rejects work after close", async () => {
    await bus.ensureTopic("closing", 1);
    await bus.close();
    await expect(bus.publish("closing", [{ value: encoder.encode("x") }])).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
    await expect(bus.endOffsets("closing")).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
  });
});
