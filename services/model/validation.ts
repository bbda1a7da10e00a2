// Validation of what users send: names, specs and limits. Every problem is reported at once,
// each naming the field and the fix; unknown keys are rejected so typos do not pass silently.

import { KumoError, type ErrorDetail } from "./errors.ts";
import type { DeliverySpec, EventFilter, FunctionSpec, Limits, RuntimeKind, ScaleSpec, TrafficTarget, TriggerSource, TriggerSpec } from "./resources.ts";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Bounds and defaults for function specs; one place so docs, CLI and api agree. */
export const functionDefaults = {
  runtime: "isolate" as RuntimeKind,
  timeoutMs: 30_000,
  minTimeoutMs: 10,
  maxTimeoutMs: 900_000,
  memoryMb: 128,
  minMemoryMb: 8,
  maxMemoryMb: 4096,
  concurrency: 100,
  maxConcurrency: 1000,
  maxScale: 1000,
  maxEnvEntries: 100,
  maxEnvValueBytes: 32 * 1024,
} as const;

/** Collects problems so every one is reported in a single error. */
export class Problems {
  readonly list: ErrorDetail[] = [];
  add(field: string, message: string): void {
    this.list.push({ field, message });
  }
  /** Throws KUMO_E_VALIDATION listing every problem, if there are any. */
  throwIfAny(what: string): void {
    if (this.list.length === 0) return;
    const first = this.list[0]!;
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more problem${this.list.length > 2 ? "s" : ""})` : "";
    throw new KumoError("KUMO_E_VALIDATION", `invalid ${what}: ${first.field}: ${first.message}${more}`, { details: this.list });
  }
}

/** Reads a whole-number environment variable within [min, max]; a bad value is added to `p` and the fallback returned. */
export function envInt(p: Problems, env: Readonly<Record<string, string | undefined>>, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    p.add(key, `"${raw}" is not a whole number from ${min} to ${max}`);
    return fallback;
  }
  return n;
}

/** The problem with a DNS-1123 label, or undefined if it is one. */
export function dnsLabelProblem(value: string, what: string): string | undefined {
  if (value.length === 0) return `${what} is empty: use 1-63 lowercase letters, digits and '-'`;
  if (value.length > 63) return `${what} "${value.slice(0, 20)}…" is ${value.length} characters: a DNS-1123 label has at most 63`;
  if (!DNS1123_LABEL.test(value)) {
    return `${what} "${value}" is not a DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Throws KUMO_E_VALIDATION unless `value` is a DNS-1123 label. */
export function assertDnsLabel(value: string, what: string, field = "metadata.name"): void {
  const problem = dnsLabelProblem(value, what);
  if (problem !== undefined) throw new KumoError("KUMO_E_VALIDATION", problem, { details: [{ field, message: problem }] });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function rejectUnknown(p: Problems, obj: Record<string, unknown>, allowed: readonly string[], at: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) p.add(at === "" ? key : `${at}.${key}`, `unknown field "${key}": allowed fields are ${allowed.join(", ")}`);
  }
}

function intIn(p: Problems, v: unknown, field: string, min: number, max: number, fallback: number, unit = ""): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    p.add(field, `must be a whole number${unit === "" ? "" : ` of ${unit}`}, got ${JSON.stringify(v)}`);
    return fallback;
  }
  if (v < min || v > max) {
    p.add(field, `${v} is out of range: use ${min} to ${max}${unit === "" ? "" : ` ${unit}`}`);
    return fallback;
  }
  return v;
}

/** The user-writable part of object metadata. */
export interface MetadataInput {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
}

function validateMetadata(p: Problems, raw: unknown, namespace: string, what: string): MetadataInput {
  if (!isRecord(raw)) {
    p.add("metadata", `is required: send { "metadata": { "name": "my-${what}" }, ... }`);
    return { name: "", namespace };
  }
  // Fields the store owns are accepted (so a read-modify-write round-trips) but ignored.
  rejectUnknown(p, raw, ["name", "namespace", "labels", "uid", "resourceVersion", "generation", "creationTimestamp", "ownerName"], "metadata");
  const name = raw.name;
  if (typeof name !== "string") p.add("metadata.name", `is required: a DNS-1123 label such as "my-${what}"`);
  else {
    const problem = dnsLabelProblem(name, `${what} name`);
    if (problem !== undefined) p.add("metadata.name", problem);
  }
  if (raw.namespace !== undefined && raw.namespace !== namespace) {
    p.add("metadata.namespace", `is ${JSON.stringify(raw.namespace)} but the request path says "${namespace}": leave it out or make them match`);
  }
  const out: MetadataInput = { name: typeof name === "string" ? name : "", namespace };
  if (raw.labels !== undefined) {
    if (!isRecord(raw.labels) || !Object.values(raw.labels).every((v) => typeof v === "string")) {
      p.add("metadata.labels", "must be an object of string values");
    } else out.labels = raw.labels as Record<string, string>;
  }
  return out;
}

