import { describe, expect, it } from "vitest";
import { defaultAutoscalerConfig, type AutoscalerConfig } from "./config.ts";
import { decide, initialScalingState, type Decision, type ScalingState } from "./decide.ts";
import { ConcurrencyWindow } from "./window.ts";

// target 10 at 0.7 utilization: each instance is meant to carry 7 in-flight requests.
const base: AutoscalerConfig = { ...defaultAutoscalerConfig, target: 10, maxScale: 1000 };

interface Expectation {
  /** Seconds since the start; decisions are made every 2 s. */
  at: number;
  desired?: number;
  panic?: boolean;
  reason?: string;
}

interface Row {
  name: string;
  config?: Partial<AutoscalerConfig>;
  start?: Partial<ScalingState>;
  /** In-flight requests sampled at second s (s = 1, 2, ...). */
  load: (s: number) => number;
  expect: Expectation[];
}

/** Samples `load` every second and decides every tickIntervalMs, as the Collector does, assuming each decision is reached. */
function simulate(row: Row): Map<number, Decision> {
  const config = { ...base, ...row.config };
  const window = new ConcurrencyWindow(config.stableWindowMs);
  let state: ScalingState = { ...initialScalingState(config, 0), ...row.start };
  const decisions = new Map<number, Decision>();
  const end = Math.max(...row.expect.map((e) => e.at));
  for (let s = 1; s <= end; s++) {
    const now = s * 1000;
    window.record({ at: now, concurrency: row.load(s) });
    if (now % config.tickIntervalMs === 0) {
      const d = decide(window, config, now, state);
      decisions.set(s, d);
      state = d.state;
    }
  }
  return decisions;
}

