// The KPA decision: how many instances a revision should have, from its recent concurrency.
// Pure: time is the `now` argument and everything remembered between decisions travels in
// ScalingState, so a table of (samples, state, now) → Decision tests every rule.

import { panicWindowMs, type AutoscalerConfig } from "./config.ts";
import type { ConcurrencyWindow } from "./window.ts";

/** What decide remembers between decisions for one revision. */
export interface ScalingState {
  /** Ready instances now: the count decide scales from. */
  readonly instances: number;
  /** When panic mode began; undefined when not panicking. */
  readonly panicSince: number | undefined;
  /** Last time the panic window was at or over the panic threshold. */
  readonly lastPanicAt: number | undefined;
  /** Last time a sample showed traffic; undefined if never. */
  readonly lastTrafficAt: number | undefined;
}

/** The outcome of one decision. */
export interface Decision {
  /** Instances the revision should have. */
  readonly desired: number;
  /** True while in panic mode (no scaling down). */
  readonly panic: boolean;
  /** Why, for logs and status: "stable", "panic: 3.1x capacity", "capped at maxScale 10", ... */
  readonly reason: string;
  /** Average in-flight requests over the stable window. */
  readonly stableConcurrency: number;
  /** Average in-flight requests over the panic window. */
  readonly panicConcurrency: number;
  /** State for the next decision (its `instances` assumes `desired` is reached). */
  readonly state: ScalingState;
}

/** The window reads decide needs. */
export type ConcurrencyReadings = Pick<ConcurrencyWindow, "average" | "lastActiveAt">;

/** The state of a revision that has just appeared: `initialScale` instances, its start counted as traffic. */
export function initialScalingState(config: AutoscalerConfig, now: number): ScalingState {
  // Counting creation as traffic gives a new revision the full grace before it scales to zero.
  return { instances: config.initialScale, panicSince: undefined, lastPanicAt: undefined, lastTrafficAt: config.initialScale > 0 ? now : undefined };
}

/** Instances needed for `concurrency` at `perInstance` each. */
function instancesFor(concurrency: number, perInstance: number): number {
  // 70 * 0.7 is 48.99999999999999 in floating point; without the epsilon 49 requests would want 2.
  return Math.max(0, Math.ceil(concurrency / perInstance - 1e-9));
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

/** Decides the instance count for one revision at `now` (Knative KPA rules; see AutoscalerConfig). */
export function decide(window: ConcurrencyReadings, config: AutoscalerConfig, now: number, state: ScalingState): Decision {
  const current = state.instances;
  // Rates and the panic ratio are taken against at least one instance, so scaling from zero can move.
  const ready = Math.max(1, current);
  const perInstance = config.target * config.targetUtilization;
  const stableConcurrency = window.average(now, config.stableWindowMs);
  const panicConcurrency = window.average(now, panicWindowMs(config));
  const wantStable = instancesFor(stableConcurrency, perInstance);
  const wantPanic = instancesFor(panicConcurrency, perInstance);

  const maxUp = Math.ceil(config.maxScaleUpRate * ready);
  const maxDown = Math.ceil(current / config.maxScaleDownRate);
  const stableDesired = clamp(wantStable, maxDown, maxUp);
  const panicDesired = clamp(wantPanic, maxDown, maxUp);

  const panicRatio = wantPanic / ready;
  const over = panicRatio >= config.panicThreshold;
  let panicSince = state.panicSince;
  let lastPanicAt = state.lastPanicAt;
  if (over) {
    panicSince ??= now;
    lastPanicAt = now;
  } else if (lastPanicAt !== undefined && now - lastPanicAt >= config.stableWindowMs) {
    // The burst has been inside the stable window's average for a whole window: trust it again.
    panicSince = undefined;
    lastPanicAt = undefined;
  }

  let desired: number;
  let reason: string;
  if (panicSince !== undefined) {
    desired = Math.max(stableDesired, panicDesired, current);
    reason = over
      ? `panic: ${panicRatio.toFixed(1)}x capacity`
      : `panic: holding ${desired} until ${seconds(config.stableWindowMs)} under ${config.panicThreshold}x capacity`;
  } else {
    desired = stableDesired;
    if (wantStable > maxUp) reason = `scale-up limited to ${config.maxScaleUpRate}x of ${ready} ready`;
    else if (wantStable < maxDown) reason = `scale-down limited to ${current} / ${config.maxScaleDownRate}`;
    else reason = "stable";
  }

  const seen = window.lastActiveAt();
  const lastTrafficAt = seen === undefined ? state.lastTrafficAt : Math.max(seen, state.lastTrafficAt ?? seen);
  const idleMs = lastTrafficAt === undefined ? Infinity : now - lastTrafficAt;
  // idleMs > 0: traffic in the newest sample is never idle, even with a zero grace.
  const idle = idleMs > 0 && idleMs >= config.scaleToZeroGraceMs;
  if (idle && config.minScale === 0) {
    // No request for the whole grace: nothing to protect, so neither panic nor the
    // scale-down rate holds instances (Knative too drops the rate once a revision is idle).
    desired = 0;
    panicSince = undefined;
    lastPanicAt = undefined;
    reason = current === 0 ? "idle at zero" : `scale to zero after ${seconds(config.scaleToZeroGraceMs)} idle`;
  } else if (!idle && wantStable === 0 && desired <= 1) {
    // The stable window is empty but the grace is not over: the last instance stays.
    desired = 1;
    reason = "traffic within the scale-to-zero grace: keeping 1";
  }

  if (current === 0 && desired > 0) {
    desired = Math.max(desired, config.activationScale);
    reason = `activating from zero: ${desired} instance${desired === 1 ? "" : "s"}`;
  }
  if (desired > config.maxScale) {
    desired = config.maxScale;
    reason = `capped at maxScale ${config.maxScale}`;
  } else if (desired < config.minScale) {
    desired = config.minScale;
    reason = `held at minScale ${config.minScale}`;
  }

  return {
    desired,
    panic: panicSince !== undefined,
    reason,
    stableConcurrency,
    panicConcurrency,
    state: { instances: desired, panicSince, lastPanicAt, lastTrafficAt },
  };
}