function validateEnv(p: Problems, raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (!isRecord(raw)) {
    p.add("spec.env", `must be an object of NAME: "value" pairs, got ${JSON.stringify(raw)}`);
    return {};
  }
  const entries = Object.entries(raw);
  if (entries.length > functionDefaults.maxEnvEntries) p.add("spec.env", `has ${entries.length} entries: at most ${functionDefaults.maxEnvEntries}`);
  const env: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!ENV_NAME.test(k)) p.add(`spec.env.${k}`, `"${k}" is not a valid variable name: use letters, digits and '_', not starting with a digit`);
    else if (typeof v !== "string") p.add(`spec.env.${k}`, `must be a string, got ${JSON.stringify(v)}: quote the value`);
    else if (Buffer.byteLength(v) > functionDefaults.maxEnvValueBytes) p.add(`spec.env.${k}`, `is larger than ${functionDefaults.maxEnvValueBytes} bytes`);
    else env[k] = v;
  }
  return env;
}

function validateLimits(p: Problems, raw: unknown): Limits {
  const d = functionDefaults;
  if (raw === undefined) return { timeoutMs: d.timeoutMs, memoryMb: d.memoryMb };
  if (!isRecord(raw)) {
    p.add("spec.limits", "must be an object like { \"timeoutMs\": 30000, \"memoryMb\": 128 }");
    return { timeoutMs: d.timeoutMs, memoryMb: d.memoryMb };
  }
  rejectUnknown(p, raw, ["timeoutMs", "memoryMb"], "spec.limits");
  return {
    timeoutMs: intIn(p, raw.timeoutMs, "spec.limits.timeoutMs", d.minTimeoutMs, d.maxTimeoutMs, d.timeoutMs, "ms"),
    memoryMb: intIn(p, raw.memoryMb, "spec.limits.memoryMb", d.minMemoryMb, d.maxMemoryMb, d.memoryMb, "MiB"),
  };
}

const SCALE_KEYS = [
  "min",
  "max",
  "target",
  "scaleToZeroGraceSeconds",
  "targetUtilization",
  "stableWindowSeconds",
  "panicWindowPercent",
  "panicThreshold",
  "maxScaleUpRate",
  "maxScaleDownRate",
  "initialScale",
  "activationScale",
] as const;

function validateScale(p: Problems, raw: unknown): Partial<ScaleSpec> {
  if (raw === undefined) return {};
  if (!isRecord(raw)) {
    p.add("spec.scale", "must be an object like { \"min\": 0, \"max\": 10, \"target\": 70 }");
    return {};
  }
  rejectUnknown(p, raw, [...SCALE_KEYS], "spec.scale");
  const max = functionDefaults.maxScale;
  // Only what the user set is kept: the rest follows the server's autoscaler defaults.
  const s: Partial<ScaleSpec> = {};
  if (raw.min !== undefined) s.min = intIn(p, raw.min, "spec.scale.min", 0, max, 0);
  if (raw.max !== undefined) s.max = intIn(p, raw.max, "spec.scale.max", 1, max, 1);
  if (raw.target !== undefined) s.target = intIn(p, raw.target, "spec.scale.target", 1, functionDefaults.maxConcurrency, 1);
  if (raw.scaleToZeroGraceSeconds !== undefined) s.scaleToZeroGraceSeconds = intIn(p, raw.scaleToZeroGraceSeconds, "spec.scale.scaleToZeroGraceSeconds", 0, 3600, 0, "seconds");
  // The autoscaler's other knobs, per function (the same ranges as KUMO_AUTOSCALER_*).
  const num = (key: keyof ScaleSpec, min: number, max: number, whole: boolean, exclusiveMin = false): void => {
    const v = raw[key];
    if (v === undefined) return;
    const field = `spec.scale.${key}`;
    if (typeof v !== "number" || !Number.isFinite(v) || (whole && !Number.isInteger(v))) return p.add(field, `must be ${whole ? "a whole number" : "a number"}, got ${JSON.stringify(v)}`);
    if ((exclusiveMin ? v <= min : v < min) || v > max) return p.add(field, `${v} is out of range: use ${exclusiveMin ? "more than " : ""}${min} to ${max}`);
    (s as Record<string, number>)[key] = v;
  };
  num("targetUtilization", 0, 1, false, true);
  num("stableWindowSeconds", 6, 3600, true);
  num("panicWindowPercent", 1, 100, false);
  num("panicThreshold", 1.1, 10, false);
  num("maxScaleUpRate", 1, 10_000, false, true);
  num("maxScaleDownRate", 1, 10_000, false, true);
  num("initialScale", 0, 1000, true);
  num("activationScale", 1, 1000, true);
  if (s.min !== undefined && s.max !== undefined && s.min > s.max) p.add("spec.scale.min", `${s.min} is greater than spec.scale.max ${s.max}: lower min or raise max`);
  return s;
}

