// The embedded event bus: Kafka's model (partitioned topics, keys, consumer groups with
// committed offsets, at-least-once delivery) as a durable log in the SQLite database (bus_*
// tables), for the one-machine shape. It passes test/contract/bus.contract.ts like the Kafka bus.

import type { DatabaseSync, SQLOutputValue, StatementSync } from "node:sqlite";
import { setImmediate as nextTurn } from "node:timers/promises";
import { KumoError, systemClock } from "../model/index.ts";
import type { Clock } from "../model/index.ts";
import type {
  BusConsumer,
  ConsumedBatch,
  ConsumedRecord,
  ConsumerOptions,
  EventBus,
  ProducerRecord,
  RecordPosition,
} from "./bus.ts";
import { partitionForKey } from "./partitioner.ts";

/** How long records are kept. Like Kafka, retention ignores consumer groups: it deletes records a group has not yet read. */
export interface RetentionPolicy {
  /** Delete records whose timestamp is older than this (ms). Unset: keep by age forever. */
  maxAgeMs?: number;
  /** Keep at most this many of the newest records per partition. Unset: no count limit. */
  maxRecordsPerPartition?: number;
  /** How often retention runs (ms, default 60000). */
  intervalMs?: number;
}

/** Options of createEmbeddedBus. */
export interface EmbeddedBusOptions {
  /**
   * An open database; the bus creates its bus_* tables in it and never closes it. Open it in WAL
   * mode: an append is then durable across a crash of the process once publish resolves.
   */
  db: DatabaseSync;
  /** Time for record timestamps, retention, polling and retry timers (default: the system clock). */
  clock?: Clock;
  /** Retention; without it records are kept forever. */
  retention?: RetentionPolicy;
  /** How often an idle consumer looks for records appended by another connection (ms, default 1000). */
  pollIntervalMs?: number;
  /** Wait before redelivering a batch whose handler rejected (ms, default 1000). */
  retryBackoffMs?: number;
  /**
   * Told when a consumer's handler rejects, or reading the log fails (with an empty batch); the
   * same position is then read again after retryBackoffMs.
   */
  onHandlerError?: (error: unknown, batch: ConsumedBatch) => void;
}

