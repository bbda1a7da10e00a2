// The autoscaler's loop: samples in-flight requests per revision every second, keeps a window
// and a ScalingState per revision, and every tick hands each revision's Decision to a callback.
// All time comes from the injected Clock.

import type { Clock } from "../model/index.ts";
import { SAMPLE_INTERVAL_MS, type AutoscalerConfig } from "./config.ts";
import { decide, initialScalingState, type Decision, type ScalingState } from "./decide.ts";
import { ConcurrencyWindow } from "./window.ts";

/** What a Collector needs. */
export interface CollectorOptions {
  readonly clock: Clock;
  /** In-flight requests per revision right now; a revision missing from the map is forgotten. */
  readonly source: () => ReadonlyMap<string, number>;
  /** Called with each revision's decision on every tick. */
  readonly onDecision: (revision: string, decision: Decision) => void;
  /** Global config; its tickIntervalMs sets the decision rate. */
  readonly config: AutoscalerConfig;
  /** A revision's own config (see resolveFunctionScaling); defaults to `config`. */
  readonly configFor?: (revision: string) => AutoscalerConfig;
  /** Ready instances per revision as the backend reports them; without it decide assumes its last decision was reached. */
  readonly ready?: () => ReadonlyMap<string, number>;
}

interface Tracked {
  readonly window: ConcurrencyWindow;
  readonly config: AutoscalerConfig;
  state: ScalingState;
}

/** Samples concurrency and drives decide for every revision the source reports. */
export class Collector {
  private readonly options: CollectorOptions;
  private readonly revisions = new Map<string, Tracked>();
  private cancel: (() => void) | undefined;
  private lastTickAt = 0;

  constructor(options: CollectorOptions) {
    this.options = options;
  }

  /** Starts sampling every second; idempotent. */
  start(): void {
    if (this.cancel !== undefined) return;
    this.lastTickAt = this.options.clock.now();
    this.schedule();
  }

  /** Stops sampling; keeps what was learned so start() resumes. */
  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** The revisions being tracked. */
  tracked(): string[] {
    return [...this.revisions.keys()];
  }

  /** A revision's current state, if tracked. */
  stateOf(revision: string): ScalingState | undefined {
    return this.revisions.get(revision)?.state;
  }

  private schedule(): void {
    this.cancel = this.options.clock.setTimer(() => {
      // Re-arm first so a throwing callback does not stop sampling.
      this.schedule();
      this.sample();
    }, SAMPLE_INTERVAL_MS);
  }

  private sample(): void {
    const now = this.options.clock.now();
    const current = this.options.source();
    for (const name of this.revisions.keys()) {
      if (!current.has(name)) this.revisions.delete(name);
    }
    for (const [name, concurrency] of current) {
      let tracked = this.revisions.get(name);
      if (tracked === undefined) {
        const config = this.options.configFor?.(name) ?? this.options.config;
        tracked = { window: new ConcurrencyWindow(config.stableWindowMs), config, state: initialScalingState(config, now) };
        this.revisions.set(name, tracked);
      }
      tracked.window.record({ at: now, concurrency });
    }
    if (now - this.lastTickAt >= this.options.config.tickIntervalMs) {
      this.lastTickAt = now;
      this.tick(now);
    }
  }

  private tick(now: number): void {
    const ready = this.options.ready?.();
    for (const [name, tracked] of this.revisions) {
      const instances = ready?.get(name);
      const state = instances === undefined ? tracked.state : { ...tracked.state, instances };
      const decision = decide(tracked.window, tracked.config, now, state);
      tracked.state = decision.state;
      this.options.onDecision(name, decision);
    }
  }
}
