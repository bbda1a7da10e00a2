// The route table and the reconciler that keeps it in step with the store: for every Ready
// function, which revisions take its traffic (by percent, and by tag), each with its pool. All
// lookups the hot path needs are prepared here, once per change, not per request.

import { KumoError, condition, setCondition, type Clock, type InstanceBackend, type KumoFunction, type LoadSpec, type Revision, type RuntimeKind, type ScaleSpec } from "../model/index.ts";
import type { BlobStore, Store, Watch } from "../store/index.ts";
import { revisionMetrics, type GatewayMetrics, type RevisionMetrics } from "./metrics.ts";
import { RevisionPool, type PoolOptions } from "./pool.ts";

/** A routed revision: its pool and everything the hot path needs about it. */
export interface RevisionTarget {
  readonly namespace: string;
  readonly function: string;
  readonly revision: string;
  readonly timeoutMs: number;
  /** The revision's scaling overrides (the autoscaler merges them over its defaults). */
  readonly scale: Partial<ScaleSpec>;
  readonly pool: RevisionPool;
  readonly metrics: RevisionMetrics;
}

/** One function's routing: a weighted choice between revision targets. */
export interface Route {
  readonly namespace: string;
  readonly function: string;
  /** Picks the revision for one request (traffic split). */
  pick(): RevisionTarget;
}

/** Queueing defaults of every pool, and how a revision's scale overrides resolve to bounds. */
export interface GatewayPoolDefaults {
  queueLimit: number;
  queueTimeoutMs: number;
  /** Instance bounds for a revision (its overrides merged over the server's defaults). */
  bounds: (scale: Partial<ScaleSpec>) => { min: number; max: number };
}

function singleRoute(namespace: string, fn: string, target: RevisionTarget): Route {
  return { namespace, function: fn, pick: () => target };
}

function splitRoute(namespace: string, fn: string, targets: { target: RevisionTarget; percent: number }[]): Route {
  const live = targets.filter((t) => t.percent > 0);
  if (live.length === 1) return singleRoute(namespace, fn, live[0]!.target);
  const cumulative: number[] = [];
  let sum = 0;
  for (const t of live) cumulative.push((sum += t.percent));
  return {
    namespace,
    function: fn,
    pick() {
      const r = Math.random() * sum;
      for (let i = 0; i < cumulative.length; i++) if (r < cumulative[i]!) return live[i]!.target;
      return live[live.length - 1]!.target;
    },
  };
}

/** Keeps routes and pools in step with Functions in the store. */
export class RouteTable {
  /** Keyed by "namespace/function" and "namespace/function@tag". */
  private readonly routes = new Map<string, Route>();
  private readonly targets = new Map<string, RevisionTarget>();
  private watch: Watch<"Function"> | undefined;
  /** The latest ready revision each function was last routed for, and who waits for which. */
  private readonly routedLatest = new Map<string, string>();
  private readonly routeWaiters = new Map<string, { revision: string; resolve: () => void }[]>();
  private running: Promise<void> | undefined;
  private readonly store: Store;
  private readonly blobs: BlobStore;
  private readonly backends: Readonly<Record<RuntimeKind, InstanceBackend | undefined>>;
  private readonly metrics: GatewayMetrics;
  private readonly clock: Clock;
  private readonly defaults: GatewayPoolDefaults;
  private readonly onChange: (() => void) | undefined;

  constructor(deps: {
    store: Store;
    blobs: BlobStore;
    backends: Readonly<Record<RuntimeKind, InstanceBackend | undefined>>;
    metrics: GatewayMetrics;
    clock: Clock;
    defaults: GatewayPoolDefaults;
    onChange?: () => void;
  }) {
    this.store = deps.store;
    this.blobs = deps.blobs;
    this.backends = deps.backends;
    this.metrics = deps.metrics;
    this.clock = deps.clock;
    this.defaults = deps.defaults;
    this.onChange = deps.onChange;
  }

  /** The route for "namespace/function" or "namespace/function@tag". */
  get(key: string): Route | undefined {
    return this.routes.get(key);
  }