/** The embedded EventBus, plus a way to run retention on demand. */
export interface EmbeddedBus extends EventBus {
  /** Applies the retention policy now; resolves with the number of records deleted. */
  enforceRetention(): Promise<number>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bus_topics (
  name TEXT PRIMARY KEY,
  partitions INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS bus_partitions (
  topic TEXT NOT NULL,
  "partition" INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  PRIMARY KEY (topic, "partition")
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_records (
  topic TEXT NOT NULL,
  "partition" INTEGER NOT NULL,
  "offset" INTEGER NOT NULL,
  key TEXT,
  value BLOB NOT NULL,
  headers TEXT,
  timestamp INTEGER NOT NULL,
  PRIMARY KEY (topic, "partition", "offset")
) STRICT;
CREATE TABLE IF NOT EXISTS bus_group_offsets (
  group_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  "partition" INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  PRIMARY KEY (group_id, topic, "partition")
) STRICT, WITHOUT ROWID;
`;

/** Kafka's legal topic names. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const OFFSET = /^(0|[1-9][0-9]{0,15})$/;
const RETENTION_CHUNK = 10_000;

/** Creates the embedded bus on `options.db` (creating its tables if missing). */
export function createEmbeddedBus(options: EmbeddedBusOptions): EmbeddedBus {
  return new SqliteBus(options);
}

/** What one database's buses share in this process: wake-ups on append and group membership. */
interface Hub {
  /** "topic\0partition" → wake functions of idle partition workers. */
  wakers: Map<string, Set<() => void>>;
  /** "group\0topic" → the group's in-process members. */
  groups: Map<string, Group>;
}

const hubs = new WeakMap<DatabaseSync, Hub>();

function hubOf(db: DatabaseSync): Hub {
  let hub = hubs.get(db);
  if (hub === undefined) {
    hub = { wakers: new Map(), groups: new Map() };
    hubs.set(db, hub);
  }
  return hub;
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function int(value: SQLOutputValue | undefined): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new KumoError("KUMO_E_INTERNAL", `bus: expected an integer column, got ${typeof value}`);
}

function unavailable(): KumoError {
  return new KumoError("KUMO_E_UNAVAILABLE", "the event bus is closed");
}

function missingTopic(topic: string): KumoError {
  return new KumoError("KUMO_E_INTERNAL", `bus topic "${topic}" does not exist: call ensureTopic("${topic}", partitions) first`);
}

interface PendingPublish {
  topic: string;
  partitions: number;
  records: readonly ProducerRecord[];
  resolve: (positions: RecordPosition[]) => void;
  reject: (error: unknown) => void;
}

class SqliteBus implements EmbeddedBus {
  readonly db: DatabaseSync;
  readonly clock: Clock;
  readonly hub: Hub;
  readonly pollIntervalMs: number;
  readonly retryBackoffMs: number;
  readonly onHandlerError: ((error: unknown, batch: ConsumedBatch) => void) | undefined;
  private readonly retention: RetentionPolicy;
  private readonly partitionCounts = new Map<string, number>();
  private readonly roundRobin = new Map<string, number>();
  private readonly consumers = new Set<EmbeddedConsumer>();
  private pending: PendingPublish[] = [];
  private closed = false;
  private cancelRetentionTimer: (() => void) | undefined;
  private retentionRun: Promise<number> | undefined;

  private readonly stmt: {
    topicPartitions: StatementSync;
    insertTopic: StatementSync;
    insertPartition: StatementSync;
    nextOffset: StatementSync;
    setNextOffset: StatementSync;
    insertRecord: StatementSync;
    readBatch: StatementSync;
    committed: StatementSync;
    commit: StatementSync;
    endOffsets: StatementSync;
    groupOffsets: StatementSync;
    allTopics: StatementSync;
    logStart: StatementSync;
    firstNotOlderThan: StatementSync;
    deleteRange: StatementSync;
  };

  constructor(options: EmbeddedBusOptions) {
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.hub = hubOf(options.db);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.retryBackoffMs = options.retryBackoffMs ?? 1000;
    this.onHandlerError = options.onHandlerError;
    this.retention = options.retention ?? {};
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmt = {
      topicPartitions: db.prepare("SELECT partitions FROM bus_topics WHERE name = ?"),
      insertTopic: db.prepare("INSERT INTO bus_topics (name, partitions) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
      insertPartition: db.prepare(
        'INSERT INTO bus_partitions (topic, "partition", next_offset) VALUES (?, ?, 0) ON CONFLICT DO NOTHING',
      ),
      nextOffset: db.prepare('SELECT next_offset FROM bus_partitions WHERE topic = ? AND "partition" = ?'),
      setNextOffset: db.prepare('UPDATE bus_partitions SET next_offset = ? WHERE topic = ? AND "partition" = ?'),
      insertRecord: db.prepare(
        'INSERT INTO bus_records (topic, "partition", "offset", key, value, headers, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      readBatch: db.prepare(
        'SELECT "offset", key, value, headers, timestamp FROM bus_records WHERE topic = ? AND "partition" = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
      ),
      committed: db.prepare(
        'SELECT next_offset FROM bus_group_offsets WHERE group_id = ? AND topic = ? AND "partition" = ?',
      ),
      commit: db.prepare(
        'INSERT INTO bus_group_offsets (group_id, topic, "partition", next_offset) VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, "partition") DO UPDATE SET next_offset = excluded.next_offset',
      ),
      endOffsets: db.prepare('SELECT "partition", next_offset FROM bus_partitions WHERE topic = ? ORDER BY "partition"'),
      groupOffsets: db.prepare(
        'SELECT "partition", next_offset FROM bus_group_offsets WHERE group_id = ? AND topic = ? ORDER BY "partition"',
      ),
      allTopics: db.prepare("SELECT name, partitions FROM bus_topics ORDER BY name"),
      logStart: db.prepare('SELECT MIN("offset") AS first FROM bus_records WHERE topic = ? AND "partition" = ?'),
      firstNotOlderThan: db.prepare(
        'SELECT "offset" FROM bus_records WHERE topic = ? AND "partition" = ? AND timestamp >= ? ORDER BY "offset" LIMIT 1',
      ),
      deleteRange: db.prepare(
        'DELETE FROM bus_records WHERE topic = ? AND "partition" = ? AND "offset" >= ? AND "offset" < ?',
      ),
    };
    if (this.retention.maxAgeMs !== undefined || this.retention.maxRecordsPerPartition !== undefined) {
      this.scheduleRetention();
    }
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    if (this.closed) throw unavailable();
    if (!TOPIC_NAME.test(topic)) {
      throw new KumoError("KUMO_E_VALIDATION", `bus topic name "${topic}" is invalid: use 1-249 letters, digits, '.', '_' or '-'`);
    }
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new KumoError("KUMO_E_VALIDATION", `bus topic "${topic}": partitions must be a positive integer, got ${partitions}`);
    }
    // An existing topic keeps its partition count (Kafka's createTopics does the same).
    this.transaction(() => {
      this.stmt.insertTopic.run(topic, partitions);
      const count = int(this.stmt.topicPartitions.get(topic)?.["partitions"]);
      for (let p = 0; p < count; p++) this.stmt.insertPartition.run(topic, p);
      this.partitionCounts.set(topic, count);
    });
  }

  publish(topic: string, records: readonly ProducerRecord[]): Promise<RecordPosition[]> {
    if (this.closed) return Promise.reject(unavailable());
    let partitions: number;
    try {
      partitions = this.partitionCount(topic);
      for (const record of records) {
        if (!(record.value instanceof Uint8Array)) {
          throw new KumoError("KUMO_E_VALIDATION", `bus publish to "${topic}": a record's value must be a Uint8Array`);
        }
      }
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (records.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      // Appends requested in the same tick share one transaction (group commit); each call is
      // still all-or-nothing and resolves only after COMMIT.
      if (this.pending.length === 0) queueMicrotask(() => this.flush());
      this.pending.push({ topic, partitions, records, resolve, reject });
    });
  }

  consumer(options: ConsumerOptions): BusConsumer {
    if (options.group === "") throw new KumoError("KUMO_E_VALIDATION", "bus consumer: group must not be empty");
    const maxBatch = options.maxBatch ?? 100;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new KumoError("KUMO_E_VALIDATION", `bus consumer: maxBatch must be a positive integer, got ${maxBatch}`);
    }
    const consumer = new EmbeddedConsumer(this, options.group, options.topic, options.start ?? "latest", maxBatch);
    this.consumers.add(consumer);
    return consumer;
  }

  async endOffsets(topic: string): Promise<Map<number, string>> {
    if (this.closed) throw unavailable();
    this.partitionCount(topic);
    const out = new Map<number, string>();
    for (const row of this.stmt.endOffsets.all(topic)) out.set(int(row["partition"]), String(int(row["next_offset"])));
    return out;
  }

  async committedOffsets(group: string, topic: string): Promise<Map<number, string>> {
    if (this.closed) throw unavailable();
    const out = new Map<number, string>();
    for (const row of this.stmt.groupOffsets.all(group, topic)) {
      out.set(int(row["partition"]), String(int(row["next_offset"])));
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.pending.length > 0) this.flush();
    this.closed = true;
    this.cancelRetentionTimer?.();
    await Promise.all([...this.consumers].map((c) => c.stop()));
    if (this.retentionRun !== undefined) await this.retentionRun.catch(() => 0);
  }

  enforceRetention(): Promise<number> {
    if (this.closed) return Promise.reject(unavailable());
    this.retentionRun ??= this.applyRetention().finally(() => {
      this.retentionRun = undefined;
    });
    return this.retentionRun;
  }

  // ---- internals used by consumers ----

  get isClosed(): boolean {
    return this.closed;
  }

  forgetConsumer(consumer: EmbeddedConsumer): void {
    this.consumers.delete(consumer);
  }

  partitionCount(topic: string): number {
    const cached = this.partitionCounts.get(topic);
    if (cached !== undefined) return cached;
    const row = this.stmt.topicPartitions.get(topic);
    if (row === undefined) throw missingTopic(topic);
    const count = int(row["partitions"]);
    this.partitionCounts.set(topic, count);
    return count;
  }

  /** Where a group member starts reading a partition. */
  startOffset(group: string, topic: string, partition: number, start: "earliest" | "latest"): number {
    const committed = this.stmt.committed.get(group, topic, partition);
    if (committed !== undefined) return int(committed["next_offset"]);
    if (start === "earliest") return 0;
    return int(this.stmt.nextOffset.get(topic, partition)?.["next_offset"] ?? 0);
  }

  readBatch(topic: string, partition: number, from: number, max: number): ConsumedRecord[] {
    const rows = this.stmt.readBatch.all(topic, partition, from, max);
    const records: ConsumedRecord[] = [];
    for (const row of rows) {
      const value = row["value"];
      const headers = row["headers"];
      const record: ConsumedRecord = {
        topic,
        partition,
        offset: String(int(row["offset"])),
        value: value instanceof Uint8Array ? value : new Uint8Array(0),
        headers: typeof headers === "string" ? (JSON.parse(headers) as Record<string, string>) : {},
        timestamp: int(row["timestamp"]),
      };
      const key = row["key"];
      if (typeof key === "string") record.key = key;
      records.push(record);
    }
    return records;
  }

  commitOffset(group: string, topic: string, partition: number, offset: string): void {
    if (this.closed) throw unavailable();
    const partitions = this.partitionCount(topic);
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      throw new KumoError("KUMO_E_INTERNAL", `bus commit: topic "${topic}" has no partition ${partition}`);
    }
    if (!OFFSET.test(offset)) throw new KumoError("KUMO_E_INTERNAL", `bus commit: offset "${offset}" is not a non-negative integer`);
    this.stmt.commit.run(group, topic, partition, Number(offset));
  }

  // ---- append ----

  private flush(): void {
    const calls = this.pending;
    this.pending = [];
    if (calls.length === 0) return;
    const touched = new Set<string>();
    let results: RecordPosition[][];
    try {
      results = this.transaction(() => this.append(calls, touched));
    } catch (err) {
      for (const call of calls) call.reject(err);
      return;
    }
    calls.forEach((call, i) => call.resolve(results[i] ?? []));
    for (const key of touched) {
      const wakers = this.hub.wakers.get(key);
      if (wakers !== undefined) for (const wake of [...wakers]) wake();
    }
  }

  private append(calls: readonly PendingPublish[], touched: Set<string>): RecordPosition[][] {
    const next = new Map<string, { topic: string; partition: number; offset: number }>();
    const now = this.clock.now();
    const results: RecordPosition[][] = [];
    for (const call of calls) {
      const positions: RecordPosition[] = [];
      for (const record of call.records) {
        const partition =
          record.key !== undefined ? partitionForKey(record.key, call.partitions) : this.nextRoundRobin(call.topic, call.partitions);
        const k = partitionKey(call.topic, partition);
        let cursor = next.get(k);
        if (cursor === undefined) {
          const row = this.stmt.nextOffset.get(call.topic, partition);
          cursor = { topic: call.topic, partition, offset: int(row?.["next_offset"] ?? 0) };
          next.set(k, cursor);
        }
        const offset = cursor.offset++;
        const headers = record.headers;
        let headerText: string | null = null;
        if (headers !== undefined) {
          for (const _ in headers) {
            headerText = JSON.stringify(headers);
            break;
          }
        }
        this.stmt.insertRecord.run(
          call.topic,
          partition,
          offset,
          record.key ?? null,
          record.value,
          headerText,
          record.timestamp ?? now,
        );
        positions.push({ partition, offset: String(offset) });
      }
      results.push(positions);
    }
    for (const [k, cursor] of next) {
      this.stmt.setNextOffset.run(cursor.offset, cursor.topic, cursor.partition);
      touched.add(k);
    }
    return results;
  }

  private nextRoundRobin(topic: string, partitions: number): number {
    const n = this.roundRobin.get(topic) ?? 0;
    this.roundRobin.set(topic, (n + 1) % partitions);
    return n % partitions;
  }

  /** Runs fn in one transaction (a savepoint if the shared connection is already inside one). */
  private transaction<T>(fn: () => T): T {
    const nested = this.db.isTransaction;
    this.db.exec(nested ? "SAVEPOINT bus" : "BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec(nested ? "RELEASE bus" : "COMMIT");
      return result;
    } catch (err) {
      try {
        this.db.exec(nested ? "ROLLBACK TO bus; RELEASE bus" : "ROLLBACK");
      } catch {
        // The connection is gone or SQLite already rolled back; the first error is the one to report.
      }
      throw err;
    }
  }

  // ---- retention ----

  private scheduleRetention(): void {
    const interval = this.retention.intervalMs ?? 60_000;
    this.cancelRetentionTimer = this.clock.setTimer(() => {
      if (this.closed) return;
      this.enforceRetention()
        .catch(() => 0)
        .finally(() => {
          if (!this.closed) this.scheduleRetention();
        });
    }, interval);
  }

  private async applyRetention(): Promise<number> {
    const { maxAgeMs, maxRecordsPerPartition } = this.retention;
    if (maxAgeMs === undefined && maxRecordsPerPartition === undefined) return 0;
    let deleted = 0;
    const topics = this.stmt.allTopics.all().map((row) => ({ name: String(row["name"]), partitions: int(row["partitions"]) }));
    for (const topic of topics) {
      for (let p = 0; p < topic.partitions; p++) {
        if (this.closed) return deleted;
        const end = int(this.stmt.nextOffset.get(topic.name, p)?.["next_offset"] ?? 0);
        const first = this.stmt.logStart.get(topic.name, p)?.["first"];
        if (first === null || first === undefined) continue;
        let cut = int(first);
        if (maxRecordsPerPartition !== undefined) cut = Math.max(cut, end - maxRecordsPerPartition);
        if (maxAgeMs !== undefined) {
          // Like Kafka, age retention removes a prefix of the log: it stops at the first record
          // that is young enough, so the retained log stays contiguous.
          const young = this.stmt.firstNotOlderThan.get(topic.name, p, this.clock.now() - maxAgeMs);
          cut = Math.max(cut, young === undefined ? end : int(young["offset"]));
        }
        for (let from = int(first); from < cut; from += RETENTION_CHUNK) {
          const to = Math.min(cut, from + RETENTION_CHUNK);
          deleted += Number(this.stmt.deleteRange.run(topic.name, p, from, to).changes);
          // Deleting a large backlog in chunks keeps the event loop (and publishers) responsive.
          await nextTurn();
          if (this.closed) return deleted;
        }
      }
    }
    return deleted;
  }
}

