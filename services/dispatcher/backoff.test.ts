import { describe, expect, it } from "vitest";
import { backoffDelay, isRetryable, retrySchedule } from "./backoff.ts";

describe("retry schedule", () => {
  it.each([
    ["exponential", { retries: 5, backoff: "exponential" as const, backoffDelayMs: 100, maxBackoffMs: 1000 }, [100, 200, 400, 800, 1000]],
    ["linear", { retries: 4, backoff: "linear" as const, backoffDelayMs: 250, maxBackoffMs: 600 }, [250, 500, 600, 600]],
    ["no retries", { retries: 0, backoff: "exponential" as const, backoffDelayMs: 100, maxBackoffMs: 1000 }, []],
    ["zero delay", { retries: 3, backoff: "exponential" as const, backoffDelayMs: 0, maxBackoffMs: 1000 }, [0, 0, 0]],
    ["cap below base", { retries: 2, backoff: "linear" as const, backoffDelayMs: 500, maxBackoffMs: 100 }, [100, 100]],
  ])("%s", (_name, spec, expected) => {
    expect(retrySchedule(spec)).toEqual(expected);
  });

  it("does not overflow for many retries", () => {
    expect(backoffDelay({ backoff: "exponential", backoffDelayMs: 200, maxBackoffMs: 30_000 }, 100)).toBe(30_000);
  });

  it("retries every failure outcome and nothing else", () => {
    expect(isRetryable("function_error")).toBe(true);
    expect(isRetryable("timeout")).toBe(true);
    expect(isRetryable("platform_error")).toBe(true);
    expect(isRetryable("success")).toBe(false);
  });
});
