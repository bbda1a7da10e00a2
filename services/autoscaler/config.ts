// The autoscaler's configuration: platform-wide defaults read from KUMO_AUTOSCALER_* variables,
// and a function's own ScaleSpec merged over them. Both fail fast and report every bad key at once.

import { KumoError, Problems, type ErrorDetail, type ScaleSpec } from "../model/index.ts";

/** Every knob of the KPA policy (names and defaults follow Knative's config-autoscaler). */
export interface AutoscalerConfig {
  /** Fraction of `target` each instance is filled to before adding another; headroom for bursts. */
  readonly targetUtilization: number;
  /** Length of the window whose average concurrency drives normal scaling, ms. */
  readonly stableWindowMs: number;
  /** Panic window as a percentage of the stable window (10 → 6 s of a 60 s window). */
  readonly panicWindowPercent: number;
  /** Panic when the panic window wants this many times the ready instances (2.0 = 200%). */
  readonly panicThreshold: number;
  /** How long a revision must see no traffic before it scales to zero, ms. */
  readonly scaleToZeroGraceMs: number;
  /** Fewest instances; 0 allows scale to zero. */
  readonly minScale: number;
  /** Most instances. */
  readonly maxScale: number;
  /** Target in-flight requests per instance (a function's `scale.target`; not its `concurrency` limit). */
  readonly target: number;
  /** One decision may grow the count to at most this multiple of the ready instances. */
  readonly maxScaleUpRate: number;
  /** One decision may shrink the count to no less than ready / this (2 → at most halve). */
  readonly maxScaleDownRate: number;
  /** Instances a new revision starts with before any decision. */
  readonly initialScale: number;
  /** Fewest instances when scaling up from zero. */
  readonly activationScale: number;
  /** How often the collector asks for a decision, ms (samples are taken every second). */
  readonly tickIntervalMs: number;
}

/** The defaults: Knative's, with target from the function defaults. */
export const defaultAutoscalerConfig: AutoscalerConfig = Object.freeze({
  targetUtilization: 0.7,
  stableWindowMs: 60_000,
  panicWindowPercent: 10,
  panicThreshold: 2.0,
  scaleToZeroGraceMs: 30_000,
  minScale: 0,
  maxScale: 10,
  target: 70,
  maxScaleUpRate: 1000,
  maxScaleDownRate: 2,
  initialScale: 1,
  activationScale: 1,
  tickIntervalMs: 2000,
});

/** The collector samples in-flight requests this often, ms; windows are counted in these samples. */
export const SAMPLE_INTERVAL_MS = 1000;

type Key = keyof AutoscalerConfig;

interface KeyRule {
  readonly env: string;
  readonly whole: boolean;
  readonly min: number;
  readonly max: number;
  /** True when min itself is not allowed (rates and utilization must exceed it). */
  readonly exclusiveMin?: boolean;
}

const HOUR_MS = 3_600_000;

