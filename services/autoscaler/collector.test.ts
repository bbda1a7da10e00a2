import { describe, expect, it } from "vitest";
import { FakeClock } from "../model/index.ts";
import { Collector, type CollectorOptions } from "./collector.ts";
import { defaultAutoscalerConfig, type AutoscalerConfig } from "./config.ts";
import type { Decision } from "./decide.ts";

const config: AutoscalerConfig = { ...defaultAutoscalerConfig, target: 10 };

interface Seen {
  at: number;
  revision: string;
  decision: Decision;
}

/** A collector on a fake clock whose source reads `inFlight`, recording every decision. */
function setup(options: Partial<CollectorOptions> = {}): { clock: FakeClock; inFlight: Map<string, number>; seen: Seen[]; collector: Collector } {
  const clock = new FakeClock(0);
  const inFlight = new Map<string, number>();
  const seen: Seen[] = [];
  const collector = new Collector({
    clock,
    config,
    source: () => inFlight,
    onDecision: (revision, decision) => seen.push({ at: clock.now(), revision, decision }),
    ...options,
  });
  collector.start();
  return { clock, inFlight, seen, collector };
}

describe("Collector", () => {
  it("samples every second and decides every tickIntervalMs", () => {
    const { clock, inFlight, seen } = setup();
    inFlight.set("hello-00001", 70);
    clock.advance(1999);
    expect(seen).toEqual([]);
    clock.advance(1);
    clock.advance(8000);
    expect(seen.map((s) => s.at)).toEqual([2000, 4000, 6000, 8000, 10_000]);
    expect(seen.at(-1)).toMatchObject({ revision: "hello-00001", decision: { desired: 10, stableConcurrency: 70 } });
  });

  it("scales a revision to zero after the grace, not before", () => {
    const { clock, inFlight, seen } = setup();
    inFlight.set("hello-00001", 7);
    clock.advance(10_000);
    inFlight.set("hello-00001", 0);
    clock.advance(38_000);
    const zero = seen.find((s) => s.decision.desired === 0);
    expect(zero?.at).toBe(40_000);
    expect(zero?.decision.reason).toBe("scale to zero after 30s idle");
    expect(seen.filter((s) => s.at < 40_000).every((s) => s.decision.desired === 1)).toBe(true);
  });

  it("panics on a burst within one tick", () => {
    const { clock, inFlight, seen } = setup();
    inFlight.set("hello-00001", 7);
    clock.advance(20_000);
    inFlight.set("hello-00001", 140);
    clock.advance(2000);
    // The 6 s panic window holds four samples of 7 and two of 140: 51.3 in flight → 8 instances.
    expect(seen.at(-1)?.decision).toMatchObject({ panic: true, desired: 8 });
  });

  it("forgets revisions that disappear from the source", () => {
    const { clock, inFlight, seen, collector } = setup();
    inFlight.set("a-00001", 7).set("b-00001", 7);
    clock.advance(2000);
    expect(collector.tracked().sort()).toEqual(["a-00001", "b-00001"]);
    inFlight.delete("b-00001");
    clock.advance(4000);
    expect(collector.tracked()).toEqual(["a-00001"]);
    expect(collector.stateOf("b-00001")).toBeUndefined();
    expect(seen.filter((s) => s.revision === "b-00001").map((s) => s.at)).toEqual([2000]);
  });

  it("uses each revision's own config", () => {
    const { clock, inFlight, seen } = setup({ configFor: (r) => (r === "big-00001" ? { ...config, target: 5, minScale: 3, initialScale: 3 } : config) });
    inFlight.set("big-00001", 7).set("small-00001", 7);
    clock.advance(2000);
    const byRevision = Object.fromEntries(seen.map((s) => [s.revision, s.decision.desired]));
    expect(byRevision).toEqual({ "big-00001": 3, "small-00001": 1 });
  });

  it("scales from the ready count the backend reports", () => {
    const ready = new Map([["hello-00001", 0]]);
    const { clock, inFlight, seen } = setup({ ready: () => ready });
    inFlight.set("hello-00001", 7);
    clock.advance(2000);
    expect(seen.at(-1)?.decision.reason).toBe("activating from zero: 1 instance");
  });

  it("stops sampling and deciding after stop()", () => {
    const { clock, inFlight, seen, collector } = setup();
    inFlight.set("hello-00001", 7);
    clock.advance(4000);
    collector.stop();
    clock.advance(60_000);
    expect(seen).toHaveLength(2);
  });
});