  /**
   * Resolves once the function has been routed with `revision` as its latest ready revision
   * (so a deploy reports Ready only when the new revision can take requests), or after timeoutMs.
   */
  whenRouted(namespace: string, fn: string, revision: string, timeoutMs = 10_000): Promise<void> {
    const key = `${namespace}/${fn}`;
    if (this.routedLatest.get(key) === revision) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const list = this.routeWaiters.get(key) ?? [];
      list.push({ revision, resolve: () => (clearTimeout(timer), resolve()) });
      this.routeWaiters.set(key, list);
    });
  }

  private markRouted(key: string, revision: string): void {
    this.routedLatest.set(key, revision);
    const list = this.routeWaiters.get(key);
    if (list === undefined) return;
    const still = list.filter((w) => (w.revision === revision ? (w.resolve(), false) : true));
    if (still.length === 0) this.routeWaiters.delete(key);
    else this.routeWaiters.set(key, still);
  }

  /** Every routed revision (for the autoscaler, describe and metrics). */
  revisionTargets(): IterableIterator<RevisionTarget> {
    return this.targets.values();
  }

  /** Starts following the store; resolves once existing functions are routed. */
  async start(): Promise<void> {
    const existing = await this.store.list("Function");
    for (const fn of existing) await this.reconcile(fn);
    const last = existing.reduce((max, f) => (BigInt(f.metadata.resourceVersion) > max ? BigInt(f.metadata.resourceVersion) : max), 0n);
    const watch = this.store.watch("Function", last > 0n ? { sinceResourceVersion: last.toString() } : {});
    this.watch = watch;
    this.running = (async () => {
      for await (const ev of watch) {
        try {
          if (ev.type === "DELETED") await this.removeFunction(ev.object.metadata.namespace, ev.object.metadata.name);
          else await this.reconcile(ev.object);
        } catch (err) {
          console.error(`gateway: routing ${ev.object.metadata.namespace}/${ev.object.metadata.name} failed:`, err);
        }
      }
    })();
  }

  /** Stops following the store and drains every pool. */
  async stop(): Promise<void> {
    this.watch?.close();
    await this.running;
    const all = [...this.targets.values()];
    this.targets.clear();
    this.routes.clear();
    await Promise.all(all.map((t) => this.retire(t)));
  }

  /** Routes a function to its ready revisions; retires revisions no longer referenced. */
  private async reconcile(fn: KumoFunction): Promise<void> {
    const { namespace, name } = fn.metadata;
    const latest = fn.status.latestReadyRevision;
    if (latest === undefined) return; // Nothing ready yet; an older route (if any) keeps serving.
    const split = fn.spec.traffic ?? [{ latestRevision: true, percent: 100 }];
    const weighted: { target: RevisionTarget; percent: number }[] = [];
    const tagged: [string, RevisionTarget][] = [];
    for (const t of split) {
      const revName = t.latestRevision === true ? latest : t.revision;
      if (revName === undefined) continue;
      const target = await this.targetFor(namespace, revName);
      if (target === undefined) continue;
      weighted.push({ target, percent: t.percent });
      if (t.tag !== undefined) tagged.push([t.tag, target]);
    }
    const prefix = `${namespace}/${name}`;
    if (weighted.length === 0) {
      this.markRouted(prefix, latest);
      return;
    }
    // Swap in the new routes first, then retire what is no longer referenced (graceful drain).
    for (const key of [...this.routes.keys()]) if (key.startsWith(`${prefix}@`)) this.routes.delete(key);
    this.routes.set(prefix, splitRoute(namespace, name, weighted));
    for (const [tag, target] of tagged) this.routes.set(`${prefix}@${tag}`, singleRoute(namespace, name, target));
    const referenced = new Set(weighted.map((w) => w.target.revision).concat(tagged.map(([, t]) => t.revision)));
    for (const [key, target] of [...this.targets]) {
      if (target.namespace === namespace && target.function === name && !referenced.has(target.revision)) {
        this.targets.delete(key);
        void this.retire(target);
      }
    }
    this.markRouted(prefix, latest);
    this.onChange?.();
  }

  private async removeFunction(namespace: string, name: string): Promise<void> {
    const prefix = `${namespace}/${name}`;
    this.routedLatest.delete(prefix);
    for (const key of [...this.routes.keys()]) if (key === prefix || key.startsWith(`${prefix}@`)) this.routes.delete(key);
    for (const [key, target] of [...this.targets]) {
      if (target.namespace === namespace && target.function === name) {
        this.targets.delete(key);
        await this.retire(target);
      }
    }
    this.onChange?.();
  }

  private async targetFor(namespace: string, revName: string): Promise<RevisionTarget | undefined> {
    const key = `${namespace}/${revName}`;
    const known = this.targets.get(key);
    if (known !== undefined) return known;
    const rev = await this.store.get("Revision", namespace, revName);
    if (rev === undefined) return undefined;
    const backend = this.backends[rev.spec.runtime];
    if (backend === undefined) return undefined;
    const code = await this.blobs.get(rev.spec.artifact);
    if (code === undefined) return undefined;
    const target = this.makeTarget(rev, backend, Buffer.from(code).toString("utf8"));
    // Another reconcile may have made it while we awaited.
    const raced = this.targets.get(key);
    if (raced !== undefined) {
      void target.pool.drain();
      return raced;
    }
    this.targets.set(key, target);
    return target;
  }

  private makeTarget(rev: Revision, backend: InstanceBackend, code: string): RevisionTarget {
    const { namespace, name } = rev.metadata;
    const fn = rev.spec.functionName;
    const spec: LoadSpec = {
      namespace,
      function: fn,
      revision: name,
      code,
      codePath: this.blobs.pathOf(rev.spec.artifact),
      env: rev.spec.env,
      timeoutMs: rev.spec.limits.timeoutMs,
      memoryMb: rev.spec.limits.memoryMb,
    };
    const metrics = revisionMetrics(this.metrics, namespace, fn, name);
    const bounds = this.defaults.bounds(rev.spec.scale);
    const options: PoolOptions = {
      concurrency: rev.spec.concurrency,
      maxInstances: bounds.max,
      minInstances: bounds.min,
      queueLimit: this.defaults.queueLimit,
      queueTimeoutMs: this.defaults.queueTimeoutMs,
    };
    let startFailed = false;
    const pool = new RevisionPool(spec, backend, options, this.clock, {
      onColdStart: (ms) => {
        metrics.coldStart(ms / 1000);
        if (startFailed) {
          startFailed = false;
          void this.setRevisionReady(namespace, name, "True", "Started", "an instance started after an earlier failure");
        }
      },
      onQueueWait: (ms) => metrics.queueWait.observe(ms / 1000),
      onRejected: (reason) => metrics.rejected[reason]++,
      onInstancesChanged: (n) => (metrics.instances = n),
      onStartFailed: (err) => {
        console.error(`gateway: revision ${namespace}/${name} failed to start: ${err.message}`);
        startFailed = true;
        void this.setRevisionReady(namespace, name, "False", "StartFailed", err.message);
      },
    });
    metrics.inflight = () => pool.inflight;
    metrics.queued = () => pool.stats().queued;
    return { namespace, function: fn, revision: name, timeoutMs: rev.spec.limits.timeoutMs, scale: rev.spec.scale, pool, metrics };
  }

  /** Records instance start failures (and recovery) in the revision's status, where `kumo describe` shows them. */
  private async setRevisionReady(namespace: string, name: string, status: "True" | "False", reason: string, message: string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const rev = await this.store.get("Revision", namespace, name);
      if (rev === undefined) return;
      const conditions = setCondition(rev.status.conditions, condition("Ready", status, reason, message, new Date(this.clock.now())));
      try {
        await this.store.updateStatus("Revision", { ...rev, status: { ...rev.status, conditions } });
        return;
      } catch (err) {
        if (!(err instanceof KumoError) || err.code !== "KUMO_E_CONFLICT") return;
      }
    }
  }

  private async retire(target: RevisionTarget): Promise<void> {
    await target.pool.drain();
    target.metrics.remove();
  }
}