/**
 * The in-process members of one consumer group on one topic. Partition p goes to the member at
 * index p % members in join order; a partition changes hands only after its previous owner's
 * in-flight batch finishes, and the new owner resumes from the committed offset.
 */
class Group {
  readonly partitions: number;
  readonly members: EmbeddedConsumer[] = [];
  /** The latest worker of each partition; kept after it is revoked so the next owner can wait for it. */
  readonly workers = new Map<number, PartitionWorker>();

  constructor(partitions: number) {
    this.partitions = partitions;
  }

  /** Reassigns partitions; resolves when the new workers know their start offsets. */
  rebalance(): Promise<void> {
    const started: Promise<void>[] = [];
    const n = this.members.length;
    for (let p = 0; p < this.partitions; p++) {
      const owner = n === 0 ? undefined : this.members[p % n];
      const current = this.workers.get(p);
      if (current !== undefined && !current.isRevoked && current.consumer === owner) continue;
      current?.revoke();
      if (owner === undefined) continue;
      const worker = new PartitionWorker(owner, p, current);
      this.workers.set(p, worker);
      started.push(worker.ready);
    }
    return Promise.all(started).then(() => undefined);
  }
}

class EmbeddedConsumer implements BusConsumer {
  handler: ((batch: ConsumedBatch) => Promise<void>) | undefined;
  private state: "idle" | "running" | "stopped" = "idle";
  private readonly retired = new Set<Promise<void>>();
  private group: Group | undefined;

