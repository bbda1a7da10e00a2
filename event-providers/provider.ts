// The EventProvider interface: a provider turns messages from a source (HTTP, cron, RabbitMQ)
// into CloudEvents and hands them to a sink that appends them durably to the bus. A provider
// acknowledges its source only after the sink's promise resolves.

import type { DeadLetter, KumoCloudEvent } from "../services/model/index.ts";

/** Where providers put events: `append` resolves only once the events are durable. */
export interface EventSink {
  /** Appends events (in order) to the events topic; the partition key keeps one resource's events in order. */
  append(events: readonly { event: KumoCloudEvent; partitionKey?: string }[]): Promise<void>;
  /** Records an undecodable message or undeliverable event on the dead-letter topic; durable on resolve. */
  deadLetter(letter: DeadLetter): Promise<void>;
}

/** Health a provider reports in /readyz and metrics. */
export interface ProviderHealth {
  ready: boolean;
  /** Human-readable state, e.g. "connected to amqp://host:5672/ (3 exchanges)". */
  message: string;
  /** Messages waiting at the source, if known. */
  lag?: number;
  lastMessageTime?: string;
}

/** An event source. */
export interface EventProvider {
  readonly name: string;
  start(sink: EventSink): Promise<void>;
  stop(): Promise<void>;
  health(): ProviderHealth;
}
