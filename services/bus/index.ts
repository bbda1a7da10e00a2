// The event bus module's public surface: the EventBus interface, the embedded (SQLite) bus, the
// Kafka bus, the partitioner both share, and the CloudEvents binary-mode mapping.
export type {
  BusConsumer,
  ConsumedBatch,
  ConsumedRecord,
  ConsumerOptions,
  EventBus,
  ProducerRecord,
  RecordPosition,
} from "./bus.ts";
export { createEmbeddedBus } from "./embedded.ts";
export type { EmbeddedBus, EmbeddedBusOptions, RetentionPolicy } from "./embedded.ts";
export * from "./kafka.ts";
export { murmur2, partitionForKey } from "./partitioner.ts";
export { fromBusRecord, toBusRecord } from "./cloudevents.ts";