  readonly bus: SqliteBus;
  readonly groupId: string;
  readonly topic: string;
  readonly start: "earliest" | "latest";
  readonly maxBatch: number;

  constructor(bus: SqliteBus, groupId: string, topic: string, start: "earliest" | "latest", maxBatch: number) {
    this.bus = bus;
    this.groupId = groupId;
    this.topic = topic;
    this.start = start;
    this.maxBatch = maxBatch;
  }

  async run(handler: (batch: ConsumedBatch) => Promise<void>): Promise<void> {
    if (this.state !== "idle") throw new KumoError("KUMO_E_INTERNAL", `bus consumer of group "${this.groupId}" is already ${this.state}`);
    if (this.bus.isClosed) throw unavailable();
    const partitions = this.bus.partitionCount(this.topic);
    this.handler = handler;
    this.state = "running";
    const key = `${this.groupId}\u0000${this.topic}`;
    let group = this.bus.hub.groups.get(key);
    if (group === undefined) {
      group = new Group(partitions);
      this.bus.hub.groups.set(key, group);
    }
    this.group = group;
    group.members.push(this);
    await group.rebalance();
  }

  async commit(partition: number, offset: string): Promise<void> {
    this.bus.commitOffset(this.groupId, this.topic, partition, offset);
  }

  async stop(): Promise<void> {
    const wasRunning = this.state === "running";
    this.state = "stopped";
    this.bus.forgetConsumer(this);
    const group = this.group;
    if (wasRunning && group !== undefined) {
      const i = group.members.indexOf(this);
      if (i >= 0) group.members.splice(i, 1);
      // The remaining members take over this one's partitions once its in-flight batches end.
      await group.rebalance();
    }
    await Promise.all([...this.retired]);
  }