function validateTraffic(p: Problems, raw: unknown): TrafficTarget[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) {
    p.add("spec.traffic", "must be a list like [{ \"latestRevision\": true, \"percent\": 100 }]");
    return undefined;
  }
  const out: TrafficTarget[] = [];
  let total = 0;
  const tags = new Set<string>();
  raw.forEach((t: unknown, i) => {
    const at = `spec.traffic[${i}]`;
    if (!isRecord(t)) return p.add(at, "must be an object");
    rejectUnknown(p, t, ["revision", "latestRevision", "percent", "tag"], at);
    const target: TrafficTarget = { percent: intIn(p, t.percent, `${at}.percent`, 0, 100, 0) };
    total += target.percent;
    if (typeof t.revision === "string") target.revision = t.revision;
    else if (t.revision !== undefined) p.add(`${at}.revision`, "must be a revision name");
    if (t.latestRevision === true) target.latestRevision = true;
    if ((target.revision === undefined) === (target.latestRevision !== true)) {
      p.add(at, "name exactly one of \"revision\" or \"latestRevision\": true");
    }
    if (t.tag !== undefined) {
      const problem = typeof t.tag === "string" ? dnsLabelProblem(t.tag, "tag") : "must be a string";
      if (problem !== undefined) p.add(`${at}.tag`, problem);
      else if (tags.has(t.tag as string)) p.add(`${at}.tag`, `tag ${JSON.stringify(t.tag)} is used twice`);
      else {
        tags.add(t.tag as string);
        target.tag = t.tag as string;
      }
    }
    out.push(target);
  });
  if (out.length > 0 && total !== 100) p.add("spec.traffic", `percents add up to ${total}: they must add up to 100`);
  return out;
}

const FUNCTION_SPEC_KEYS = ["source", "entry", "runtime", "env", "limits", "concurrency", "scale", "traffic"] as const;

