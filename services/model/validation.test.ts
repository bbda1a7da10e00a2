import { describe, expect, it } from "vitest";
import { KumoError } from "./errors.ts";
import { functionDefaults, validateFunctionInput, validateTriggerInput } from "./validation.ts";

const digest = "sha256:" + "a".repeat(64);
const fn = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = { name: "hello" }) => ({ metadata, spec: { source: { digest }, ...spec } });

function problems(f: () => unknown): { field?: string; message: string }[] {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_VALIDATION");
    return [...(err as KumoError).details];
  }
  throw new Error("expected a validation error");
}

describe("validateFunctionInput", () => {
  it("fills in defaults", () => {
    const { metadata, spec } = validateFunctionInput(fn(), "default");
    expect(metadata).toEqual({ name: "hello", namespace: "default" });
    expect(spec).toEqual({
      source: { digest },
      runtime: "isolate",
      env: {},
      limits: { timeoutMs: functionDefaults.timeoutMs, memoryMb: functionDefaults.memoryMb },
      concurrency: functionDefaults.concurrency,
      scale: {},
    });
  });

  it.each([
    ["My_Fn", "is not a DNS-1123 label: use lowercase letters, digits and '-'"],
    ["-lead", "is not a DNS-1123 label"],
    ["a".repeat(64), "at most 63"],
    ["", "is empty"],
  ])("rejects the name %j naming the fix", (name, message) => {
    const [p] = problems(() => validateFunctionInput(fn({}, { name }), "default"));
    expect(p).toMatchObject({ field: "metadata.name", message: expect.stringContaining(message) });
  });

  it.each([
    [{ limits: { timeoutMs: 5 } }, "spec.limits.timeoutMs", "out of range: use 10 to 900000 ms"],
    [{ limits: { memoryMb: 100000 } }, "spec.limits.memoryMb", "out of range"],
    [{ limits: { memoryMb: 1.5 } }, "spec.limits.memoryMb", "whole number"],
    [{ concurrency: 0 }, "spec.concurrency", "out of range"],
    [{ runtime: "python" }, "spec.runtime", 'use "isolate" (default) or "process"'],
    [{ env: { "1BAD": "x" } }, "spec.env.1BAD", "not a valid variable name"],
    [{ env: { GOOD: 1 } }, "spec.env.GOOD", "must be a string"],
    [{ scale: { min: 5, max: 2 } }, "spec.scale.min", "greater than spec.scale.max"],
    [{ scale: { panicThreshold: 50 } }, "spec.scale.panicThreshold", "out of range: use 1.1 to 10"],
    [{ scale: { targetUtilization: 0 } }, "spec.scale.targetUtilization", "use more than 0 to 1"],
    [{ scale: { stableWindowSeconds: 2.5 } }, "spec.scale.stableWindowSeconds", "whole number"],
    [{ source: { digest: "md5:abc" } }, "spec.source.digest", "not a digest"],
    [{ entry: "../etc/passwd" }, "spec.entry", "relative path inside the function folder"],
    [{ timeout: 5 }, "spec.timeout", 'unknown field "timeout"'],
    [{ traffic: [{ latestRevision: true, percent: 50 }] }, "spec.traffic", "add up to 50"],
  ])("rejects %j at %s", (spec, field, message) => {
    const list = problems(() => validateFunctionInput(fn(spec), "default"));
    expect(list).toContainEqual({ field, message: expect.stringContaining(message) });
  });

  it("keeps per-function autoscaler settings", () => {
    const { spec } = validateFunctionInput(fn({ scale: { max: 5, stableWindowSeconds: 20, panicThreshold: 3, targetUtilization: 0.5 } }), "default");
    expect(spec.scale).toEqual({ max: 5, stableWindowSeconds: 20, panicThreshold: 3, targetUtilization: 0.5 });
  });

  it("reports every problem at once", () => {
    const list = problems(() => validateFunctionInput(fn({ concurrency: -1, runtime: "x", bogus: 1 }, { name: "Bad" }), "default"));
    expect(list.map((p) => p.field).sort()).toEqual(["metadata.name", "spec.bogus", "spec.concurrency", "spec.runtime"]);
  });

  it("rejects a namespace in the body that differs from the path", () => {
    const list = problems(() => validateFunctionInput(fn({}, { name: "a", namespace: "other" }), "default"));
    expect(list[0]).toMatchObject({ field: "metadata.namespace" });
  });
});

describe("validateTriggerInput", () => {
  it("accepts an event trigger with filters and fills delivery defaults", () => {
    const { spec } = validateTriggerInput({ metadata: { name: "on-vm" }, spec: { function: "inv", source: { kind: "event", filter: { exact: { type: "x" } } } } }, "default");
    expect(spec.source).toEqual({ kind: "event", filter: { exact: { type: "x" } } });
    expect(spec.delivery.retries).toBe(3);
  });

  it("rejects an unknown time zone and a bad backoff", () => {
    const list = problems(() =>
      validateTriggerInput({ metadata: { name: "n" }, spec: { function: "f", source: { kind: "cron", schedule: "0 2 * * *", timezone: "Mars/Olympus" }, delivery: { backoff: "random" } } }, "default"),
    );
    expect(list.map((p) => p.field).sort()).toEqual(["spec.delivery.backoff", "spec.source.timezone"]);
  });
});