const rules: Readonly<Record<Key, KeyRule>> = {
  targetUtilization: { env: "KUMO_AUTOSCALER_TARGET_UTILIZATION", whole: false, min: 0, max: 1, exclusiveMin: true },
  stableWindowMs: { env: "KUMO_AUTOSCALER_STABLE_WINDOW_MS", whole: true, min: 6000, max: HOUR_MS },
  panicWindowPercent: { env: "KUMO_AUTOSCALER_PANIC_WINDOW_PERCENT", whole: false, min: 1, max: 100 },
  panicThreshold: { env: "KUMO_AUTOSCALER_PANIC_THRESHOLD", whole: false, min: 1.1, max: 10 },
  scaleToZeroGraceMs: { env: "KUMO_AUTOSCALER_SCALE_TO_ZERO_GRACE_MS", whole: true, min: 0, max: HOUR_MS },
  minScale: { env: "KUMO_AUTOSCALER_MIN_SCALE", whole: true, min: 0, max: 1000 },
  maxScale: { env: "KUMO_AUTOSCALER_MAX_SCALE", whole: true, min: 1, max: 1000 },
  target: { env: "KUMO_AUTOSCALER_TARGET", whole: false, min: 0.01, max: 1000 },
  maxScaleUpRate: { env: "KUMO_AUTOSCALER_MAX_SCALE_UP_RATE", whole: false, min: 1, max: 10_000, exclusiveMin: true },
  maxScaleDownRate: { env: "KUMO_AUTOSCALER_MAX_SCALE_DOWN_RATE", whole: false, min: 1, max: 10_000, exclusiveMin: true },
  initialScale: { env: "KUMO_AUTOSCALER_INITIAL_SCALE", whole: true, min: 0, max: 1000 },
  activationScale: { env: "KUMO_AUTOSCALER_ACTIVATION_SCALE", whole: true, min: 1, max: 1000 },
  tickIntervalMs: { env: "KUMO_AUTOSCALER_TICK_INTERVAL_MS", whole: true, min: SAMPLE_INTERVAL_MS, max: 60_000 },
};

const PREFIX = "KUMO_AUTOSCALER_";

function rangeProblem(value: number, rule: KeyRule): string | undefined {
  if (rule.whole && !Number.isInteger(value)) return `must be a whole number, got ${value}`;
  const tooLow = rule.exclusiveMin === true ? value <= rule.min : value < rule.min;
  if (tooLow || value > rule.max) {
    return `${value} is out of range: use ${rule.exclusiveMin === true ? "more than " : ""}${rule.min} to ${rule.max}`;
  }
  return undefined;
}

/** The panic window of a config, ms. */
export function panicWindowMs(config: AutoscalerConfig): number {
  return Math.round((config.stableWindowMs * config.panicWindowPercent) / 100);
}

/** Problems that involve more than one key; `field` names each key the way the caller shows it. */
function crossKeyProblems(c: AutoscalerConfig, field: (key: Key) => string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  if (c.minScale > c.maxScale) {
    out.push({ field: field("minScale"), message: `${c.minScale} is greater than ${field("maxScale")} ${c.maxScale}: lower the minimum or raise the maximum` });
  }
  if (panicWindowMs(c) < SAMPLE_INTERVAL_MS) {
    out.push({ field: field("panicWindowPercent"), message: `gives a panic window of ${panicWindowMs(c)} ms: it must hold at least one ${SAMPLE_INTERVAL_MS} ms sample` });
  }
  if (c.tickIntervalMs > c.stableWindowMs) {
    out.push({ field: field("tickIntervalMs"), message: `${c.tickIntervalMs} is longer than the stable window ${c.stableWindowMs} ms: decide at least once per window` });
  }
  return out;
}

/** Reads KUMO_AUTOSCALER_* from `env` over the defaults; throws KUMO_E_INVALID_CONFIG listing every bad key. */
export function loadAutoscalerConfig(env: Readonly<Record<string, string | undefined>>): AutoscalerConfig {
  const details: ErrorDetail[] = [];
  const config: Record<Key, number> = { ...defaultAutoscalerConfig };
  const known = new Set(Object.values(rules).map((r) => r.env));
  for (const name of Object.keys(env)) {
    if (name.startsWith(PREFIX) && !known.has(name)) {
      details.push({ field: name, message: `unknown autoscaler setting: known ones are ${[...known].join(", ")}` });
    }
  }
  for (const key of Object.keys(rules) as Key[]) {
    const rule = rules[key];
    const raw = env[rule.env]?.trim();
    if (raw === undefined || raw === "") continue;
    const value = Number(raw);
    if (!Number.isFinite(value)) {
      details.push({ field: rule.env, message: `must be a number, got "${raw}"` });
      continue;
    }
    const problem = rangeProblem(value, rule);
    if (problem !== undefined) details.push({ field: rule.env, message: problem });
    else config[key] = value;
  }
  // Cross-key checks only make sense once every single key is valid.
  if (details.length === 0) details.push(...crossKeyProblems(config, (k) => rules[k].env));
  if (details.length > 0) {
    const first = details[0]!;
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : "";
    throw new KumoError("KUMO_E_INVALID_CONFIG", `invalid autoscaler config: ${first.field}: ${first.message}${more}`, { details });
  }
  return Object.freeze(config);
}