/** Validates a Function as a user sends it and fills in defaults. Throws KUMO_E_VALIDATION. */
export function validateFunctionInput(raw: unknown, namespace: string): { metadata: MetadataInput; spec: FunctionSpec } {
  const p = new Problems();
  if (!isRecord(raw)) {
    p.add("", "the body must be a JSON object with metadata and spec");
    p.throwIfAny("function");
  }
  const body = raw as Record<string, unknown>;
  rejectUnknown(p, body, ["apiVersion", "kind", "metadata", "spec", "status"], "");
  if (body.kind !== undefined && body.kind !== "Function") p.add("kind", `is ${JSON.stringify(body.kind)}: this endpoint takes kind Function`);
  const metadata = validateMetadata(p, body.metadata, namespace, "function");
  const spec = isRecord(body.spec) ? body.spec : undefined;
  if (spec === undefined) {
    p.add("spec", "is required: { \"source\": { \"digest\": \"sha256:…\" } } (kumo deploy fills it in)");
    p.throwIfAny("function");
  }
  const s = spec as Record<string, unknown>;
  rejectUnknown(p, s, FUNCTION_SPEC_KEYS, "spec");
  const source = s.source;
  let digest = "";
  if (!isRecord(source) || typeof source.digest !== "string") p.add("spec.source.digest", "is required: upload the source first (POST .../sources) and use the digest it returns");
  else if (!DIGEST.test(source.digest)) p.add("spec.source.digest", `"${source.digest}" is not a digest: use sha256:<64 hex digits>`);
  else digest = source.digest;
  if (isRecord(source)) rejectUnknown(p, source, ["digest"], "spec.source");
  let runtime: RuntimeKind = functionDefaults.runtime;
  if (s.runtime !== undefined) {
    if (s.runtime === "isolate" || s.runtime === "process") runtime = s.runtime;
    else p.add("spec.runtime", `${JSON.stringify(s.runtime)} is not a runtime: use "isolate" (default) or "process"`);
  }
  const out: FunctionSpec = {
    source: { digest },
    runtime,
    env: validateEnv(p, s.env),
    limits: validateLimits(p, s.limits),
    concurrency: intIn(p, s.concurrency, "spec.concurrency", 1, functionDefaults.maxConcurrency, functionDefaults.concurrency),
    scale: validateScale(p, s.scale),
  };
  if (s.entry !== undefined) {
    if (typeof s.entry !== "string" || s.entry === "" || s.entry.startsWith("/") || s.entry.split("/").includes("..")) {
      p.add("spec.entry", "must be a relative path inside the function folder, such as index.ts");
    } else out.entry = s.entry;
  }
  const traffic = validateTraffic(p, s.traffic);
  if (traffic !== undefined) out.traffic = traffic;
  p.throwIfAny("function");
  return { metadata, spec: out };
}

/** Defaults for trigger delivery. */
export const deliveryDefaults: DeliverySpec = {
  retries: 3,
  backoff: "exponential",
  backoffDelayMs: 200,
  maxBackoffMs: 30_000,
  concurrency: 10,
  ordered: false,
  deadLetter: true,
};

function validateStringMap(p: Problems, raw: unknown, at: string): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  if (!isRecord(raw) || !Object.values(raw).every((v) => typeof v === "string")) {
    p.add(at, "must be an object of attribute: \"value\" strings");
    return undefined;
  }
  return raw as Record<string, string>;
}

function validateFilter(p: Problems, raw: unknown): EventFilter {
  if (raw === undefined) return {};
  if (!isRecord(raw)) {
    p.add("spec.source.filter", "must be an object with exact, prefix and/or suffix maps");
    return {};
  }
  rejectUnknown(p, raw, ["exact", "prefix", "suffix"], "spec.source.filter");
  const f: EventFilter = {};
  const exact = validateStringMap(p, raw.exact, "spec.source.filter.exact");
  const prefix = validateStringMap(p, raw.prefix, "spec.source.filter.prefix");
  const suffix = validateStringMap(p, raw.suffix, "spec.source.filter.suffix");
  if (exact !== undefined) f.exact = exact;
  if (prefix !== undefined) f.prefix = prefix;
  if (suffix !== undefined) f.suffix = suffix;
  return f;
}

function validateDelivery(p: Problems, raw: unknown): DeliverySpec {
  const d = deliveryDefaults;
  if (raw === undefined) return { ...d };
  if (!isRecord(raw)) {
    p.add("spec.delivery", "must be an object like { \"retries\": 3, \"backoff\": \"exponential\" }");
    return { ...d };
  }
  rejectUnknown(p, raw, ["retries", "backoff", "backoffDelayMs", "maxBackoffMs", "concurrency", "ordered", "deadLetter"], "spec.delivery");
  let backoff = d.backoff;
  if (raw.backoff !== undefined) {
    if (raw.backoff === "exponential" || raw.backoff === "linear") backoff = raw.backoff;
    else p.add("spec.delivery.backoff", `${JSON.stringify(raw.backoff)} is not a backoff: use "exponential" or "linear"`);
  }
  const bool = (v: unknown, field: string, fallback: boolean): boolean => {
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") p.add(field, "must be true or false");
    return typeof v === "boolean" ? v : fallback;
  };
  return {
    retries: intIn(p, raw.retries, "spec.delivery.retries", 0, 100, d.retries),
    backoff,
    backoffDelayMs: intIn(p, raw.backoffDelayMs, "spec.delivery.backoffDelayMs", 0, 3_600_000, d.backoffDelayMs, "ms"),
    maxBackoffMs: intIn(p, raw.maxBackoffMs, "spec.delivery.maxBackoffMs", 0, 86_400_000, d.maxBackoffMs, "ms"),
    concurrency: intIn(p, raw.concurrency, "spec.delivery.concurrency", 1, 1000, d.concurrency),
    ordered: bool(raw.ordered, "spec.delivery.ordered", d.ordered),
    deadLetter: bool(raw.deadLetter, "spec.delivery.deadLetter", d.deadLetter),
  };
}

