import { describe, expect, it } from "vitest";
import { ConcurrencyWindow } from "./window.ts";

describe("ConcurrencyWindow", () => {
  it("averages the samples in the last span", () => {
    const w = new ConcurrencyWindow(60_000);
    for (let s = 1; s <= 10; s++) w.record({ at: s * 1000, concurrency: s <= 5 ? 0 : 10 });
    expect(w.average(10_000, 10_000)).toBe(5);
    expect(w.average(10_000, 5000)).toBe(10);
    // The span ends at now: later samples do not count.
    expect(w.average(5000, 5000)).toBe(0);
  });

  it("is 0 with no samples in the span", () => {
    const w = new ConcurrencyWindow(60_000);
    expect(w.average(1000, 6000)).toBe(0);
    w.record({ at: 1000, concurrency: 4 });
    expect(w.average(20_000, 6000)).toBe(0);
  });

  it("keeps only the retained span of samples", () => {
    const w = new ConcurrencyWindow(60_000);
    for (let s = 1; s <= 600; s++) w.record({ at: s * 1000, concurrency: 1 });
    expect(w.size).toBe(60);
    expect(w.average(600_000, 60_000)).toBe(1);
  });

  it("remembers the last traffic after its sample is dropped", () => {
    const w = new ConcurrencyWindow(10_000);
    w.record({ at: 1000, concurrency: 3 });
    for (let s = 2; s <= 30; s++) w.record({ at: s * 1000, concurrency: 0 });
    expect(w.size).toBe(10);
    expect(w.lastActiveAt()).toBe(1000);
    expect(new ConcurrencyWindow(10_000).lastActiveAt()).toBeUndefined();
  });
});
