// A single-node, in-memory Kafka broker for tests: it speaks the Kafka wire protocol over TCP
// at the API versions kafkajs 2.2.4 negotiates, so kafkajs clients run unchanged against it.
// Test-only: it never ships and nothing under services/ imports it. Compression: none only.

import net from "node:net";
import { GroupCoordinator } from "./groups.ts";
import { approximateSize, CorruptRecordError, decodeRecordBatches, encodeRecordBatch, WireReader, WireWriter, type WireRecord } from "./wire.ts";

/** Options for the test broker. */
export interface TestKafkaBrokerOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Create topics on Metadata requests that allow it (Kafka's auto.create.topics.enable); default true. */
  autoCreateTopics?: boolean;
  /** Partitions of auto-created topics and of CreateTopics with -1; default 1. */
  defaultPartitions?: number;
  /** Advertise InitProducerId so kafkajs can run an idempotent producer; default true. */
  idempotence?: boolean;
  /** Kafka's group.initial.rebalance.delay.ms; default 0 (tests want fast joins). */
  initialRebalanceDelayMs?: number;
}

/** A running test broker. */
export interface TestKafkaBroker {
  port: number;
  /** Bootstrap addresses for kafkajs (`["127.0.0.1:<port>"]`). */
  brokers: string[];
  close(): Promise<void>;
}

const NODE_ID = 0;
const HOST = "127.0.0.1";

const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  ApiVersions: 18,
  CreateTopics: 19,
  InitProducerId: 22,
} as const;

/** The one version implemented per API; kafkajs uses min(its max, ours). */
const IMPLEMENTED: Record<number, number> = {
  [ApiKey.Produce]: 3, // first version with RecordBatch v2
  [ApiKey.Fetch]: 4, // first version with RecordBatch v2 and isolation level
  [ApiKey.ListOffsets]: 1,
  [ApiKey.Metadata]: 4, // first version with allow_auto_topic_creation
  [ApiKey.OffsetCommit]: 2,
  [ApiKey.OffsetFetch]: 1,
  [ApiKey.FindCoordinator]: 0,
  [ApiKey.JoinGroup]: 1, // first version with a rebalance timeout
  [ApiKey.Heartbeat]: 0,
  [ApiKey.LeaveGroup]: 0,
  [ApiKey.SyncGroup]: 0,
  [ApiKey.ApiVersions]: 2,
  [ApiKey.CreateTopics]: 1,
  [ApiKey.InitProducerId]: 0,
};

const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_TOPIC_EXCEPTION: 17,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
} as const;

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** One partition's log; offsets are array indexes (nothing is ever deleted). */
interface PartitionLog {
  records: WireRecord[];
  /** Idempotent producers: next expected sequence and recent batches, by producer id. */
  producers: Map<bigint, { nextSequence: number; recent: { firstSequence: number; baseOffset: bigint }[] }>;
}

interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string;
}

/** Starts a Kafka test broker on 127.0.0.1. */
export async function startTestKafkaBroker(options: TestKafkaBrokerOptions = {}): Promise<TestKafkaBroker> {
  const broker = new KafkaTestBroker(options);
  const port = await broker.listen(options.port ?? 0);
  return { port, brokers: [`${HOST}:${port}`], close: () => broker.close() };
}

class KafkaTestBroker {
  private readonly topics = new Map<string, PartitionLog[]>();
  private readonly groups: GroupCoordinator;
  private readonly sockets = new Set<net.Socket>();
  /** Fetches waiting for data, woken by appends to any partition they read. */
  private readonly waiters = new Set<{ keys: Set<string>; wake: () => void }>();
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly autoCreateTopics: boolean;
  private readonly defaultPartitions: number;
  private readonly versions: [number, number][];
  private port = 0;
  private nextProducerId = 1000n;
  private closed = false;

