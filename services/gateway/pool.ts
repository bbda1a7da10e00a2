// The pool of one revision's instances: each instance admits at most `concurrency` in-flight
// requests (the breaker); requests beyond that wait in a bounded queue with a deadline while the
// pool starts instances (up to maxInstances), then fail with 503 (queue full) or 504 (deadline).
// With no instance at all, the first request starts one and waits for it: the activator's job.

import { KumoError, type Clock, type Instance, type InstanceBackend, type InvokeRequest, type InvokeResult, type LoadSpec } from "../model/index.ts";

/** Backoff between start attempts after a failed start: from 1 s, doubling, up to 1 min. */
const START_BACKOFF_MIN_MS = 1000;
const START_BACKOFF_MAX_MS = 60_000;

/** How a pool admits and queues requests. */
export interface PoolOptions {
  /** In-flight requests one instance admits. */
  concurrency: number;
  /** Instances the pool may run at most. */
  maxInstances: number;
  /** Instances kept even without traffic. */
  minInstances: number;
  /** Requests that may wait for a slot; more get 503. */
  queueLimit: number;
  /** How long a request may wait for a slot before a 504. */
  queueTimeoutMs: number;
}

/** A slot on an instance, held for one invocation. */
interface Member {
  instance: Instance;
  inflight: number;
}

interface Waiter {
  since: number;
  resolve: (m: Member) => void;
  reject: (e: KumoError) => void;
  cancelTimer: () => void;
}

/** What a pool reports about itself (for describe, metrics and the autoscaler). */
export interface PoolStats {
  revision: string;
  instances: number;
  starting: number;
  inflight: number;
  queued: number;
  desired: number;
}

/** Result of an invocation through the pool. */
export interface PoolInvocation {
  result: InvokeResult;
  /** True when this request waited for an instance to start. */
  coldStart: boolean;
}

/** Hooks the pool calls, for metrics and status. */
export interface PoolEvents {
  onColdStart?(durationMs: number): void;
  /** A queued request got a slot after waiting this long. */
  onQueueWait?(waitMs: number): void;
  /** A request was turned away: the queue was full, or it waited past its deadline. */
  onRejected?(reason: "queue_full" | "queue_timeout"): void;
  onStartFailed?(error: KumoError): void;
  onInstancesChanged?(count: number): void;
}

/** Instances of one revision. */
export class RevisionPool {
  readonly revision: string;
  private readonly members: Member[] = [];
  private readonly queue: Waiter[] = [];
  private starting = 0;
  private inflightTotal = 0;
  private desiredCount: number;
  private closed = false;
  /** The last load failure; while set, new requests fail fast instead of retrying the start in a loop. */
  private startError: KumoError | undefined;
  /** While a failed start is this recent, requests fail fast and no new start is tried; doubles per failure. */
  private startRetryAt = 0;
  private startBackoffMs = START_BACKOFF_MIN_MS;
  private idleWaiters: (() => void)[] = [];
  /** Time-weighted demand (in flight + queued) since the last sample, for the autoscaler. */
  private demandArea = 0;
  private lastChange = performance.now();
  private sampleStart = performance.now();
  private readonly spec: LoadSpec;
  private readonly backend: InstanceBackend;
  private readonly options: PoolOptions;
  private readonly clock: Clock;
  private readonly events: PoolEvents;

  constructor(spec: LoadSpec, backend: InstanceBackend, options: PoolOptions, clock: Clock, events: PoolEvents = {}) {
    this.spec = spec;
    this.backend = backend;
    this.options = options;
    this.clock = clock;
    this.events = events;
    this.revision = spec.revision;
    this.desiredCount = options.minInstances;
    for (let i = 0; i < options.minInstances; i++) this.startInstance();
  }

  /** Requests in flight on this revision right now (the autoscaler's signal). */
  get inflight(): number {
    return this.inflightTotal;
  }

