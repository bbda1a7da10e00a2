// The Kafka event bus for the cluster shape: the EventBus interface on kafkajs. Appends use an
// acks=all (idempotent where the brokers allow) producer with Kafka's key partitioning; consumers
// are kafkajs consumer-group members that commit explicitly, after the handler has run.

import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type KafkaConfig as KafkajsConfig, type LogEntry, type Message, type Producer, type SASLOptions } from "kafkajs";
import { KumoError, type ErrorDetail } from "../model/index.ts";
import type { BusConsumer, ConsumedBatch, ConsumedRecord, ConsumerOptions, EventBus, ProducerRecord, RecordPosition } from "./bus.ts";
import { partitionForKey } from "./partitioner.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** SASL mechanisms kafkajs supports without extra packages. */
export type KafkaSaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512";

/** How to reach a Kafka cluster, validated (see KAFKA_CONFIG_KEYS for each setting). */
export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean;
  readonly sasl?: { readonly mechanism: KafkaSaslMechanism; readonly username: string; readonly password: string };
  readonly idempotent: boolean;
  readonly partitions: number;
  /** Consumer session timeout: how soon a crashed member's partitions move to another (ms). */
  readonly sessionTimeoutMs: number;
}

/** Each setting and its default; the README's configuration table mirrors this. */
export const KAFKA_CONFIG_KEYS = {
  /** Comma-separated bootstrap brokers as host:port; required in Kafka mode. */
  KUMO_KAFKA_BROKERS: "",
  /** The client id brokers see in their logs and quotas. */
  KUMO_KAFKA_CLIENT_ID: "kumo",
  /** "true" connects with TLS (system CAs). */
  KUMO_KAFKA_SSL: "false",
  /** SASL mechanism: plain, scram-sha-256 or scram-sha-512; unset = no SASL. */
  KUMO_KAFKA_SASL_MECHANISM: "",
  /** SASL user name (required with a mechanism). */
  KUMO_KAFKA_SASL_USERNAME: "",
  /** SASL password (required with a mechanism). */
  KUMO_KAFKA_SASL_PASSWORD: "",
  /** "true" uses an idempotent producer when the brokers support it (no duplicates from retries). */
  KUMO_KAFKA_IDEMPOTENT: "true",
  /** Partitions of the topics Kumo creates (kumo.events, kumo.dlq); 1-10000. */
  KUMO_KAFKA_PARTITIONS: "8",
  /** Consumer session timeout in ms (6000-300000): after a crash, the restarted dispatcher waits up to this long to rejoin its group. */
  KUMO_KAFKA_SESSION_TIMEOUT_MS: "30000",
} as const;

type Key = keyof typeof KAFKA_CONFIG_KEYS;

const HOST_PORT = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:(\d{1,5})$|^\[[0-9A-Fa-f:.]+\]:(\d{1,5})$/;
const CLIENT_ID = /^[A-Za-z0-9._-]{1,255}$/;
const MECHANISMS: readonly KafkaSaslMechanism[] = ["plain", "scram-sha-256", "scram-sha-512"];