const rows: Row[] = [
  {
    name: "sustained load: desired = concurrency / (target × utilization)",
    start: { instances: 10 },
    load: () => 70,
    expect: [
      { at: 10, desired: 10, panic: false, reason: "stable" },
      { at: 120, desired: 10, panic: false, reason: "stable" },
    ],
  },
  {
    name: "exactly full instances do not round up (49 requests at 7 each → 7)",
    start: { instances: 7 },
    load: () => 49,
    expect: [{ at: 10, desired: 7, reason: "stable" }],
  },
  {
    name: "burst: panic starts when the panic window wants 2× the ready instances",
    start: { instances: 2 },
    load: (s) => (s <= 20 ? 14 : 70),
    // At 22 s the 6 s panic window averages 32.7 → 5 instances = 2.5× of 2; stable alone wants 3.
    expect: [
      { at: 20, desired: 2, panic: false, reason: "stable" },
      { at: 22, desired: 5, panic: true, reason: "panic: 2.5x capacity" },
    ],
  },
  {
    name: "just under the threshold: no panic",
    start: { instances: 2 },
    load: (s) => (s <= 20 ? 14 : 21),
    expect: [{ at: 24, panic: false, reason: "stable" }],
  },
  {
    name: "panic never scales down, and ends a full stable window after the last burst",
    start: { instances: 1 },
    load: (s) => (s <= 20 ? 70 : 7),
    // Over threshold only at 2 s (10 wanted of 1 ready); stable wants 4 at 60 s, but panic holds 10.
    expect: [
      { at: 2, desired: 10, panic: true, reason: "panic: 10.0x capacity" },
      { at: 40, desired: 10, panic: true },
      { at: 60, desired: 10, panic: true, reason: "panic: holding 10 until 60s under 2x capacity" },
      { at: 62, desired: 5, panic: false, reason: "scale-down limited to 10 / 2" },
    ],
  },
  {
    name: "decay after load follows the stable average down",
    start: { instances: 10 },
    config: { scaleToZeroGraceMs: 3_600_000 },
    load: (s) => (s <= 60 ? 70 : 14),
    expect: [
      { at: 62, desired: 10 },
      { at: 90, desired: 6, reason: "stable" },
      { at: 120, desired: 2, reason: "stable" },
    ],
  },
  {
    name: "scale to zero only after the grace without traffic",
    start: { instances: 1 },
    load: (s) => (s <= 10 ? 7 : 0),
    expect: [
      { at: 38, desired: 1 },
      { at: 40, desired: 0, reason: "scale to zero after 30s idle" },
      { at: 42, desired: 0, reason: "idle at zero" },
    ],
  },
  {
    name: "a new revision without traffic gets the grace from its start",
    load: () => 0,
    expect: [
      { at: 28, desired: 1 },
      { at: 30, desired: 0, reason: "scale to zero after 30s idle" },
    ],
  },
  {
    name: "scale to zero skips the scale-down rate and ends a panic",
    start: { instances: 1 },
    load: (s) => (s <= 4 ? 70 : 0),
    expect: [
      { at: 4, desired: 10, panic: true },
      { at: 34, desired: 0, panic: false, reason: "scale to zero after 30s idle" },
    ],
  },
  {
    name: "a zero grace still keeps instances while traffic is in flight",
    config: { scaleToZeroGraceMs: 0 },
    start: { instances: 1 },
    load: (s) => (s <= 4 ? 7 : 0),
    expect: [
      { at: 4, desired: 1 },
      { at: 6, desired: 0 },
    ],
  },
  {
    name: "a grace longer than the stable window keeps 1 after the average reaches zero",
    config: { scaleToZeroGraceMs: 120_000 },
    start: { instances: 1 },
    load: (s) => (s <= 2 ? 7 : 0),
    expect: [
      { at: 100, desired: 1, reason: "traffic within the scale-to-zero grace: keeping 1" },
      { at: 122, desired: 0 },
    ],
  },
  {
    name: "minScale > 0 keeps instances without traffic",
    config: { minScale: 2 },
    start: { instances: 2 },
    load: () => 0,
    expect: [
      { at: 40, desired: 2, reason: "held at minScale 2" },
      { at: 200, desired: 2, reason: "held at minScale 2" },
    ],
  },
  {
    name: "maxScale caps the count, even in panic",
    config: { maxScale: 5 },
    start: { instances: 5 },
    load: () => 700,
    expect: [{ at: 2, desired: 5, panic: true, reason: "capped at maxScale 5" }],
  },
  {
    name: "scale-up rate: at most maxScaleUpRate × ready per decision",
    config: { maxScaleUpRate: 2, panicThreshold: 10 },
    start: { instances: 2 },
    load: () => 70,
    expect: [
      { at: 2, desired: 4, panic: false, reason: "scale-up limited to 2x of 2 ready" },
      { at: 4, desired: 8 },
      { at: 6, desired: 10, reason: "stable" },
    ],
  },
  {
    name: "scale-down rate: at most halve per decision",
    start: { instances: 20 },
    load: () => 7,
    expect: [
      { at: 2, desired: 10, reason: "scale-down limited to 20 / 2" },
      { at: 4, desired: 5 },
      { at: 6, desired: 3 },
      { at: 8, desired: 2 },
      { at: 10, desired: 1, reason: "stable" },
    ],
  },
  {
    name: "activation from zero: at least activationScale",
    config: { activationScale: 3 },
    start: { instances: 0, lastTrafficAt: undefined },
    load: (s) => (s <= 10 ? 0 : 7),
    expect: [
      { at: 10, desired: 0, reason: "idle at zero" },
      { at: 12, desired: 3, reason: "activating from zero: 3 instances" },
      { at: 14, desired: 2 },
    ],
  },
  {
    name: "activation from zero with the default activationScale",
    start: { instances: 0, lastTrafficAt: undefined },
    load: (s) => (s <= 10 ? 0 : 7),
    expect: [{ at: 12, desired: 1, panic: false, reason: "activating from zero: 1 instance" }],
  },
  {
    name: "a burst from zero panics against one instance",
    start: { instances: 0, lastTrafficAt: undefined },
    load: (s) => (s <= 10 ? 0 : 140),
    // Panic window: 2 of 6 samples at 140 → 46.7 → 7 instances, 7× of one.
    expect: [{ at: 12, desired: 7, panic: true }],
  },
];

describe("decide (KPA rules)", () => {
  it.each(rows)("$name", (row) => {
    const decisions = simulate(row);
    for (const e of row.expect) {
      const d = decisions.get(e.at);
      expect(d, `a decision at ${e.at}s`).toBeDefined();
      const got: Expectation = { at: e.at };
      if (e.desired !== undefined) got.desired = d!.desired;
      if (e.panic !== undefined) got.panic = d!.panic;
      if (e.reason !== undefined) got.reason = d!.reason;
      expect(got).toEqual(e);
    }
  });

  it("is pure: the same inputs give the same decision and the input state is untouched", () => {
    const window = new ConcurrencyWindow(60_000);
    for (let s = 1; s <= 10; s++) window.record({ at: s * 1000, concurrency: 70 });
    const state = Object.freeze({ ...initialScalingState(base, 0), instances: 1 });
    const a = decide(window, base, 10_000, state);
    const b = decide(window, base, 10_000, state);
    expect(a).toEqual(b);
    expect(state.instances).toBe(1);
    expect(a.state.instances).toBe(10);
    expect(a.stableConcurrency).toBe(70);
  });

  it("a revision starting at zero has no traffic to wait for", () => {
    expect(initialScalingState({ ...base, initialScale: 0 }, 5000)).toEqual({ instances: 0, panicSince: undefined, lastPanicAt: undefined, lastTrafficAt: undefined });
    expect(initialScalingState(base, 5000).lastTrafficAt).toBe(5000);
  });
});