  /**
   * Average demand (requests in flight plus waiting) since the last call: what the autoscaler
   * samples every second. Time-weighted, so sub-millisecond requests still count.
   */
  takeConcurrencySample(): number {
    this.noteDemand();
    const now = this.lastChange;
    const span = now - this.sampleStart;
    const avg = span > 0 ? this.demandArea / span : this.inflightTotal + this.queue.length;
    this.demandArea = 0;
    this.sampleStart = now;
    return avg;
  }

  /** True while the last failed start is too recent to try again. */
  private inStartBackoff(): boolean {
    return this.startError !== undefined && this.clock.now() < this.startRetryAt;
  }

  /** Accumulates demand × time up to now; called before demand changes. */
  private noteDemand(): void {
    const now = performance.now();
    this.demandArea += (this.inflightTotal + this.queue.length) * (now - this.lastChange);
    this.lastChange = now;
  }

  /** Runs one invocation on a free slot, starting an instance if none is free. */
  invoke(req: InvokeRequest): Promise<PoolInvocation> {
    const member = this.freeMember();
    this.noteDemand();
    if (member !== undefined) {
      // The hot path: a warm instance with a free slot; no extra promise layers.
      member.inflight++;
      this.inflightTotal++;
      return this.run(member, req, false);
    }
    if (this.closed) return Promise.reject(new KumoError("KUMO_E_UNAVAILABLE", `revision ${this.revision} is shutting down: retry`));
    if (this.inStartBackoff() && this.members.length === 0) return Promise.reject(this.startError!);
    const coldStart = this.members.length === 0;
    // The slot is already reserved when waitForSlot resolves.
    return this.waitForSlot(req.deadline).then((m) => this.run(m, req, coldStart));
  }

  /** Runs one invocation on a reserved slot and frees the slot afterwards, whatever happens. */
  private run(member: Member, req: InvokeRequest, coldStart: boolean): Promise<PoolInvocation> {
    const done = (): void => {
      this.noteDemand();
      member.inflight--;
      this.inflightTotal--;
      if (!member.instance.healthy) this.remove(member);
      this.release(member);
    };
    let running: Promise<InvokeResult>;
    try {
      running = member.instance.invoke(req);
    } catch (err) {
      done();
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return running.then(
      (result) => {
        done();
        return { result, coldStart };
      },
      (err: unknown) => {
        done();
        throw err;
      },
    );
  }

  /** Sets how many instances the pool should run (the autoscaler's decision); starts or stops idle ones. */
  scaleTo(n: number): void {
    // Never below what the requests in flight and waiting need right now: the autoscaler's
    // averages lag a burst that the activator already started instances for.
    const need = Math.ceil((this.inflightTotal + this.queue.length) / this.options.concurrency);
    const target = Math.max(this.options.minInstances, Math.min(this.options.maxInstances, Math.max(n, need)));
    this.desiredCount = target;
    if (this.inStartBackoff()) return; // the last start failed: the next try waits for the backoff
    while (this.members.length + this.starting < target) this.startInstance();
    // Stop idle instances beyond the target; busy ones finish first and are stopped on release.
    for (let i = this.members.length - 1; i >= 0 && this.members.length > target; i--) {
      const m = this.members[i]!;
      if (m.inflight === 0) this.remove(m);
    }
  }

  /** Current numbers. */
  stats(): PoolStats {
    return {
      revision: this.revision,
      instances: this.members.length,
      starting: this.starting,
      inflight: this.inflightTotal,
      queued: this.queue.length,
      desired: this.desiredCount,
    };
  }

  /** Stops taking requests, waits for in-flight ones (graceful drain), then disposes every instance. */
  async drain(): Promise<void> {
    this.closed = true;
    for (const w of this.queue.splice(0)) {
      w.cancelTimer();
      w.reject(new KumoError("KUMO_E_UNAVAILABLE", `revision ${this.revision} was retired while the request waited: retry`));
    }
    if (this.inflightTotal > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await Promise.all(this.members.splice(0).map((m) => m.instance.dispose()));
    this.events.onInstancesChanged?.(0);
  }

  private freeMember(): Member | undefined {
    const limit = this.options.concurrency;
    // Least-loaded of the first few is not worth it here: the first with a free slot keeps
    // warm instances warm and lets idle ones scale away.
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i]!;
      if (m.inflight < limit) return m;
    }
    return undefined;
  }

