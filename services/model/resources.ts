// Kumo's resources (kumo.dev/v1): Function, Revision, Trigger, and the invocation record.
// They are shaped like Kubernetes objects (metadata/spec/status) so the same objects can live
// in SQLite on one machine and as CRDs in a cluster.

/** The api group and version of every resource. */
export const API_VERSION = "kumo.dev/v1";

/** The resource kinds the Store holds. */
export type Kind = "Function" | "Revision" | "Trigger";

/** Plural names used in REST paths, by kind. */
export const pluralOf: Readonly<Record<Kind, string>> = { Function: "functions", Revision: "revisions", Trigger: "triggers" };

/** Kubernetes-style object metadata. The Store sets uid, resourceVersion, generation and timestamps. */
export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  /** Changes on every write; updates must send the version they read (optimistic concurrency). */
  resourceVersion: string;
  /** Increments when the spec changes (not on status writes). */
  generation: number;
  creationTimestamp: string;
  labels?: Record<string, string>;
  /** Owner (for revisions: the function's name). */
  ownerName?: string;
}

/** A readable status condition, as in Kubernetes. */
export interface Condition {
  type: "Ready" | "Built" | "Loaded";
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
}

/** Where a function runs. */
export type RuntimeKind = "isolate" | "process";

/** Limits enforced on every invocation. */
export interface Limits {
  /** Wall-clock limit per invocation, ms. */
  timeoutMs: number;
  /** Heap limit per instance, MiB. */
  memoryMb: number;
}

/** Autoscaling bounds and targets (see services/autoscaler). */
export interface ScaleSpec {
  min: number;
  max: number;
  /** Target in-flight requests per instance the autoscaler aims for. */
  target: number;
  /** How long without traffic before scaling to zero, seconds. */
  scaleToZeroGraceSeconds: number;
  /** Fraction of `target` to fill before adding an instance (0-1]. */
  targetUtilization?: number;
  /** The autoscaler's stable window, seconds. */
  stableWindowSeconds?: number;
  /** The panic window as a percentage of the stable window. */
  panicWindowPercent?: number;
  /** Panic at this multiple of the ready instances' capacity. */
  panicThreshold?: number;
  /** One decision grows to at most this multiple of the ready instances. */
  maxScaleUpRate?: number;
  /** One decision shrinks to no less than ready / this. */
  maxScaleDownRate?: number;
  /** Instances a new revision starts with. */
  initialScale?: number;
  /** Fewest instances when scaling up from zero. */
  activationScale?: number;
}

/** One entry of a function's traffic split. */
export interface TrafficTarget {
  /** A revision name, or absent for the latest ready revision. */
  revision?: string;
  latestRevision?: boolean;
  percent: number;
  /** Reachable as /{ns}/{fn}@{tag}. */
  tag?: string;
}

/** The source a function is built from: a content-addressed source archive uploaded to the api. */
export interface SourceRef {
  /** sha256:<hex> of the source archive. */
  digest: string;
}

/** What a user asks for. */
export interface FunctionSpec {
  source: SourceRef;
  /** Entry file inside the source, e.g. index.ts. Defaults to the first of index.ts, index.js, index.mjs, package.json "main". */
  entry?: string;
  runtime: RuntimeKind;
  env: Record<string, string>;
  limits: Limits;
  /** In-flight requests one instance admits. */
  concurrency: number;
  /** Scaling overrides; what is left out comes from the server's KUMO_AUTOSCALER_* defaults. */
  scale: Partial<ScaleSpec>;
  traffic?: TrafficTarget[];
}

/** What the platform observed. */
export interface FunctionStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  latestCreatedRevision?: string;
  latestReadyRevision?: string;
  url?: string;
}

/** A deployable function. */
export interface KumoFunction {
  apiVersion: typeof API_VERSION;
  kind: "Function";
  metadata: ObjectMeta;
  spec: FunctionSpec;
  status: FunctionStatus;
}