  /** Remembers a revoked worker until its in-flight batch ends, so stop() can wait for it. */
  release(worker: PartitionWorker): void {
    this.retired.add(worker.done);
    void worker.done.then(() => this.retired.delete(worker.done));
  }
}

/** Delivers one partition's records to one group member, a batch at a time, in offset order. */
class PartitionWorker {
  readonly consumer: EmbeddedConsumer;
  readonly partition: number;
  readonly ready: Promise<void>;
  readonly done: Promise<void>;
  private previous: PartitionWorker | undefined;
  private revoked = false;
  private wake: (() => void) | undefined;
  private markReady: () => void = () => undefined;

  constructor(consumer: EmbeddedConsumer, partition: number, previous: PartitionWorker | undefined) {
    this.consumer = consumer;
    this.partition = partition;
    this.previous = previous;
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    this.done = this.loop();
  }

  get isRevoked(): boolean {
    return this.revoked;
  }

  revoke(): void {
    if (this.revoked) return;
    this.revoked = true;
    this.consumer.release(this);
    this.wake?.();
  }

  private async loop(): Promise<void> {
    const { bus, groupId, topic, start, maxBatch } = this.consumer;
    try {
      // Never run the handler inside the constructor; and a partition changes hands only after
      // its previous owner's in-flight batch has ended.
      await (this.previous?.done ?? Promise.resolve());
      this.previous = undefined;
      let position: number | undefined;
      while (!this.revoked && !bus.isClosed) {
        let batch: ConsumedBatch = { topic, partition: this.partition, records: [] };
        try {
          if (position === undefined) {
            position = bus.startOffset(groupId, topic, this.partition, start);
            this.markReady();
          }
          batch = { topic, partition: this.partition, records: bus.readBatch(topic, this.partition, position, maxBatch) };
          const last = batch.records[batch.records.length - 1];
          if (last === undefined) {
            await this.sleep(bus.pollIntervalMs, true);
            continue;
          }
          await this.consumer.handler?.(batch);
          position = Number(last.offset) + 1;
        } catch (err) {
          // A rejected handler (or a failed read) retries the same position after a backoff.
          if (bus.isClosed) return;
          bus.onHandlerError?.(err, batch);
          await this.sleep(bus.retryBackoffMs, false);
          continue;
        }
        // A handler that resolves at once would otherwise keep a large backlog on the microtask
        // queue and starve timers and I/O.
        await nextTurn();
      }
    } finally {
      this.markReady();
    }
  }

  /** Waits `ms`, or less if the worker is revoked or (with onAppend) the partition gets a record. */
  private sleep(ms: number, onAppend: boolean): Promise<void> {
    const { bus, topic } = this.consumer;
    const key = partitionKey(topic, this.partition);
    return new Promise((resolve) => {
      let wakers: Set<() => void> | undefined;
      const finish = (): void => {
        cancel();
        if (wakers !== undefined) {
          wakers.delete(finish);
          if (wakers.size === 0 && bus.hub.wakers.get(key) === wakers) bus.hub.wakers.delete(key);
        }
        this.wake = undefined;
        resolve();
      };
      const cancel = bus.clock.setTimer(finish, ms);
      this.wake = finish;
      if (onAppend) {
        wakers = bus.hub.wakers.get(key);
        if (wakers === undefined) {
          wakers = new Set();
          bus.hub.wakers.set(key, wakers);
        }
        wakers.add(finish);
      }
    });
  }
}
