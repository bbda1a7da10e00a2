// Prometheus metrics of the serving path. On the hot path a request only bumps plain numbers on
// its revision's RevisionMetrics (prom-client's labelled children hash their labels on every
// call); the registered metric families read those numbers when Prometheus scrapes.

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Outcome } from "../model/index.ts";

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const COLD_START_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const OUTCOMES: readonly Outcome[] = ["success", "function_error", "timeout", "platform_error"];

/** A histogram kept as plain numbers. */
class PlainHistogram {
  readonly bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** Counters of one revision, bumped on the hot path. */
export class RevisionMetrics {
  readonly labels: { namespace: string; function: string; revision: string };
  readonly outcomes: Record<Outcome, number> = { success: 0, function_error: 0, timeout: 0, platform_error: 0 };
  readonly duration = new PlainHistogram(DURATION_BUCKETS);
  readonly coldStartDuration = new PlainHistogram(COLD_START_BUCKETS);
  readonly queueWait = new PlainHistogram(QUEUE_WAIT_BUCKETS);
  readonly rejected = { queue_full: 0, queue_timeout: 0 };
  coldStarts = 0;
  instances = 0;
  /** Read at scrape time: requests in flight right now. */
  inflight: () => number = () => 0;
  /** Read at scrape time: requests waiting for a free instance right now. */
  queued: () => number = () => 0;
  private readonly onRemove: () => void;

  constructor(labels: { namespace: string; function: string; revision: string }, onRemove: () => void) {
    this.labels = labels;
    this.onRemove = onRemove;
  }

  /** Counts one finished invocation. */
  invocation(outcome: Outcome, seconds: number): void {
    this.outcomes[outcome]++;
    this.duration.observe(seconds);
  }

  /** Counts one instance start. */
  coldStart(seconds: number): void {
    this.coldStarts++;
    this.coldStartDuration.observe(seconds);
  }

  /** Stops reporting this revision (it was retired). */
  remove(): void {
    this.onRemove();
  }
}

/** The gateway's metric families, fed from the live RevisionMetrics at scrape time. */
export interface GatewayMetrics {
  /** Starts reporting a revision. */
  forRevision(namespace: string, fn: string, revision: string): RevisionMetrics;
  /** Requests answered without invoking a function, by reason. */
  rejected: Counter<"namespace" | "function" | "reason">;
}

/** Registers the gateway's metrics on a registry. */
export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const live = new Set<RevisionMetrics>();
  const registers = [registry];
  const labelNames = ["namespace", "function", "revision"] as const;
  new Counter({
    name: "kumo_invocations_total",
    help: "Invocations by function, revision and outcome.",
    labelNames: [...labelNames, "outcome"],
    registers,
    collect() {
      this.reset();
      for (const m of live) for (const o of OUTCOMES) if (m.outcomes[o] > 0) this.inc({ ...m.labels, outcome: o }, m.outcomes[o]);
    },
  });
  new Counter({
    name: "kumo_cold_starts_total",
    help: "Instances started (cold starts).",
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const m of live) this.inc(m.labels, m.coldStarts);
    },
  });
  new Gauge({
    name: "kumo_instances",
    help: "Warm instances per revision.",
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const m of live) this.set(m.labels, m.instances);
    },
  });
  new Gauge({
    name: "kumo_inflight_requests",
    help: "Requests in flight per revision.",
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const m of live) this.set(m.labels, m.inflight());
    },
  });
  new Gauge({
    name: "kumo_queued_requests",
    help: "Requests waiting for a free instance per revision.",
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const m of live) this.set(m.labels, m.queued());
    },
  });
  new Counter({
    name: "kumo_queue_rejected_total",
    help: "Requests turned away by a revision's queue: queue_full (503) or queue_timeout (504).",
    labelNames: [...labelNames, "reason"],
    registers,
    collect() {
      this.reset();
      for (const m of live) for (const reason of ["queue_full", "queue_timeout"] as const) if (m.rejected[reason] > 0) this.inc({ ...m.labels, reason }, m.rejected[reason]);
    },
  });
  new DurationHistogram(registry, "kumo_queue_wait_seconds", "How long queued requests waited for a free instance.", QUEUE_WAIT_BUCKETS, live, (m) => m.queueWait);
  new DurationHistogram(registry, "kumo_invocation_duration_seconds", "Invocation duration, from routing to the end of the handler.", DURATION_BUCKETS, live, (m) => m.duration);
  new DurationHistogram(registry, "kumo_cold_start_duration_seconds", "Time to start an instance, from request to ready.", COLD_START_BUCKETS, live, (m) => m.coldStartDuration);
  return {
    forRevision(namespace, fn, revision) {
      const m: RevisionMetrics = new RevisionMetrics({ namespace, function: fn, revision }, () => live.delete(m));
      live.add(m);
      return m;
    },
    rejected: new Counter({ name: "kumo_gateway_rejected_total", help: "Requests the gateway answered without invoking a function, by reason.", labelNames: ["namespace", "function", "reason"], registers }),
  };
}

/** A histogram family whose values come from plain per-revision histograms. */
class DurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly bounds: readonly number[];
  private readonly live: Set<RevisionMetrics>;
  private readonly pick: (m: RevisionMetrics) => PlainHistogram;

  constructor(registry: Registry, name: string, help: string, bounds: readonly number[], live: Set<RevisionMetrics>, pick: (m: RevisionMetrics) => PlainHistogram) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
    this.live = live;
    this.pick = pick;
    registry.registerMetric(this as unknown as Histogram);
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const m of this.live) {
      const h = this.pick(m);
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += h.counts[i]!;
        values.push({ labels: { ...m.labels, le: this.bounds[i]! }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { ...m.labels, le: "+Inf" }, value: h.count, metricName: `${this.name}_bucket` });
      values.push({ labels: m.labels, value: h.sum, metricName: `${this.name}_sum` });
      values.push({ labels: m.labels, value: h.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    // Values live in the revisions' RevisionMetrics.
  }
}

/** Binds the families to one revision (done once, when the revision is routed). */
export function revisionMetrics(m: GatewayMetrics, namespace: string, fn: string, revision: string): RevisionMetrics {
  return m.forRevision(namespace, fn, revision);
}