  constructor(options: TestKafkaBrokerOptions) {
    this.autoCreateTopics = options.autoCreateTopics ?? true;
    this.defaultPartitions = options.defaultPartitions ?? 1;
    this.groups = new GroupCoordinator({ initialRebalanceDelayMs: options.initialRebalanceDelayMs ?? 0 });
    this.versions = Object.entries(IMPLEMENTED)
      .map(([k, v]): [number, number] => [Number(k), v])
      .filter(([k]) => options.idempotence !== false || k !== ApiKey.InitProducerId);
  }

  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, HOST, () => {
        const address = this.server.address();
        this.port = typeof address === "object" && address !== null ? address.port : port;
        resolve(this.port);
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) w.wake();
    this.groups.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    // Like Kafka, one request per connection at a time, answered in order.
    let queue = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const size = pending.readInt32BE(0);
        if (pending.length < 4 + size) break;
        const frame = pending.subarray(4, 4 + size);
        pending = pending.subarray(4 + size);
        queue = queue.then(() => this.serve(socket, frame));
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.sockets.delete(socket));
  }

  private async serve(socket: net.Socket, frame: Buffer): Promise<void> {
    if (socket.destroyed) return;
    const r = new WireReader(frame);
    let header: RequestHeader | undefined;
    let body: Buffer | null;
    try {
      header = { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32(), clientId: r.string() ?? "" };
      body = await this.handle(header, r);
    } catch (err) {
      // A request this broker cannot parse is a bug in the double or an unexpected client:
      // drop the connection loudly rather than answer with something made up.
      console.error(`kafka test broker: api ${header?.apiKey ?? "?"} v${header?.apiVersion ?? "?"} failed:`, err);
      socket.destroy();
      return;
    }
    if (body === null || socket.destroyed) return;
    const out = Buffer.alloc(8);
    out.writeInt32BE(4 + body.length, 0);
    out.writeInt32BE(header.correlationId, 4);
    socket.write(Buffer.concat([out, body]));
  }

  private async handle(h: RequestHeader, r: WireReader): Promise<Buffer | null> {
    if (h.apiKey === ApiKey.ApiVersions) return this.apiVersions(h.apiVersion);
    const expected = IMPLEMENTED[h.apiKey];
    if (expected !== h.apiVersion) throw new Error(`unsupported api ${h.apiKey} version ${h.apiVersion} (implemented: ${expected})`);
    switch (h.apiKey) {
      case ApiKey.Metadata:
        return this.metadata(r);
      case ApiKey.CreateTopics:
        return this.createTopics(r);
      case ApiKey.Produce:
        return this.produce(r);
      case ApiKey.Fetch:
        return this.fetch(r);
      case ApiKey.ListOffsets:
        return this.listOffsets(r);
      case ApiKey.FindCoordinator:
        return new WireWriter().int16(ErrorCode.NONE).int32(NODE_ID).string(HOST).int32(this.port).toBuffer();
      case ApiKey.JoinGroup:
        return this.joinGroup(r, h.clientId);
      case ApiKey.SyncGroup:
        return this.syncGroup(r);
      case ApiKey.Heartbeat: {
        const [groupId, generation, memberId] = [r.string() ?? "", r.int32(), r.string() ?? ""];
        return new WireWriter().int16(this.groups.heartbeat(groupId, generation, memberId)).toBuffer();
      }
      case ApiKey.LeaveGroup: {
        const [groupId, memberId] = [r.string() ?? "", r.string() ?? ""];
        return new WireWriter().int16(this.groups.leave(groupId, memberId)).toBuffer();
      }
      case ApiKey.OffsetCommit:
        return this.offsetCommit(r);
      case ApiKey.OffsetFetch:
        return this.offsetFetch(r);
      case ApiKey.InitProducerId:
        r.string(); // transactional id: transactions are not supported, only idempotence
        return new WireWriter().int32(0).int16(ErrorCode.NONE).int64(this.nextProducerId++).int16(0).toBuffer();
      default:
        throw new Error(`api ${h.apiKey} is not implemented`);
    }
  }

  private apiVersions(version: number): Buffer {
    const w = new WireWriter().int16(version > 2 ? ErrorCode.UNSUPPORTED_VERSION : ErrorCode.NONE);
    w.array(this.versions, (w, [key, max]) => w.int16(key).int16(key === ApiKey.ApiVersions ? 0 : max).int16(max));
    if (version >= 1 && version <= 2) w.int32(0);
    return w.toBuffer();
  }

  private createTopic(name: string, partitions: number): number {
    if (!TOPIC_NAME.test(name) || name === "." || name === "..") return ErrorCode.INVALID_TOPIC_EXCEPTION;
    if (this.topics.has(name)) return ErrorCode.TOPIC_ALREADY_EXISTS;
    const count = partitions === -1 ? this.defaultPartitions : partitions;
    if (count < 1) return ErrorCode.INVALID_PARTITIONS;
    this.topics.set(name, Array.from({ length: count }, () => ({ records: [], producers: new Map() })));
    return ErrorCode.NONE;
  }

  private metadata(r: WireReader): Buffer {
    const requested = r.array((r) => r.string() ?? "");
    const allowAutoCreate = r.bool();
    const names = requested ?? [...this.topics.keys()];
    if (allowAutoCreate && this.autoCreateTopics) for (const name of names) if (!this.topics.has(name)) this.createTopic(name, -1);
    return new WireWriter()
      .int32(0) // throttle
      .array([NODE_ID], (w, id) => w.int32(id).string(HOST).int32(this.port).string(null))
      .string("kumo-test-cluster")
      .int32(NODE_ID) // controller
      .array(names, (w, name) => {
        const partitions = this.topics.get(name);
        w.int16(partitions === undefined ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.NONE).string(name).bool(false);
        w.array(partitions === undefined ? [] : partitions.map((_, i) => i), (w, i) =>
          w.int16(ErrorCode.NONE).int32(i).int32(NODE_ID).array([NODE_ID], (w, n) => w.int32(n)).array([NODE_ID], (w, n) => w.int32(n)),
        );
      })
      .toBuffer();
  }

  private createTopics(r: WireReader): Buffer {
    const requests =
      r.array((r) => {
        const name = r.string() ?? "";
        const partitions = r.int32();
        r.int16(); // replication factor: one node
        r.array((r) => [r.int32(), r.array((r) => r.int32())]);
        r.array((r) => [r.string(), r.string()]);
        return { name, partitions };
      }) ?? [];
    r.int32(); // timeout
    const validateOnly = r.bool();
    return new WireWriter()
      .array(requests, (w, t) => {
        const code = validateOnly ? ErrorCode.NONE : this.createTopic(t.name, t.partitions);
        w.string(t.name).int16(code).string(code === ErrorCode.NONE ? null : `topic ${t.name}: error ${code}`);
      })
      .toBuffer();
  }

  private produce(r: WireReader): Buffer | null {
    r.string(); // transactional id
    const acks = r.int16();
    r.int32(); // timeout: appends are synchronous
    const topics =
      r.array((r) => ({ name: r.string() ?? "", partitions: r.array((r) => ({ partition: r.int32(), set: r.bytes() ?? Buffer.alloc(0) })) ?? [] })) ?? [];
    const results = topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({ partition: p.partition, ...this.append(t.name, p.partition, p.set) })),
    }));
    if (acks === 0) return null;
    return new WireWriter()
      .array(results, (w, t) =>
        w.string(t.name).array(t.partitions, (w, p) => w.int32(p.partition).int16(p.errorCode).int64(p.baseOffset).int64(-1n)),
      )
      .int32(0)
      .toBuffer();
  }

  private append(topic: string, partition: number, set: Buffer): { errorCode: number; baseOffset: bigint } {
    const log = this.topics.get(topic)?.[partition];
    if (log === undefined) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, baseOffset: -1n };
    let batches;
    try {
      batches = decodeRecordBatches(set);
    } catch (err) {
      if (err instanceof CorruptRecordError || err instanceof RangeError) return { errorCode: ErrorCode.CORRUPT_MESSAGE, baseOffset: -1n };
      throw err;
    }
    if (batches.some((b) => (b.attributes & 0x07) !== 0)) return { errorCode: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, baseOffset: -1n };
    let firstOffset = -1n;
    for (const batch of batches) {
      let baseOffset = BigInt(log.records.length);
      if (batch.producerId >= 0n) {
        const state = log.producers.get(batch.producerId) ?? { nextSequence: 0, recent: [] };
        log.producers.set(batch.producerId, state);
        if (batch.baseSequence !== state.nextSequence) {
          // A retried batch that already landed: answer with where it landed, append nothing.
          const duplicate = state.recent.find((b) => b.firstSequence === batch.baseSequence);
          if (duplicate === undefined) return { errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, baseOffset: -1n };
          if (firstOffset < 0n) firstOffset = duplicate.baseOffset;
          continue;
        }
        state.nextSequence += batch.records.length;
        state.recent.push({ firstSequence: batch.baseSequence, baseOffset });
        if (state.recent.length > 5) state.recent.shift();
      }
      log.records.push(...batch.records);
      if (firstOffset < 0n) firstOffset = baseOffset;
      baseOffset += BigInt(batch.records.length);
    }
    if (batches.length > 0) this.wake(`${topic}\0${partition}`);
    return { errorCode: ErrorCode.NONE, baseOffset: firstOffset };
  }

  private wake(key: string): void {
    for (const w of this.waiters) if (w.keys.has(key)) w.wake();
  }

  private async fetch(r: WireReader): Promise<Buffer> {
    r.int32(); // replica id
    const maxWaitMs = r.int32();
    const minBytes = Math.max(1, r.int32());
    r.int32(); // max bytes: bounded per partition below
    r.int8(); // isolation level: there are no transactions, so both levels read the same
    const topics =
      r.array((r) => ({
        name: r.string() ?? "",
        partitions: r.array((r) => ({ partition: r.int32(), offset: r.int64(), maxBytes: r.int32() })) ?? [],
      })) ?? [];
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const answer = this.readPartitions(topics);
      const remaining = deadline - Date.now();
      if (answer.bytes >= minBytes || answer.failed || remaining <= 0 || this.closed) return answer.body;
      await new Promise<void>((resolve) => {
        const waiter = { keys: new Set(topics.flatMap((t) => t.partitions.map((p) => `${t.name}\0${p.partition}`))), wake: () => done() };
        const timer = setTimeout(() => done(), remaining);
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        };
        this.waiters.add(waiter);
      });
    }
  }

  private readPartitions(topics: { name: string; partitions: { partition: number; offset: bigint; maxBytes: number }[] }[]): { body: Buffer; bytes: number; failed: boolean } {
    let bytes = 0;
    let failed = false;
    const w = new WireWriter().int32(0);
    w.array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (w, p) => {
        const log = this.topics.get(t.name)?.[p.partition];
        const high = BigInt(log?.records.length ?? 0);
        let code: number = ErrorCode.NONE;
        if (log === undefined) code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        else if (p.offset < 0n || p.offset > high) code = ErrorCode.OFFSET_OUT_OF_RANGE;
        const records: WireRecord[] = [];
        if (log !== undefined && code === ErrorCode.NONE) {
          let size = 0;
          for (let i = Number(p.offset); i < log.records.length; i++) {
            const rec = log.records[i]!;
            size += approximateSize(rec);
            // Always at least one record, so a record larger than max bytes still makes progress.
            if (records.length > 0 && size > p.maxBytes) break;
            records.push(rec);
          }
        }
        if (code !== ErrorCode.NONE) failed = true;
        const set = encodeRecordBatch(p.offset, records);
        bytes += set.length;
        w.int32(p.partition).int16(code).int64(high).int64(high).array([], (w) => w).bytes(set);
      });
    });
    return { body: w.toBuffer(), bytes, failed };
  }

  private listOffsets(r: WireReader): Buffer {
    r.int32(); // replica id
    const topics = r.array((r) => ({ name: r.string() ?? "", partitions: r.array((r) => ({ partition: r.int32(), timestamp: r.int64() })) ?? [] })) ?? [];
    return new WireWriter()
      .array(topics, (w, t) =>
        w.string(t.name).array(t.partitions, (w, p) => {
          const log = this.topics.get(t.name)?.[p.partition];
          if (log === undefined) return w.int32(p.partition).int16(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION).int64(-1n).int64(-1n);
          let offset = BigInt(log.records.length); // -1: latest
          if (p.timestamp === -2n) offset = 0n;
          else if (p.timestamp >= 0n) {
            const i = log.records.findIndex((rec) => rec.timestamp >= p.timestamp);
            if (i >= 0) offset = BigInt(i);
          }
          return w.int32(p.partition).int16(ErrorCode.NONE).int64(-1n).int64(offset);
        }),
      )
      .toBuffer();
  }

  private async joinGroup(r: WireReader, clientId: string): Promise<Buffer> {
    const groupId = r.string() ?? "";
    const sessionTimeoutMs = r.int32();
    const rebalanceTimeoutMs = r.int32();
    const memberId = r.string() ?? "";
    const protocolType = r.string() ?? "";
    const protocols = r.array((r) => ({ name: r.string() ?? "", metadata: r.bytes() ?? Buffer.alloc(0) })) ?? [];
    const res = await this.groups.join({ groupId, memberId, clientId, sessionTimeoutMs, rebalanceTimeoutMs, protocolType, protocols });
    return new WireWriter()
      .int16(res.errorCode)
      .int32(res.generationId)
      .string(res.protocol)
      .string(res.leaderId)
      .string(res.memberId)
      .array(res.members, (w, m) => w.string(m.memberId).bytes(m.metadata))
      .toBuffer();
  }

  private async syncGroup(r: WireReader): Promise<Buffer> {
    const groupId = r.string() ?? "";
    const generation = r.int32();
    const memberId = r.string() ?? "";
    const assignments = r.array((r) => ({ memberId: r.string() ?? "", assignment: r.bytes() ?? Buffer.alloc(0) })) ?? [];
    const res = await this.groups.sync(groupId, generation, memberId, assignments);
    return new WireWriter().int16(res.errorCode).bytes(res.assignment).toBuffer();
  }

  private offsetCommit(r: WireReader): Buffer {
    const groupId = r.string() ?? "";
    const generation = r.int32();
    const memberId = r.string() ?? "";
    r.int64(); // retention time: offsets live as long as the broker
    const topics =
      r.array((r) => ({ name: r.string() ?? "", partitions: r.array((r) => ({ partition: r.int32(), offset: r.int64(), metadata: r.string() })) ?? [] })) ?? [];
    const check = this.groups.commitCheck(groupId, generation, memberId);
    return new WireWriter()
      .array(topics, (w, t) =>
        w.string(t.name).array(t.partitions, (w, p) => {
          let code = check;
          if (code === ErrorCode.NONE && this.topics.get(t.name)?.[p.partition] === undefined) code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
          if (code === ErrorCode.NONE) this.groups.commit(groupId, t.name, p.partition, p.offset);
          w.int32(p.partition).int16(code);
        }),
      )
      .toBuffer();
  }

  private offsetFetch(r: WireReader): Buffer {
    const groupId = r.string() ?? "";
    const topics = r.array((r) => ({ name: r.string() ?? "", partitions: r.array((r) => r.int32()) ?? [] })) ?? [];
    return new WireWriter()
      .array(topics, (w, t) =>
        w.string(t.name).array(t.partitions, (w, p) => w.int32(p).int64(this.groups.committed(groupId, t.name, p)).string("").int16(ErrorCode.NONE)),
      )
      .toBuffer();
  }
}