  private waitForSlot(deadline: number): Promise<Member> {
    if (this.queue.length >= this.options.queueLimit) {
      this.events.onRejected?.("queue_full");
      return Promise.reject(
        new KumoError("KUMO_E_QUEUE_FULL", `revision ${this.revision}: all ${this.members.length} instance(s) are at their concurrency limit of ${this.options.concurrency} and ${this.queue.length} requests are already waiting: retry later, or raise --concurrency / --max-scale`),
      );
    }
    // Start as many instances as the waiting requests need, within maxInstances.
    const needed = Math.ceil((this.inflightTotal + this.queue.length + 1) / this.options.concurrency);
    const want = Math.min(this.options.maxInstances, Math.max(needed, this.desiredCount));
    this.desiredCount = want;
    while (this.members.length + this.starting < want) this.startInstance();
    return new Promise<Member>((resolve, reject) => {
      const wait = Math.max(0, Math.min(this.options.queueTimeoutMs, deadline - this.clock.now()));
      const waiter: Waiter = {
        since: this.clock.now(),
        resolve,
        reject,
        cancelTimer: this.clock.setTimer(() => {
          const i = this.queue.indexOf(waiter);
          this.noteDemand();
          if (i >= 0) this.queue.splice(i, 1);
          this.events.onRejected?.("queue_timeout");
          reject(new KumoError("KUMO_E_QUEUE_TIMEOUT", `revision ${this.revision}: no instance had a free slot within ${wait} ms: retry later, or raise --concurrency / --max-scale`));
        }, wait),
      };
      this.queue.push(waiter);
    });
  }

  private startInstance(): void {
    this.starting++;
    const started = this.clock.now();
    this.backend.start(this.spec).then(
      (instance) => {
        this.starting--;
        this.startError = undefined;
        this.startBackoffMs = START_BACKOFF_MIN_MS;
        if (this.closed) {
          void instance.dispose();
          return;
        }
        const member: Member = { instance, inflight: 0 };
        this.members.push(member);
        this.events.onColdStart?.(this.clock.now() - started);
        this.events.onInstancesChanged?.(this.members.length);
        this.release(member);
      },
      (err: unknown) => {
        this.starting--;
        const error = err instanceof KumoError ? err : new KumoError("KUMO_E_LOAD_FAILED", `revision ${this.revision} could not start: ${String(err)}`, { cause: err });
        this.startError = error;
        this.startRetryAt = this.clock.now() + this.startBackoffMs;
        this.startBackoffMs = Math.min(START_BACKOFF_MAX_MS, this.startBackoffMs * 2);
        this.events.onStartFailed?.(error);
        // Fail the held requests with the reason; do not retry in a loop.
        if (this.members.length === 0 && this.starting === 0) {
          for (const w of this.queue.splice(0)) {
            w.cancelTimer();
            w.reject(error);
          }
        }
      },
    );
  }

  /** Hands free slots of `member` to waiting requests in arrival order, reserving each slot. */
  private release(member: Member): void {
    if (this.members.includes(member)) {
      while (this.queue.length > 0 && member.inflight < this.options.concurrency && member.instance.healthy) {
        this.noteDemand();
        const w = this.queue.shift()!;
        w.cancelTimer();
        this.events.onQueueWait?.(this.clock.now() - w.since);
        member.inflight++;
        this.inflightTotal++;
        w.resolve(member);
      }
      // Above the desired count (the autoscaler lowered it) and idle: stop this one.
      if (member.inflight === 0 && this.members.length > this.desiredCount) this.remove(member);
    }
    if (this.inflightTotal === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private remove(member: Member): void {
    const i = this.members.indexOf(member);
    if (i < 0) return;
    this.members.splice(i, 1);
    this.events.onInstancesChanged?.(this.members.length);
    void member.instance.dispose();
    // Replace an instance that died while requests are waiting.
    while (this.queue.length > 0 && !this.closed && this.members.length + this.starting < Math.max(1, this.desiredCount)) this.startInstance();
  }
}