/** Reads the Kafka settings from `env`; KUMO_E_INVALID_CONFIG lists every bad key at once. */
export function loadKafkaConfig(env: Env): KafkaConfig {
  const problems: ErrorDetail[] = [];
  const bad = (field: string, message: string): void => void problems.push({ field, message });
  const raw = (key: Key): string | undefined => {
    const v = env[key]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const get = (key: Key): string => raw(key) ?? KAFKA_CONFIG_KEYS[key];
  const bool = (key: Key): boolean => {
    const v = get(key).toLowerCase();
    if (v !== "true" && v !== "false") bad(key, `${key}=${JSON.stringify(get(key))}: use true or false`);
    return v === "true";
  };

  for (const key of Object.keys(env)) {
    if (key.startsWith("KUMO_KAFKA_") && !(key in KAFKA_CONFIG_KEYS)) {
      bad(key, `unknown setting ${key}: known ones are ${Object.keys(KAFKA_CONFIG_KEYS).join(", ")}`);
    }
  }

  const brokers = get("KUMO_KAFKA_BROKERS")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (brokers.length === 0) bad("KUMO_KAFKA_BROKERS", "KUMO_KAFKA_BROKERS is not set: list the bootstrap brokers as host:port, comma-separated");
  for (const broker of brokers) {
    const m = HOST_PORT.exec(broker);
    const port = Number(m?.[2] ?? m?.[3]);
    if (m === null || port < 1 || port > 65535) {
      bad("KUMO_KAFKA_BROKERS", `KUMO_KAFKA_BROKERS entry "${broker}" is not host:port: write it like kafka-0.kafka:9092`);
    }
  }

  const clientId = get("KUMO_KAFKA_CLIENT_ID");
  if (!CLIENT_ID.test(clientId)) bad("KUMO_KAFKA_CLIENT_ID", `KUMO_KAFKA_CLIENT_ID "${clientId}" is invalid: use 1-255 letters, digits, '.', '_' or '-'`);

  const ssl = bool("KUMO_KAFKA_SSL");
  const idempotent = bool("KUMO_KAFKA_IDEMPOTENT");

  const partitionsText = get("KUMO_KAFKA_PARTITIONS");
  const partitions = Number(partitionsText);
  if (!/^\d+$/.test(partitionsText) || partitions < 1 || partitions > 10_000) {
    bad("KUMO_KAFKA_PARTITIONS", `KUMO_KAFKA_PARTITIONS=${JSON.stringify(partitionsText)} is not a whole number from 1 to 10000`);
  }

  const mechanism = raw("KUMO_KAFKA_SASL_MECHANISM")?.toLowerCase();
  const username = raw("KUMO_KAFKA_SASL_USERNAME");
  const password = raw("KUMO_KAFKA_SASL_PASSWORD");
  let sasl: KafkaConfig["sasl"];
  if (mechanism === undefined) {
    if (username !== undefined || password !== undefined) {
      bad("KUMO_KAFKA_SASL_MECHANISM", `KUMO_KAFKA_SASL_USERNAME/PASSWORD are set but KUMO_KAFKA_SASL_MECHANISM is not: set it to ${MECHANISMS.join(", ")}`);
    }
  } else {
    const known = MECHANISMS.find((m) => m === mechanism);
    if (known === undefined) bad("KUMO_KAFKA_SASL_MECHANISM", `KUMO_KAFKA_SASL_MECHANISM "${mechanism}" is not supported: use ${MECHANISMS.join(", ")}`);
    if (username === undefined) bad("KUMO_KAFKA_SASL_USERNAME", `KUMO_KAFKA_SASL_USERNAME is required with KUMO_KAFKA_SASL_MECHANISM=${mechanism}`);
    if (password === undefined) bad("KUMO_KAFKA_SASL_PASSWORD", `KUMO_KAFKA_SASL_PASSWORD is required with KUMO_KAFKA_SASL_MECHANISM=${mechanism}`);
    if (known !== undefined && username !== undefined && password !== undefined) sasl = Object.freeze({ mechanism: known, username, password });
  }

  const sessionText = get("KUMO_KAFKA_SESSION_TIMEOUT_MS");
  const sessionTimeoutMs = Number(sessionText);
  if (!/^\d+$/.test(sessionText) || sessionTimeoutMs < 6000 || sessionTimeoutMs > 300_000) {
    bad("KUMO_KAFKA_SESSION_TIMEOUT_MS", `KUMO_KAFKA_SESSION_TIMEOUT_MS=${JSON.stringify(sessionText)} is not a whole number from 6000 to 300000 (ms)`);
  }

  const first = problems[0];
  if (first !== undefined) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""})` : "";
    throw new KumoError("KUMO_E_INVALID_CONFIG", `invalid Kafka configuration: ${first.message}${more}`, { details: problems });
  }
  const config: KafkaConfig = { brokers: Object.freeze(brokers), clientId, ssl, idempotent, partitions, sessionTimeoutMs, ...(sasl === undefined ? {} : { sasl }) };
  return Object.freeze(config);
}

/** A warning or error from the bus or kafkajs. */
export interface KafkaLogEntry {
  level: "warn" | "error";
  message: string;
  /** kafkajs's namespace ("Consumer", "Producer", ...) or "bus". */
  source: string;
  fields: Record<string, unknown>;
}

/** createKafkaBus options: the connection settings plus tuning that tests and operators may change. */
export interface KafkaBusOptions extends Omit<KafkaConfig, "sessionTimeoutMs"> {
  /** A group member missing heartbeats this long is removed and its partitions reassigned (ms, default 30000). */
  sessionTimeoutMs?: number;
  /** How long a rebalance waits for members to rejoin (ms, default 60000). */
  rebalanceTimeoutMs?: number;
  /** Heartbeat period (ms, default 3000); well under sessionTimeoutMs. */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits on the broker for new records; also bounds how long stop() takes (ms, default 1000). */
  maxWaitMs?: number;
  /** Wait before redelivering a batch whose handler rejected (ms, default 1000). */
  retryBackoffMs?: number;
  /** Told when a consumer's handler rejects; the batch is then redelivered after retryBackoffMs. */
  onHandlerError?: (error: unknown, batch: ConsumedBatch) => void;
  /** Where warnings and errors go (default: the console). kafkajs's info and debug lines are dropped. */
  log?: (entry: KafkaLogEntry) => void;
  /** kafkajs connection timeout (ms, default 3000). */
  connectionTimeoutMs?: number;
}

/** Kafka's legal topic names. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const OFFSET = /^(0|[1-9][0-9]{0,18})$/;
/** Producer requests stay well under Kafka's default 1 MB message.max.bytes. */
const MAX_COALESCED_BYTES = 512 * 1024;

/** Creates the Kafka bus; it connects lazily, on first use. */
export function createKafkaBus(options: KafkaBusOptions): EventBus {
  return new KafkaBus(options);
}

function consoleLog(entry: KafkaLogEntry): void {
  const line = `kafka ${entry.source}: ${entry.message}`;
  if (entry.level === "error") console.error(line, entry.fields);
  else console.warn(line, entry.fields);
}

function unavailable(): KumoError {
  return new KumoError("KUMO_E_UNAVAILABLE", "the event bus is closed");
}

function missingTopic(topic: string): KumoError {
  return new KumoError("KUMO_E_INTERNAL", `bus topic "${topic}" does not exist: call ensureTopic("${topic}", partitions) first`);
}

function brokerError(what: string, err: unknown): KumoError {
  if (err instanceof KumoError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KumoError("KUMO_E_UNAVAILABLE", `kafka: ${what} failed: ${message}`, { cause: err });
}

/** True when kafkajs reports that the brokers lack an API (here: InitProducerId, for idempotence). */
function isUnsupportedApi(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e.name === "KafkaJSServerDoesNotSupportApiKey") return true;
  }
  return false;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

interface PendingPublish {
  topic: string;
  records: readonly ProducerRecord[];
  partitions: number[];
  bytes: number;
  resolve: (positions: RecordPosition[]) => void;
  reject: (error: unknown) => void;
}

class KafkaBus implements EventBus {
  readonly kafka: Kafka;
  readonly options: KafkaBusOptions;
  readonly log: (entry: KafkaLogEntry) => void;
  private readonly partitionCounts = new Map<string, number>();
  private readonly roundRobin = new Map<string, number>();
  private readonly consumers = new Set<KafkaConsumer>();
  private adminClient: Promise<Admin> | undefined;
  private producer: Promise<Producer> | undefined;
  private queue: PendingPublish[] = [];
  private sending: Promise<void> | undefined;
  private closed = false;

  constructor(options: KafkaBusOptions) {
    this.options = options;
    this.log = options.log ?? consoleLog;
    const log = this.log;
    const config: KafkajsConfig = {
      clientId: options.clientId,
      brokers: [...options.brokers],
      ssl: options.ssl,
      connectionTimeout: options.connectionTimeoutMs ?? 3000,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        const { message, timestamp: _t, logger: _l, ...fields } = entry.log;
        // kafkajs warns about any bounded retry count on an idempotent producer; the bound is
        // deliberate (a publish must fail, not hang, when the cluster is down).
        if (message.startsWith("Limiting retries for the idempotent producer")) return;
        log({ level: entry.level === logLevel.ERROR ? "error" : "warn", message, source: entry.namespace || "kafkajs", fields });
      },
    };
    if (options.sasl !== undefined) config.sasl = { ...options.sasl } as SASLOptions;
    this.kafka = new Kafka(config);
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    if (this.closed) throw unavailable();
    if (!TOPIC_NAME.test(topic) || topic === "." || topic === "..") {
      throw new KumoError("KUMO_E_VALIDATION", `bus topic name "${topic}" is invalid: use 1-249 letters, digits, '.', '_' or '-'`);
    }
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new KumoError("KUMO_E_VALIDATION", `bus topic "${topic}": partitions must be a positive integer, got ${partitions}`);
    }
    if (await this.topicExists(topic)) return;
    const admin = await this.admin();
    try {
      // An existing topic keeps its partition count: a concurrent creator wins, and createTopics
      // answers TOPIC_ALREADY_EXISTS, which kafkajs treats as success.
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    } catch (err) {
      throw brokerError(`creating topic "${topic}"`, err);
    }
    this.partitionCounts.delete(topic);
    await this.partitionCount(topic);
  }

  async publish(topic: string, records: readonly ProducerRecord[]): Promise<RecordPosition[]> {
    if (this.closed) throw unavailable();
    let bytes = 0;
    for (const record of records) {
      if (!(record.value instanceof Uint8Array)) {
        throw new KumoError("KUMO_E_VALIDATION", `bus publish to "${topic}": a record's value must be a Uint8Array`);
      }
      bytes += record.value.byteLength + 64;
    }
    const count = await this.partitionCount(topic);
    if (records.length === 0) return [];
    const partitions = records.map((r) => (r.key !== undefined ? partitionForKey(r.key, count) : this.nextRoundRobin(topic, count)));
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, records, partitions, bytes, resolve, reject });
      this.sending ??= this.drain();
    });
  }

  consumer(options: ConsumerOptions): BusConsumer {
    if (options.group === "") throw new KumoError("KUMO_E_VALIDATION", "bus consumer: group must not be empty");
    const maxBatch = options.maxBatch ?? 100;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new KumoError("KUMO_E_VALIDATION", `bus consumer: maxBatch must be a positive integer, got ${maxBatch}`);
    }
    const consumer = new KafkaConsumer(this, options.group, options.topic, options.start ?? "latest", maxBatch);
    this.consumers.add(consumer);
    return consumer;
  }

  async endOffsets(topic: string): Promise<Map<number, string>> {
    if (this.closed) throw unavailable();
    await this.partitionCount(topic);
    const admin = await this.admin();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, o.high]));
    } catch (err) {
      throw brokerError(`reading end offsets of "${topic}"`, err);
    }
  }

  async committedOffsets(group: string, topic: string): Promise<Map<number, string>> {
    if (this.closed) throw unavailable();
    const admin = await this.admin();
    if (!(await this.topicExists(topic))) return new Map();
    try {
      const [answer] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const out = new Map<number, string>();
      // -1 means the group never committed that partition.
      for (const p of answer?.partitions ?? []) if (p.offset !== "-1") out.set(p.partition, p.offset);
      return out;
    } catch (err) {
      throw brokerError(`reading committed offsets of group "${group}"`, err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    await this.sending;
    const clients: Promise<{ disconnect(): Promise<void> }>[] = [];
    if (this.producer !== undefined) clients.push(this.producer);
    if (this.adminClient !== undefined) clients.push(this.adminClient);
    await Promise.all(clients.map((c) => c.then((client) => client.disconnect()).catch(() => undefined)));
  }

  // ---- internals used by consumers ----

  get isClosed(): boolean {
    return this.closed;
  }

  forgetConsumer(consumer: KafkaConsumer): void {
    this.consumers.delete(consumer);
  }

  /** A connected admin client (one per bus, connected on first use). */
  admin(): Promise<Admin> {
    this.adminClient ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      return admin;
    })();
    const pending = this.adminClient;
    // A failed connect is retried by the next caller rather than cached forever.
    pending.catch(() => {
      if (this.adminClient === pending) this.adminClient = undefined;
    });
    return pending.catch((err: unknown) => {
      throw brokerError("connecting to the brokers", err);
    });
  }

  async partitionCount(topic: string): Promise<number> {
    const cached = this.partitionCounts.get(topic);
    if (cached !== undefined) return cached;
    const admin = await this.admin();
    let metadata;
    try {
      // All topics at once: asking for one missing topic makes kafkajs retry for seconds.
      metadata = await admin.fetchTopicMetadata();
    } catch (err) {
      throw brokerError("reading topic metadata", err);
    }
    const found = metadata.topics.find((t) => t.name === topic);
    if (found === undefined || found.partitions.length === 0) throw missingTopic(topic);
    this.partitionCounts.set(topic, found.partitions.length);
    return found.partitions.length;
  }

  private async topicExists(topic: string): Promise<boolean> {
    try {
      await this.partitionCount(topic);
      return true;
    } catch (err) {
      if (err instanceof KumoError && err.code === "KUMO_E_INTERNAL") return false;
      throw err;
    }
  }

  // ---- append ----

  private nextRoundRobin(topic: string, partitions: number): number {
    const n = this.roundRobin.get(topic) ?? 0;
    this.roundRobin.set(topic, (n + 1) % partitions);
    return n % partitions;
  }

  /** Sends queued publishes, one request at a time; calls queued meanwhile go out together. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      let bytes = 0;
      let take = 0;
      while (take < this.queue.length && (take === 0 || bytes + (this.queue[take]?.bytes ?? 0) <= MAX_COALESCED_BYTES)) {
        bytes += this.queue[take]?.bytes ?? 0;
        take++;
      }
      const calls = this.queue.splice(0, take);
      try {
        const positions = await this.send(calls);
        calls.forEach((call, i) => call.resolve(positions[i] ?? []));
      } catch (err) {
        const error = brokerError(`publishing to "${calls[0]?.topic ?? ""}"`, err);
        for (const call of calls) call.reject(error);
      }
    }
    this.sending = undefined;
  }

  private async send(calls: readonly PendingPublish[]): Promise<RecordPosition[][]> {
    const producer = await this.connectedProducer();
    const messagesByTopic = new Map<string, Message[]>();
    // Index of each record within its topic-partition in this request: offset = base + index.
    const indexes: number[][] = [];
    const counters = new Map<string, number>();
    for (const call of calls) {
      const messages = messagesByTopic.get(call.topic) ?? [];
      messagesByTopic.set(call.topic, messages);
      indexes.push(
        call.records.map((record, i) => {
          const partition = call.partitions[i] ?? 0;
          const message: Message = { value: toBuffer(record.value), partition };
          if (record.key !== undefined) message.key = record.key;
          if (record.headers !== undefined) message.headers = { ...record.headers };
          if (record.timestamp !== undefined) message.timestamp = String(record.timestamp);
          messages.push(message);
          const counter = `${call.topic}\0${partition}`;
          const index = counters.get(counter) ?? 0;
          counters.set(counter, index + 1);
          return index;
        }),
      );
    }
    const results = await producer.sendBatch({
      acks: -1,
      topicMessages: [...messagesByTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    const base = new Map(results.map((r) => [`${r.topicName}\0${r.partition}`, BigInt(r.baseOffset ?? "0")]));
    return calls.map((call, c) =>
      call.partitions.map((partition, i) => {
        const start = base.get(`${call.topic}\0${partition}`);
        if (start === undefined) throw new KumoError("KUMO_E_INTERNAL", `kafka: no produce result for ${call.topic}/${partition}`);
        return { partition, offset: String(start + BigInt(indexes[c]?.[i] ?? 0)) };
      }),
    );
  }

  private connectedProducer(): Promise<Producer> {
    this.producer ??= this.startProducer();
    const pending = this.producer;
    pending.catch(() => {
      if (this.producer === pending) this.producer = undefined;
    });
    return pending;
  }

  private async startProducer(): Promise<Producer> {
    // Records carry explicit partitions (partitionForKey), so the partitioner is never consulted;
    // naming one only silences kafkajs's warning about its v2 default.
    const common = { allowAutoTopicCreation: false, retry: { retries: 8 }, createPartitioner: Partitioners.DefaultPartitioner };
    if (this.options.idempotent) {
      const producer = this.kafka.producer({ ...common, idempotent: true, maxInFlightRequests: 1 });
      try {
        await producer.connect();
        return producer;
      } catch (err) {
        await producer.disconnect().catch(() => undefined);
        if (!isUnsupportedApi(err)) throw err;
        this.log({ level: "warn", source: "bus", message: "the brokers do not support idempotent producers (no InitProducerId): publishing without idempotence", fields: {} });
      }
    }
    const producer = this.kafka.producer({ ...common, maxInFlightRequests: 1 });
    await producer.connect();
    return producer;
  }
}

class KafkaConsumer implements BusConsumer {
  private state: "idle" | "running" | "stopped" = "idle";
  private client: Consumer | undefined;
  private stopping: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly bus: KafkaBus;
  private readonly group: string;
  private readonly topic: string;
  private readonly start: "earliest" | "latest";
  private readonly maxBatch: number;

  constructor(bus: KafkaBus, group: string, topic: string, start: "earliest" | "latest", maxBatch: number) {
    this.bus = bus;
    this.group = group;
    this.topic = topic;
    this.start = start;
    this.maxBatch = maxBatch;
  }

  async run(handler: (batch: ConsumedBatch) => Promise<void>): Promise<void> {
    if (this.state !== "idle") throw new KumoError("KUMO_E_INTERNAL", `bus consumer of group "${this.group}" is already ${this.state}`);
    if (this.bus.isClosed) throw unavailable();
    const partitions = await this.bus.partitionCount(this.topic);
    this.state = "running";
    const o = this.bus.options;
    const client = this.bus.kafka.consumer({
      groupId: this.group,
      sessionTimeout: o.sessionTimeoutMs ?? 30_000,
      rebalanceTimeout: o.rebalanceTimeoutMs ?? 60_000,
      heartbeatInterval: o.heartbeatIntervalMs ?? 3_000,
      maxWaitTimeInMs: o.maxWaitMs ?? 1_000,
      allowAutoTopicCreation: false,
    });
    this.client = client;
    // A new group with start "latest" begins at the end offsets read when it joins, so records
    // appended after run() resolves are delivered (kafkajs alone resolves "latest" lazily).
    let pinned: Promise<void> = Promise.resolve();
    if (this.start === "latest") {
      client.on(client.events.GROUP_JOIN, (event) => {
        pinned = this.pinLatest(client, event.payload.memberAssignment[this.topic] ?? []);
      });
    }
    client.on(client.events.CRASH, (event) => {
      this.bus.log({ level: "error", source: "bus", message: `consumer of group "${this.group}" crashed`, fields: { error: String(event.payload.error), restart: event.payload.restart } });
    });
    try {
      await client.connect();
      await client.subscribe({ topic: this.topic, fromBeginning: this.start === "earliest" });
      await client.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(partitions, 1),
        eachBatch: async (payload) => {
          const { batch } = payload;
          const records = batch.messages.map((m): ConsumedRecord => {
            const headers: Record<string, string> = {};
            for (const [name, value] of Object.entries(m.headers ?? {})) {
              if (value === undefined) continue;
              const first = Array.isArray(value) ? value[0] : value;
              headers[name] = first === undefined ? "" : first.toString();
            }
            const record: ConsumedRecord = {
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              value: m.value === null ? new Uint8Array(0) : new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength),
              headers,
              timestamp: Number(m.timestamp),
            };
            if (m.key !== null && m.key !== undefined) record.key = m.key.toString();
            return record;
          });
          for (let i = 0; i < records.length; i += this.maxBatch) {
            const chunk = records.slice(i, i + this.maxBatch);
            const delivered = await this.deliver(handler, { topic: batch.topic, partition: batch.partition, records: chunk }, () => payload.isRunning() && !payload.isStale(), () => payload.heartbeat());
            // Undelivered records (stopped or rebalanced) are fetched again by whoever owns the partition next.
            if (!delivered) return;
            const last = chunk[chunk.length - 1];
            if (last !== undefined) payload.resolveOffset(last.offset);
            await payload.heartbeat();
          }
        },
      });
    } catch (err) {
      throw brokerError(`starting a consumer of group "${this.group}"`, err);
    }
    await pinned;
  }

  async commit(partition: number, offset: string): Promise<void> {
    if (!OFFSET.test(offset)) throw new KumoError("KUMO_E_INTERNAL", `bus commit: offset "${offset}" is not a non-negative integer`);
    if (!Number.isInteger(partition) || partition < 0) throw new KumoError("KUMO_E_INTERNAL", `bus commit: ${partition} is not a partition`);
    const client = this.client;
    if (this.state !== "running" || client === undefined) {
      throw new KumoError("KUMO_E_UNAVAILABLE", `bus consumer of group "${this.group}" is not running: commit from a running consumer`);
    }
    try {
      await client.commitOffsets([{ topic: this.topic, partition, offset }]);
    } catch (err) {
      throw brokerError(`committing offset ${offset} of ${this.topic}/${partition} for group "${this.group}"`, err);
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.state = "stopped";
    this.abort.abort();
    this.bus.forgetConsumer(this);
    // Leaves the group, so the remaining members take over this one's partitions at once.
    await this.client?.disconnect().catch((err: unknown) => {
      this.bus.log({ level: "warn", source: "bus", message: `stopping consumer of group "${this.group}" failed`, fields: { error: String(err) } });
    });
  }

  /** Runs the handler until it succeeds; false when the consumer stops or loses the partition first. */
  private async deliver(handler: (batch: ConsumedBatch) => Promise<void>, batch: ConsumedBatch, owned: () => boolean, heartbeat: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (!owned() || this.abort.signal.aborted) return false;
      try {
        await handler(batch);
        return true;
      } catch (err) {
        const report = this.bus.options.onHandlerError;
        if (report !== undefined) report(err, batch);
        else this.bus.log({ level: "warn", source: "bus", message: `handler of group "${this.group}" failed on ${batch.topic}/${batch.partition}; redelivering`, fields: { error: String(err) } });
        try {
          await sleep(this.bus.options.retryBackoffMs ?? 1000, undefined, { signal: this.abort.signal });
        } catch {
          return false;
        }
        await heartbeat();
      }
    }
  }

  /** Seeks every assigned partition the group never committed to its current end offset. */
  private async pinLatest(client: Consumer, partitions: readonly number[]): Promise<void> {
    if (partitions.length === 0) return;
    try {
      const admin = await this.bus.admin();
      const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId: this.group, topics: [this.topic] }), admin.fetchTopicOffsets(this.topic)]);
      const hasCommit = new Set((committed[0]?.partitions ?? []).filter((p) => p.offset !== "-1").map((p) => p.partition));
      for (const end of ends) {
        if (partitions.includes(end.partition) && !hasCommit.has(end.partition)) client.seek({ topic: this.topic, partition: end.partition, offset: end.high });
      }
    } catch (err) {
      // kafkajs still starts these partitions at "latest", just resolved a little later.
      this.bus.log({ level: "warn", source: "bus", message: `could not pin start offsets of group "${this.group}"`, fields: { error: String(err) } });
    }
  }
}
