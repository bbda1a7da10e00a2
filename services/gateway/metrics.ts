// Prometheus metrics of the serving path. Label children are created once per revision at
// route time so the per-request cost is an increment, not a label lookup.

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Outcome } from "../model/index.ts";

/** The gateway's metric families. */
export interface GatewayMetrics {
  invocations: Counter<"namespace" | "function" | "revision" | "outcome">;
  duration: Histogram<"namespace" | "function" | "revision">;
  coldStarts: Counter<"namespace" | "function" | "revision">;
  coldStartDuration: Histogram<"namespace" | "function" | "revision">;
  instances: Gauge<"namespace" | "function" | "revision">;
  inflight: Gauge<"namespace" | "function" | "revision">;
  rejected: Counter<"namespace" | "function" | "reason">;
}

/** Registers the gateway's metrics on a registry. */
export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const registers = [registry];
  return {
    invocations: new Counter({ name: "kumo_invocations_total", help: "Invocations by function, revision and outcome.", labelNames: ["namespace", "function", "revision", "outcome"], registers }),
    duration: new Histogram({
      name: "kumo_invocation_duration_seconds",
      help: "Invocation duration, from routing to the end of the handler.",
      labelNames: ["namespace", "function", "revision"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    coldStarts: new Counter({ name: "kumo_cold_starts_total", help: "Instances started (cold starts).", labelNames: ["namespace", "function", "revision"], registers }),
    coldStartDuration: new Histogram({
      name: "kumo_cold_start_duration_seconds",
      help: "Time to start an instance, from request to ready.",
      labelNames: ["namespace", "function", "revision"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    instances: new Gauge({ name: "kumo_instances", help: "Warm instances per revision.", labelNames: ["namespace", "function", "revision"], registers }),
    inflight: new Gauge({ name: "kumo_inflight_requests", help: "Requests in flight per revision.", labelNames: ["namespace", "function", "revision"], registers }),
    rejected: new Counter({ name: "kumo_gateway_rejected_total", help: "Requests the gateway answered without invoking a function, by reason.", labelNames: ["namespace", "function", "reason"], registers }),
  };
}

/** Metric children bound to one revision. */
export interface RevisionMetrics {
  outcome: Record<Outcome, { inc(): void }>;
  duration: { observe(seconds: number): void };
  coldStart: { inc(): void };
  coldStartDuration: { observe(seconds: number): void };
  instances: { set(n: number): void };
  remove(): void;
}

/** Binds the families to one revision's labels (done once, when the revision is routed). */
export function revisionMetrics(m: GatewayMetrics, namespace: string, fn: string, revision: string): RevisionMetrics {
  const l = { namespace, function: fn, revision };
  const outcomes: Outcome[] = ["success", "function_error", "timeout", "platform_error"];
  const outcome = Object.fromEntries(outcomes.map((o) => [o, m.invocations.labels({ ...l, outcome: o })])) as Record<Outcome, { inc(): void }>;
  return {
    outcome,
    duration: m.duration.labels(l),
    coldStart: m.coldStarts.labels(l),
    coldStartDuration: m.coldStartDuration.labels(l),
    instances: m.instances.labels(l),
    remove() {
      m.instances.remove(l);
      m.inflight.remove(l);
    },
  };
}
