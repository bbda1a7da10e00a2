// The EventBus contract: what every bus (the embedded SQLite log, Kafka) must do, asserted only
// through the interface. Each implementation's test file calls runBusContract with a factory.
// Timeouts are generous because a real broker's group joins take seconds.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BusConsumer, ConsumedBatch, ConsumedRecord, ConsumerOptions, EventBus } from "../../services/bus/index.ts";

/** What a contract run needs from an implementation. */
export interface BusUnderTest {
  bus: EventBus;
  /** Closes the bus and opens a new one on the same storage (a restart); the suite then uses the new one. */
  reopen?: () => Promise<EventBus>;
  /** Closes whichever bus is current and removes its storage. */
  cleanup: () => Promise<void>;
}

const TEST_TIMEOUT = 90_000;
const WAIT_TIMEOUT = 45_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let topicCounter = 0;

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function text(value: Uint8Array): string {
  return decoder.decode(value);
}

/** A topic (and group) name no other test or run uses, so a shared broker needs no cleanup. */
function uniqueName(prefix: string): string {
  topicCounter++;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${topicCounter}`;
}

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = WAIT_TIMEOUT): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A running consumer and everything it received. */
interface Collector {
  consumer: BusConsumer;
  records: ConsumedRecord[];
  batches: ConsumedBatch[];
  values(): string[];
  /** Waits until at least n records arrived. */
  waitFor(n: number): Promise<void>;
}

/** Registers the contract tests for one EventBus implementation. */
export function runBusContract(name: string, factory: () => Promise<BusUnderTest>): void {
  describe(`EventBus contract: ${name}`, () => {
    let subject: BusUnderTest;
    let bus: EventBus;
    let running: BusConsumer[] = [];

    beforeEach(async () => {
      subject = await factory();
      bus = subject.bus;
      running = [];
    });

    afterEach(async () => {
      for (const consumer of running) await consumer.stop();
      running = [];
      await subject.cleanup();
    });

    async function stop(consumer: BusConsumer): Promise<void> {
      running = running.filter((c) => c !== consumer);
      await consumer.stop();
    }

    /** Starts a consumer that records every batch; with commit, it commits after each batch. */
    async function collect(
      options: ConsumerOptions,
      behaviour: { commit?: boolean; on?: EventBus } = {},
    ): Promise<Collector> {
      const consumer = (behaviour.on ?? bus).consumer(options);
      const records: ConsumedRecord[] = [];
      const batches: ConsumedBatch[] = [];
      running.push(consumer);
      await consumer.run(async (batch) => {
        batches.push(batch);
        records.push(...batch.records);
        const last = batch.records[batch.records.length - 1];
        if (behaviour.commit === true && last !== undefined) {
          await consumer.commit(batch.partition, String(BigInt(last.offset) + 1n));
        }
      });
      return {
        consumer,
        records,
        batches,
        values: () => records.map((r) => text(r.value)),
        waitFor: (n) => waitUntil(`${n} records (have ${records.length})`, () => records.length >= n),
      };
    }

    function sortedMap(map: Map<number, string>): [number, string][] {
      return [...map.entries()].sort((a, b) => a[0] - b[0]);
    }

    it("ensureTopic is idempotent and starts every partition empty", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("ensure");
      await bus.ensureTopic(topic, 3);
      await bus.ensureTopic(topic, 3);
      expect(sortedMap(await bus.endOffsets(topic))).toEqual([
        [0, "0"],
        [1, "0"],
        [2, "0"],
      ]);
    });

    it("publish returns one position per record, with contiguous offsets per partition", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("positions");
      await bus.ensureTopic(topic, 3);
      const first = await bus.publish(
        topic,
        Array.from({ length: 10 }, (_, i) => ({ value: bytes(`a${i}`) })),
      );
      const second = await bus.publish(
        topic,
        Array.from({ length: 5 }, (_, i) => ({ key: `key-${i}`, value: bytes(`b${i}`) })),
      );
      expect(first).toHaveLength(10);
      expect(second).toHaveLength(5);
      const perPartition = new Map<number, string[]>();
      for (const position of [...first, ...second]) {
        expect(position.partition).toBeGreaterThanOrEqual(0);
        expect(position.partition).toBeLessThan(3);
        const list = perPartition.get(position.partition) ?? [];
        list.push(position.offset);
        perPartition.set(position.partition, list);
      }
      const expectedEnds = new Map<number, string>([
        [0, "0"],
        [1, "0"],
        [2, "0"],
      ]);
      for (const [partition, offsets] of perPartition) {
        expect(offsets).toEqual(offsets.map((_, i) => String(i)));
        expectedEnds.set(partition, String(offsets.length));
      }
      expect(sortedMap(await bus.endOffsets(topic))).toEqual(sortedMap(expectedEnds));
    });

    it("records with the same key go to one partition and arrive in publish order", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("keys");
      await bus.ensureTopic(topic, 4);
      const keys = ["vm-1", "vm-2", "vm-3", "vm-4", "vm-5"];
      const partitionOf = new Map<string, Set<number>>();
      for (let round = 0; round < 5; round++) {
        const records = keys.flatMap((key) => [0, 1].map((j) => ({ key, value: bytes(`${key}:${round * 2 + j}`) })));
        const positions = await bus.publish(topic, records);
        positions.forEach((position, i) => {
          const key = records[i]?.key ?? "";
          const set = partitionOf.get(key) ?? new Set<number>();
          set.add(position.partition);
          partitionOf.set(key, set);
        });
      }
      for (const key of keys) expect(partitionOf.get(key)?.size).toBe(1);

      const c = await collect({ group: uniqueName("g"), topic, start: "earliest" });
      await c.waitFor(50);
      for (const key of keys) {
        const seen = c.records.filter((r) => r.key === key).map((r) => Number(text(r.value).split(":")[1]));
        expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i));
        const partitions = new Set(c.records.filter((r) => r.key === key).map((r) => r.partition));
        expect([...partitions]).toEqual([...(partitionOf.get(key) ?? [])]);
      }
    });

    it("a consumer group gets every record once when it commits, and resumes after its commits", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("once");
      const group = uniqueName("g");
      await bus.ensureTopic(topic, 3);
      await bus.publish(
        topic,
        Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: bytes(`r${i}`) })),
      );
      const first = await collect({ group, topic, start: "earliest" }, { commit: true });
      await first.waitFor(30);
      const ends = sortedMap(await bus.endOffsets(topic)).filter(([, offset]) => offset !== "0");
      await waitUntil("commits of every partition", async () => {
        const committed = sortedMap(await bus.committedOffsets(group, topic));
        return JSON.stringify(committed) === JSON.stringify(ends);
      });
      await stop(first.consumer);
      expect([...first.values()].sort()).toEqual(Array.from({ length: 30 }, (_, i) => `r${i}`).sort());

      const second = await collect({ group, topic, start: "earliest" }, { commit: true });
      await bus.publish(topic, [{ key: "k1", value: bytes("late") }]);
      await second.waitFor(1);
      expect(second.values()).toEqual(["late"]);
    });

    it("each consumer group independently gets every record", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("groups");
      await bus.ensureTopic(topic, 2);
      const expected = Array.from({ length: 20 }, (_, i) => `e${i}`);
      await bus.publish(topic, expected.map((v) => ({ value: bytes(v) })));
      const a = await collect({ group: uniqueName("ga"), topic, start: "earliest" }, { commit: true });
      const b = await collect({ group: uniqueName("gb"), topic, start: "earliest" }, { commit: true });
      await a.waitFor(20);
      await b.waitFor(20);
      expect([...a.values()].sort()).toEqual([...expected].sort());
      expect([...b.values()].sort()).toEqual([...expected].sort());
    });

    it("a new group starts at the end with start latest (the default) and at the beginning with earliest", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("start");
      await bus.ensureTopic(topic, 1);
      await bus.publish(topic, [{ value: bytes("old-1") }, { value: bytes("old-2") }]);
      const latest = await collect({ group: uniqueName("latest"), topic });
      const earliest = await collect({ group: uniqueName("earliest"), topic, start: "earliest" });
      // run() has resolved, so records appended now are past the latest group's start.
      await bus.publish(topic, [{ value: bytes("new-1") }, { value: bytes("new-2") }]);
      await latest.waitFor(2);
      await earliest.waitFor(4);
      // One partition: had the latest group seen an old record, it would come first.
      expect(latest.values().slice(0, 2)).toEqual(["new-1", "new-2"]);
      expect(earliest.values().slice(0, 4)).toEqual(["old-1", "old-2", "new-1", "new-2"]);
    });

    it("records past the committed offset are redelivered to the group's next consumer (at-least-once)", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("redeliver");
      const group = uniqueName("g");
      await bus.ensureTopic(topic, 1);
      await bus.publish(topic, Array.from({ length: 10 }, (_, i) => ({ value: bytes(`v${i}`) })));
      const first = await collect({ group, topic, start: "earliest", maxBatch: 3 });
      await first.waitFor(10);
      // Processed all ten, but only the first four are committed.
      await first.consumer.commit(0, "4");
      await stop(first.consumer);
      expect(sortedMap(await bus.committedOffsets(group, topic))).toEqual([[0, "4"]]);

      // A committed offset wins over the start option.
      const second = await collect({ group, topic, start: "latest" });
      await second.waitFor(6);
      expect(second.records[0]?.offset).toBe("4");
      expect(second.values().slice(0, 6)).toEqual(["v4", "v5", "v6", "v7", "v8", "v9"]);
    });

    it("committed offsets survive a restart of the bus", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("durable");
      const group = uniqueName("g");
      await bus.ensureTopic(topic, 2);
      await bus.publish(
        topic,
        Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: bytes(`d${i}`) })),
      );
      const first = await collect({ group, topic, start: "earliest" }, { commit: true });
      await first.waitFor(10);
      const ends = sortedMap(await bus.endOffsets(topic)).filter(([, offset]) => offset !== "0");
      await waitUntil("every partition committed", async () => {
        return JSON.stringify(sortedMap(await bus.committedOffsets(group, topic))) === JSON.stringify(ends);
      });
      await stop(first.consumer);

      const after = subject.reopen !== undefined ? await subject.reopen() : bus;
      bus = after;
      expect(sortedMap(await after.committedOffsets(group, topic))).toEqual(ends);
      expect(sortedMap(await after.endOffsets(topic)).filter(([, offset]) => offset !== "0")).toEqual(ends);
      const second = await collect({ group, topic, start: "earliest" }, { commit: true, on: after });
      await after.publish(topic, [{ key: "k3", value: bytes("after-restart") }]);
      await second.waitFor(1);
      expect(second.values()).toEqual(["after-restart"]);
    });

    it("endOffsets and committedOffsets report per partition", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("offsets");
      const group = uniqueName("g");
      await bus.ensureTopic(topic, 3);
      expect((await bus.committedOffsets(group, topic)).size).toBe(0);
      const positions = await bus.publish(
        topic,
        Array.from({ length: 12 }, (_, i) => ({ key: `key-${i}`, value: bytes(`o${i}`) })),
      );
      const counts = new Map<number, number>([
        [0, 0],
        [1, 0],
        [2, 0],
      ]);
      for (const p of positions) counts.set(p.partition, (counts.get(p.partition) ?? 0) + 1);
      expect(sortedMap(await bus.endOffsets(topic))).toEqual(
        sortedMap(new Map([...counts].map(([p, n]) => [p, String(n)]))),
      );

      const busiest = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
      const c = await collect({ group, topic, start: "earliest" });
      await c.waitFor(12);
      await c.consumer.commit(busiest, "1");
      expect(sortedMap(await bus.committedOffsets(group, topic))).toEqual([[busiest, "1"]]);
      await c.consumer.commit(busiest, "2");
      expect(sortedMap(await bus.committedOffsets(group, topic))).toEqual([[busiest, "2"]]);
      expect((await bus.committedOffsets(uniqueName("other"), topic)).size).toBe(0);
    });

    it("keys, headers, timestamps and binary values round-trip", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("roundtrip");
      await bus.ensureTopic(topic, 1);
      const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
      const headers = { ce_id: "abc-123", ce_type: "org.openstack.nova.instance.create.end", note: "ünïcødé ☁" };
      await bus.publish(topic, [
        { key: "clé-1", value: everyByte, headers, timestamp: 1_700_000_000_123 },
        { value: new Uint8Array(0) },
      ]);
      const c = await collect({ group: uniqueName("g"), topic, start: "earliest" });
      await c.waitFor(2);
      const [withAll, bare] = c.records;
      expect(withAll?.topic).toBe(topic);
      expect(withAll?.partition).toBe(0);
      expect(withAll?.key).toBe("clé-1");
      expect(Array.from(withAll?.value ?? [])).toEqual(Array.from(everyByte));
      expect(withAll?.headers).toEqual(headers);
      expect(withAll?.timestamp).toBe(1_700_000_000_123);
      expect(bare?.key).toBeUndefined();
      expect(bare?.value.length).toBe(0);
      expect(bare?.headers).toEqual({});
      expect(typeof bare?.timestamp).toBe("number");
    });

    it("delivers many records from one publish in bounded batches, in order, one batch at a time per partition", { timeout: TEST_TIMEOUT }, async () => {
      const topic = uniqueName("many");
      await bus.ensureTopic(topic, 4);
      const total = 5000;
      const positions = await bus.publish(
        topic,
        Array.from({ length: total }, (_, i) => ({ value: bytes(String(i)) })),
      );
      expect(positions).toHaveLength(total);

      const consumer = bus.consumer({ group: uniqueName("g"), topic, start: "earliest", maxBatch: 200 });
      running.push(consumer);
      const seen = new Set<string>();
      const lastOffset = new Map<number, bigint>();
      const inFlight = new Set<number>();
      const problems: string[] = [];
      await consumer.run(async (batch) => {
        if (inFlight.has(batch.partition)) problems.push(`two batches of partition ${batch.partition} at once`);
        inFlight.add(batch.partition);
        if (batch.records.length === 0 || batch.records.length > 200) problems.push(`batch of ${batch.records.length}`);
        for (const record of batch.records) {
          if (record.partition !== batch.partition || record.topic !== topic) problems.push("record outside its batch's partition");
          const offset = BigInt(record.offset);
          const previous = lastOffset.get(batch.partition);
          if (previous !== undefined && offset <= previous) problems.push(`offset ${offset} after ${previous}`);
          lastOffset.set(batch.partition, offset);
          seen.add(text(record.value));
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
        inFlight.delete(batch.partition);
        const last = batch.records[batch.records.length - 1];
        if (last !== undefined) await consumer.commit(batch.partition, String(BigInt(last.offset) + 1n));
      });
      await waitUntil(`${total} distinct records (have ${seen.size})`, () => seen.size >= total);
      expect(problems).toEqual([]);
      expect(seen.size).toBe(total);
    });
  });
}