/** Checks a cron expression; set by the cron provider at startup so the model needs no cron library. */
export type CronCheck = (schedule: string, timezone: string) => string | undefined;
let cronCheck: CronCheck = () => undefined;
/** Installs the cron expression checker used by trigger validation. */
export function setCronCheck(check: CronCheck): void {
  cronCheck = check;
}

function validateTriggerSource(p: Problems, raw: unknown): TriggerSource {
  if (!isRecord(raw)) {
    p.add("spec.source", "is required: { \"kind\": \"event\", \"filter\": {...} } or { \"kind\": \"cron\", \"schedule\": \"0 2 * * *\" }");
    return { kind: "http" };
  }
  switch (raw.kind) {
    case "event": {
      rejectUnknown(p, raw, ["kind", "filter", "fromStart"], "spec.source");
      const src: TriggerSource = { kind: "event", filter: validateFilter(p, raw.filter) };
      if (raw.fromStart === true) src.fromStart = true;
      return src;
    }
    case "cron": {
      rejectUnknown(p, raw, ["kind", "schedule", "timezone", "data", "missedFires"], "spec.source");
      const schedule = typeof raw.schedule === "string" ? raw.schedule : "";
      if (schedule === "") p.add("spec.source.schedule", "is required: a cron expression such as \"0 2 * * *\"");
      const timezone = typeof raw.timezone === "string" ? raw.timezone : "UTC";
      if (!isTimeZone(timezone)) p.add("spec.source.timezone", `"${timezone}" is not an IANA time zone: use e.g. "UTC" or "Asia/Tokyo"`);
      else if (schedule !== "") {
        const problem = cronCheck(schedule, timezone);
        if (problem !== undefined) p.add("spec.source.schedule", problem);
      }
      const src: TriggerSource = { kind: "cron", schedule, timezone };
      if (raw.data !== undefined) src.data = raw.data;
      if (raw.missedFires !== undefined) {
        if (raw.missedFires === "skip" || raw.missedFires === "run-once") src.missedFires = raw.missedFires;
        else p.add("spec.source.missedFires", "use \"skip\" or \"run-once\"");
      }
      return src;
    }
    case "http":
      rejectUnknown(p, raw, ["kind"], "spec.source");
      return { kind: "http" };
    default:
      p.add("spec.source.kind", `"${String(raw.kind)}" is not a trigger kind: use "event", "cron" or "http"`);
      return { kind: "http" };
  }
}

/** True when the runtime knows the IANA time zone. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Validates a Trigger as a user sends it and fills in defaults. Throws KUMO_E_VALIDATION. */
export function validateTriggerInput(raw: unknown, namespace: string): { metadata: MetadataInput; spec: TriggerSpec } {
  const p = new Problems();
  if (!isRecord(raw)) {
    p.add("", "the body must be a JSON object with metadata and spec");
    p.throwIfAny("trigger");
  }
  const body = raw as Record<string, unknown>;
  rejectUnknown(p, body, ["apiVersion", "kind", "metadata", "spec", "status"], "");
  if (body.kind !== undefined && body.kind !== "Trigger") p.add("kind", `is ${JSON.stringify(body.kind)}: this endpoint takes kind Trigger`);
  const metadata = validateMetadata(p, body.metadata, namespace, "trigger");
  if (!isRecord(body.spec)) {
    p.add("spec", "is required: { \"function\": \"my-fn\", \"source\": {...} }");
    p.throwIfAny("trigger");
  }
  const s = body.spec as Record<string, unknown>;
  rejectUnknown(p, s, ["function", "source", "delivery"], "spec");
  let fn = "";
  if (typeof s.function !== "string") p.add("spec.function", "is required: the name of the function to invoke");
  else {
    const problem = dnsLabelProblem(s.function, "function name");
    if (problem !== undefined) p.add("spec.function", problem);
    fn = s.function;
  }
  const spec: TriggerSpec = { function: fn, source: validateTriggerSource(p, s.source), delivery: validateDelivery(p, s.delivery) };
  p.throwIfAny("trigger");
  return { metadata, spec };
}
