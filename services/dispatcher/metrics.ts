// Prometheus metrics of the dispatcher: events read from the bus, attempts and final results,
// retries, dead letters, how long events wait before their first invocation, and in-flight work.

import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The dispatcher's metric families. */
export interface DispatcherMetrics {
  /** Records read from the events topic. */
  eventsConsumed: Counter;
  /** Invocation attempts by the invoker's outcome (success, function_error, timeout, platform_error). */
  attempts: Counter<"outcome">;
  /** Deliveries (one event to one trigger) by final result: delivered, dead_lettered, discarded. */
  deliveries: Counter<"result">;
  /** Attempts after the first. */
  retries: Counter;
  /** Dead letters written by the dispatcher, by origin of the failure (delivery, decode, no_function). */
  deadLetters: Counter<"reason">;
  /** Seconds from the event's append to the bus to the start of its first invocation. */
  latency: Histogram;
  /** Deliveries started and not yet finished. */
  inFlight: Gauge;
}

/** Registers the dispatcher's metrics on a registry. */
export function createDispatcherMetrics(registry: Registry): DispatcherMetrics {
  const registers = [registry];
  return {
    eventsConsumed: new Counter({ name: "kumo_dispatcher_events_consumed_total", help: "Events read from the events topic.", registers }),
    attempts: new Counter({
      name: "kumo_dispatcher_attempts_total",
      help: "Event invocation attempts by outcome.",
      labelNames: ["outcome"],
      registers,
    }),
    deliveries: new Counter({
      name: "kumo_dispatcher_deliveries_total",
      help: "Deliveries of an event to a trigger by final result (delivered, dead_lettered, discarded).",
      labelNames: ["result"],
      registers,
    }),
    retries: new Counter({ name: "kumo_dispatcher_retries_total", help: "Delivery attempts after the first.", registers }),
    deadLetters: new Counter({
      name: "kumo_dispatcher_dead_letters_total",
      help: "Dead letters written by the dispatcher, by reason (delivery, decode, no_function).",
      labelNames: ["reason"],
      registers,
    }),
    latency: new Histogram({
      name: "kumo_dispatcher_delivery_latency_seconds",
      help: "Time from an event's append to the bus to the start of its first invocation.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    inFlight: new Gauge({ name: "kumo_dispatcher_inflight_deliveries", help: "Deliveries started and not yet finished.", registers }),
  };
}