/** An immutable snapshot of a function's spec and its built artifact. */
export interface RevisionSpec {
  functionName: string;
  /** The function generation this revision was made from. */
  generation: number;
  /** sha256:<hex> of the bundled artifact. */
  artifact: string;
  /** The source archive and entry it was built from (a spec change that keeps them reuses the artifact). */
  sourceDigest: string;
  entry?: string;
  runtime: RuntimeKind;
  env: Record<string, string>;
  limits: Limits;
  concurrency: number;
  scale: Partial<ScaleSpec>;
}

/** Status of a revision. */
export interface RevisionStatus {
  conditions?: Condition[];
}

/** An immutable revision. */
export interface Revision {
  apiVersion: typeof API_VERSION;
  kind: "Revision";
  metadata: ObjectMeta;
  spec: RevisionSpec;
  status: RevisionStatus;
}

/** Exact, prefix and suffix matches on CloudEvents attributes and extensions; all must match. */
export interface EventFilter {
  exact?: Record<string, string>;
  prefix?: Record<string, string>;
  suffix?: Record<string, string>;
}

/** How a trigger delivers: retries, backoff, concurrency, dead letter. */
export interface DeliverySpec {
  retries: number;
  backoff: "exponential" | "linear";
  backoffDelayMs: number;
  maxBackoffMs: number;
  concurrency: number;
  /** Deliver events with the same partition key one at a time, in order. */
  ordered: boolean;
  deadLetter: boolean;
}

/** A trigger's source: an event filter or a cron schedule. */
export type TriggerSource =
  | { kind: "event"; filter: EventFilter; fromStart?: boolean }
  | { kind: "cron"; schedule: string; timezone: string; data?: unknown; missedFires?: "skip" | "run-once" }
  | { kind: "http" };

/** Trigger spec: which function, when, how. */
export interface TriggerSpec {
  function: string;
  source: TriggerSource;
  delivery: DeliverySpec;
}

/** Status of a trigger. */
export interface TriggerStatus {
  conditions?: Condition[];
  /**
   * Bus position from which this trigger receives events: the next offset per partition
   * (partition number as a decimal string) when the dispatcher first saw the trigger.
   */
  startOffsets?: Record<string, string>;
}

/** Fires a function on events or a schedule. */
export interface Trigger {
  apiVersion: typeof API_VERSION;
  kind: "Trigger";
  metadata: ObjectMeta;
  spec: TriggerSpec;
  status: TriggerStatus;
}

/** A resource of any kind. */
export type Resource = KumoFunction | Revision | Trigger;

/** The resource type for a kind. */
export type ResourceOf<K extends Kind> = K extends "Function" ? KumoFunction : K extends "Revision" ? Revision : Trigger;

/** How an invocation ended. */
export type Outcome = "success" | "function_error" | "timeout" | "platform_error";

/** One log line a function wrote. */
export interface LogLine {
  /** ms since the invocation started. */
  t: number;
  level: "debug" | "info" | "warn" | "error";
  message: string;
}

/** The record every invocation leaves. */
export interface InvocationRecord {
  id: string;
  namespace: string;
  function: string;
  revision: string;
  trigger?: string;
  eventId?: string;
  /** ISO time the invocation started. */
  start: string;
  durationMs: number;
  outcome: Outcome;
  status: number;
  coldStart: boolean;
  error?: string;
  logs: LogLine[];
}

/** A fresh condition with the current time. */
export function condition(type: Condition["type"], status: Condition["status"], reason: string, message: string, now: Date): Condition {
  return { type, status, reason, message, lastTransitionTime: now.toISOString() };
}

/** Replaces the condition of the same type, keeping lastTransitionTime if the status did not change. */
export function setCondition(conditions: readonly Condition[] | undefined, next: Condition): Condition[] {
  const out = (conditions ?? []).filter((c) => c.type !== next.type);
  const prev = (conditions ?? []).find((c) => c.type === next.type);
  out.push(prev !== undefined && prev.status === next.status ? { ...next, lastTransitionTime: prev.lastTransitionTime } : next);
  return out;
}

/** The condition of a type, if set. */
export function getCondition(conditions: readonly Condition[] | undefined, type: Condition["type"]): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
