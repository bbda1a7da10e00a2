// The EventBus: Kafka's semantics (topics with partitions, partition keys, consumer groups with
// committed offsets, at-least-once delivery) behind one interface, with an embedded durable log
// in SQLite and a Kafka implementation (kafkajs). Both pass test/contract/bus.contract.ts.

/** A record to append. */
export interface ProducerRecord {
  /** Records with the same key go to the same partition, in order. */
  key?: string;
  value: Uint8Array;
  /** String headers (CloudEvents binary mode puts ce_* attributes here). */
  headers?: Record<string, string>;
  /** Epoch ms; defaults to append time. */
  timestamp?: number;
}

/** Where an appended record landed. */
export interface RecordPosition {
  partition: number;
  /** Offsets are decimal strings (Kafka offsets are 64-bit). */
  offset: string;
}

/** A record as a consumer sees it. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: string;
  key?: string;
  value: Uint8Array;
  headers: Record<string, string>;
  timestamp: number;
}

/** A batch of records from one partition, in offset order. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
}

/** Consumer options. */
export interface ConsumerOptions {
  group: string;
  topic: string;
  /** Where a group with no committed offset starts: "earliest" or "latest" (default). */
  start?: "earliest" | "latest";
  /** Max records per batch. */
  maxBatch?: number;
}

/** A consumer-group member. Offsets are committed explicitly, after processing. */
export interface BusConsumer {
  /**
   * Starts delivering batches. Batches of one partition are delivered one at a time (the next
   * after the handler's promise resolves); partitions run concurrently. Resolves once the
   * consumer has its partitions and start positions, so a record appended after that reaches
   * the group even with start "latest". A batch whose handler rejects is delivered again.
   */
  run(handler: (batch: ConsumedBatch) => Promise<void>): Promise<void>;
  /** Commits `offset` as the next offset to read for the partition (Kafka convention). */
  commit(partition: number, offset: string): Promise<void>;
  /** Leaves the group after in-flight batches end (so never await it inside the handler). */
  stop(): Promise<void>;
}

/** Topics, appends and consumers. */
export interface EventBus {
  /** Creates a topic if missing (idempotent; an existing topic keeps its partition count). */
  ensureTopic(topic: string, partitions: number): Promise<void>;
  /** Appends records; resolves only once they are durable (acks=all on Kafka). */
  publish(topic: string, records: readonly ProducerRecord[]): Promise<RecordPosition[]>;
  consumer(options: ConsumerOptions): BusConsumer;
  /** The next offset to be written, for every partition ("0" for one never written to). */
  endOffsets(topic: string): Promise<Map<number, string>>;
  /** Committed offsets of a group, per partition; partitions without a commit are absent. */
  committedOffsets(group: string, topic: string): Promise<Map<number, string>>;
  close(): Promise<void>;
}
