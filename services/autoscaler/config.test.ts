import { describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { defaultAutoscalerConfig, loadAutoscalerConfig, panicWindowMs, resolveFunctionScaling } from "./config.ts";

function problemsOf(fn: () => unknown): { code: string; fields: (string | undefined)[]; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof KumoError) return { code: err.code, fields: err.details.map((d) => d.field), message: err.message };
    throw err;
  }
  throw new Error("expected a KumoError");
}

describe("loadAutoscalerConfig", () => {
  it("gives Knative's defaults for an empty environment, frozen", () => {
    const c = loadAutoscalerConfig({});
    expect(c).toEqual(defaultAutoscalerConfig);
    expect(c).toMatchObject({ targetUtilization: 0.7, stableWindowMs: 60_000, panicThreshold: 2, scaleToZeroGraceMs: 30_000, maxScaleUpRate: 1000, maxScaleDownRate: 2, tickIntervalMs: 2000 });
    expect(panicWindowMs(c)).toBe(6000);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("reads KUMO_AUTOSCALER_* and ignores other variables and empty values", () => {
    const c = loadAutoscalerConfig({
      KUMO_AUTOSCALER_TARGET_UTILIZATION: "0.5",
      KUMO_AUTOSCALER_STABLE_WINDOW_MS: "120000",
      KUMO_AUTOSCALER_PANIC_THRESHOLD: " 3 ",
      KUMO_AUTOSCALER_MIN_SCALE: "1",
      KUMO_AUTOSCALER_MAX_SCALE: "",
      KUMO_API_TOKEN: "secret",
      PATH: "/usr/bin",
    });
    expect(c).toMatchObject({ targetUtilization: 0.5, stableWindowMs: 120_000, panicThreshold: 3, minScale: 1, maxScale: defaultAutoscalerConfig.maxScale });
    expect(panicWindowMs(c)).toBe(12_000);
  });

  it("reports every bad key at once", () => {
    const p = problemsOf(() =>
      loadAutoscalerConfig({
        KUMO_AUTOSCALER_TARGET_UTILIZATION: "1.5",
        KUMO_AUTOSCALER_STABLE_WINDOW_MS: "a minute",
        KUMO_AUTOSCALER_MAX_SCALE: "2.5",
        KUMO_AUTOSCALER_MAX_SCALE_DOWN_RATE: "1",
        KUMO_AUTOSCALER_SCALE_TO_ZERO_GRACE: "30s",
      }),
    );
    expect(p.code).toBe("KUMO_E_INVALID_CONFIG");
    expect(p.fields.sort()).toEqual([
      "KUMO_AUTOSCALER_MAX_SCALE",
      "KUMO_AUTOSCALER_MAX_SCALE_DOWN_RATE",
      "KUMO_AUTOSCALER_SCALE_TO_ZERO_GRACE",
      "KUMO_AUTOSCALER_STABLE_WINDOW_MS",
      "KUMO_AUTOSCALER_TARGET_UTILIZATION",
    ]);
    expect(p.message).toMatch(/and 4 more/);
  });

  it.each([
    ["KUMO_AUTOSCALER_TARGET_UTILIZATION", "0", /more than 0 to 1/],
    ["KUMO_AUTOSCALER_PANIC_WINDOW_PERCENT", "0", /out of range/],
    ["KUMO_AUTOSCALER_PANIC_THRESHOLD", "1", /out of range/],
    ["KUMO_AUTOSCALER_MIN_SCALE", "-1", /out of range/],
    ["KUMO_AUTOSCALER_TARGET", "NaN", /must be a number/],
    ["KUMO_AUTOSCALER_MAX_SCALE_UP_RATE", "1", /more than 1/],
    ["KUMO_AUTOSCALER_INITIAL_SCALE", "1.5", /whole number/],
    ["KUMO_AUTOSCALER_ACTIVATION_SCALE", "0", /out of range/],
    ["KUMO_AUTOSCALER_TICK_INTERVAL_MS", "100", /out of range/],
  ])("rejects %s=%s", (key, value, message) => {
    const err = problemsOf(() => loadAutoscalerConfig({ [key]: value }));
    expect(err.fields).toEqual([key]);
    expect(err.message).toMatch(message);
  });

  it("checks keys against each other", () => {
    expect(problemsOf(() => loadAutoscalerConfig({ KUMO_AUTOSCALER_MIN_SCALE: "5", KUMO_AUTOSCALER_MAX_SCALE: "3" })).fields).toEqual(["KUMO_AUTOSCALER_MIN_SCALE"]);
    // 10% of 6 s is 600 ms: shorter than one sample.
    expect(problemsOf(() => loadAutoscalerConfig({ KUMO_AUTOSCALER_STABLE_WINDOW_MS: "6000" })).fields).toEqual(["KUMO_AUTOSCALER_PANIC_WINDOW_PERCENT"]);
    expect(problemsOf(() => loadAutoscalerConfig({ KUMO_AUTOSCALER_STABLE_WINDOW_MS: "10000", KUMO_AUTOSCALER_TICK_INTERVAL_MS: "20000" })).fields).toEqual([
      "KUMO_AUTOSCALER_TICK_INTERVAL_MS",
    ]);
  });
});

describe("resolveFunctionScaling", () => {
  const global = defaultAutoscalerConfig;

  it.each([
    ["no scale spec keeps the global defaults", undefined, {}],
    ["min, max and target override", { min: 2, max: 20, target: 5 }, { minScale: 2, maxScale: 20, target: 5, initialScale: 2 }],
    ["grace seconds become ms", { scaleToZeroGraceSeconds: 90 }, { scaleToZeroGraceMs: 90_000 }],
    ["initialScale is raised to the function's min", { min: 3, max: 5 }, { minScale: 3, maxScale: 5, initialScale: 3 }],
    ["activationScale is lowered to the function's max", { max: 1 }, { activationScale: 1, initialScale: 1, maxScale: 1 }],
    [
      "every knob can be set per function",
      { targetUtilization: 0.5, stableWindowSeconds: 20, panicWindowPercent: 20, panicThreshold: 3, maxScaleUpRate: 10, maxScaleDownRate: 4, initialScale: 0, activationScale: 2 },
      { targetUtilization: 0.5, stableWindowMs: 20_000, panicWindowPercent: 20, panicThreshold: 3, maxScaleUpRate: 10, maxScaleDownRate: 4, initialScale: 0, activationScale: 2 },
    ],
  ] as const)("%s", (_name, scale, changes) => {
    const c = resolveFunctionScaling(global, scale);
    expect(c).toEqual({ ...global, ...changes });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("lowers initial and activation counts to a small max", () => {
    const c = resolveFunctionScaling({ ...global, initialScale: 4, activationScale: 3 }, { max: 2 });
    expect([c.initialScale, c.activationScale]).toEqual([2, 2]);
  });

  it("rejects min > max naming the spec field", () => {
    const p = problemsOf(() => resolveFunctionScaling(global, { min: 5, max: 2 }));
    expect(p.code).toBe("KUMO_E_VALIDATION");
    expect(p.fields).toEqual(["spec.scale.min"]);
    expect(p.message).toMatch(/greater than spec.scale.max 2/);
  });

  it("rejects a per-function window whose panic window holds no sample", () => {
    const p = problemsOf(() => resolveFunctionScaling(global, { stableWindowSeconds: 6, panicWindowPercent: 10 }));
    expect(p.fields).toEqual(["spec.scale.panicWindowPercent"]);
  });

  it("lists every bad field", () => {
    const p = problemsOf(() => resolveFunctionScaling(global, { min: -1, max: 0, target: 0, scaleToZeroGraceSeconds: 1.5 }));
    expect(p.fields).toEqual(["spec.scale.min", "spec.scale.max", "spec.scale.target", "spec.scale.scaleToZeroGraceSeconds"]);
  });
});