/** Merges a function's ScaleSpec over the global config; throws KUMO_E_VALIDATION naming each bad spec.scale field. */
export function resolveFunctionScaling(global: AutoscalerConfig, scale: Partial<ScaleSpec> | undefined): AutoscalerConfig {
  const p = new Problems();
  const pick = (value: number | undefined, field: string, rule: KeyRule, fallback: number): number => {
    if (value === undefined) return fallback;
    const problem = typeof value === "number" && Number.isFinite(value) ? rangeProblem(value, rule) : `must be a number, got ${JSON.stringify(value)}`;
    if (problem === undefined) return value;
    p.add(field, problem);
    return fallback;
  };
  const minScale = pick(scale?.min, "spec.scale.min", rules.minScale, global.minScale);
  const maxScale = pick(scale?.max, "spec.scale.max", rules.maxScale, global.maxScale);
  const target = pick(scale?.target, "spec.scale.target", rules.target, global.target);
  const graceSeconds = pick(scale?.scaleToZeroGraceSeconds, "spec.scale.scaleToZeroGraceSeconds", { ...rules.scaleToZeroGraceMs, max: HOUR_MS / 1000 }, global.scaleToZeroGraceMs / 1000);
  const stableSeconds = pick(scale?.stableWindowSeconds, "spec.scale.stableWindowSeconds", { ...rules.stableWindowMs, min: rules.stableWindowMs.min / 1000, max: HOUR_MS / 1000 }, global.stableWindowMs / 1000);
  const initialScale = pick(scale?.initialScale, "spec.scale.initialScale", rules.initialScale, global.initialScale);
  const activationScale = pick(scale?.activationScale, "spec.scale.activationScale", rules.activationScale, global.activationScale);
  const merged: AutoscalerConfig = {
    ...global,
    minScale,
    maxScale,
    target,
    scaleToZeroGraceMs: graceSeconds * 1000,
    stableWindowMs: stableSeconds * 1000,
    targetUtilization: pick(scale?.targetUtilization, "spec.scale.targetUtilization", rules.targetUtilization, global.targetUtilization),
    panicWindowPercent: pick(scale?.panicWindowPercent, "spec.scale.panicWindowPercent", rules.panicWindowPercent, global.panicWindowPercent),
    panicThreshold: pick(scale?.panicThreshold, "spec.scale.panicThreshold", rules.panicThreshold, global.panicThreshold),
    maxScaleUpRate: pick(scale?.maxScaleUpRate, "spec.scale.maxScaleUpRate", rules.maxScaleUpRate, global.maxScaleUpRate),
    maxScaleDownRate: pick(scale?.maxScaleDownRate, "spec.scale.maxScaleDownRate", rules.maxScaleDownRate, global.maxScaleDownRate),
    // A function's bounds win over the start and activation counts.
    initialScale: Math.min(Math.max(initialScale, minScale), maxScale),
    activationScale: Math.min(activationScale, maxScale),
  };
  const specField: Partial<Record<Key, string>> = {
    minScale: "spec.scale.min",
    maxScale: "spec.scale.max",
    panicWindowPercent: "spec.scale.panicWindowPercent",
    stableWindowMs: "spec.scale.stableWindowSeconds",
  };
  if (p.list.length === 0) {
    for (const d of crossKeyProblems(merged, (k) => specField[k] ?? k)) p.add(d.field ?? "spec.scale", d.message);
  }
  p.throwIfAny("spec.scale");
  return Object.freeze(merged);
}
