// `kumo deploy <dir>`: packs a function folder, uploads it, creates or replaces the Function,
// and waits until the controller reports the new generation Ready (or why it is not).

import { readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KumoApiError } from "../api/index.ts";
import type { FunctionManifest, KumoClient } from "../api/index.ts";
import { dnsLabelProblem, getCondition, KumoError } from "../model/index.ts";
import type { FunctionSpec, KumoFunction } from "../model/index.ts";
import { booleanFlag, listFlag, parseDuration, parsePairs, parseWholeNumber, stringFlag, UsageError } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";
import { formatBytes, json, shortDigest } from "./output.ts";

/** How often deploy re-reads the function while it waits, ms. */
const POLL_MS = 50; // a GET on the local api costs well under a millisecond
/** How many times a create-or-replace is retried when someone else wrote the function meanwhile. */
const CONFLICT_RETRIES = 5;

/** `kumo deploy <dir> [flags]` */
export const deployCommand: Command = {
  name: "deploy",
  summary: "Build and deploy a function folder, and wait until it is ready",
  description:
    "Packs the folder, uploads it, and creates the function (or replaces its spec), then waits until the new revision is Ready " +
    "and prints its URL. When the build fails it prints the builder's message (file and line) and exits 1. " +
    "On a redeploy, settings whose flags are left out keep their current values; --env replaces the whole environment.",
  args: [{ name: "dir", required: true }],
  flags: {
    name: { type: "string", value: "<fn>", help: "function name (default: package.json name or the folder name, made a DNS-1123 label)" },
    runtime: { type: "string", value: "isolate|process", help: "where it runs (default isolate)" },
    env: { type: "string", multiple: true, value: "K=V", help: "environment variable for the function" },
    entry: { type: "string", value: "<file>", help: "entry file in the folder (default index.ts, index.js, index.mjs or package.json main)" },
    timeout: { type: "string", value: "<duration>", help: "time limit per invocation: 500ms, 30s, 2m (a bare number is ms; default 30s)" },
    memory: { type: "string", value: "<MiB>", help: "memory limit per instance in MiB (default 128)" },
    concurrency: { type: "string", value: "<n>", help: "requests one instance serves at once (default 100)" },
    "min-scale": { type: "string", value: "<n>", help: "instances kept warm (default 0: scale to zero)" },
    "max-scale": { type: "string", value: "<n>", help: "most instances (default 10)" },
    wait: { type: "boolean", negatable: true, help: "return once the function is stored, without waiting for it to be ready" },
    "wait-timeout": { type: "string", value: "<duration>", help: "how long to wait for ready (default 120s)" },
  },
  examples: [
    "kumo deploy ./hello",
    "kumo deploy ./vm-inventory --name vm-inventory --env CMDB_URL=http://cmdb.internal --timeout 10s",
    "kumo deploy . --runtime process --memory 256 --min-scale 1 --no-wait",
  ],
  run: runDeploy,
};

/** Spec fields the flags set; anything absent keeps its current (or default) value. */
export interface SpecFlags {
  runtime?: FunctionSpec["runtime"];
  env?: Record<string, string>;
  entry?: string;
  timeoutMs?: number;
  memoryMb?: number;
  concurrency?: number;
  minScale?: number;
  maxScale?: number;
}

/** Reads the spec flags, reporting the first bad one as a usage error. */
export function specFlags(values: Values): SpecFlags {
  const out: SpecFlags = {};
  const runtime = stringFlag(values, "runtime");
  if (runtime !== undefined) {
    if (runtime !== "isolate" && runtime !== "process") throw new UsageError(`--runtime "${runtime}" is not a runtime: use isolate or process`, "deploy");
    out.runtime = runtime;
  }
  const env = listFlag(values, "env");
  if (env.length > 0) out.env = parsePairs(env, "env", "deploy");
  const entry = stringFlag(values, "entry");
  if (entry !== undefined) out.entry = entry;
  const timeout = stringFlag(values, "timeout");
  if (timeout !== undefined) out.timeoutMs = parseDuration(timeout, "timeout", "deploy");
  const memory = stringFlag(values, "memory");
  if (memory !== undefined) out.memoryMb = parseWholeNumber(memory, "memory", 1, 1_000_000, "deploy");
  const concurrency = stringFlag(values, "concurrency");
  if (concurrency !== undefined) out.concurrency = parseWholeNumber(concurrency, "concurrency", 1, 1_000_000, "deploy");
  const min = stringFlag(values, "min-scale");
  if (min !== undefined) out.minScale = parseWholeNumber(min, "min-scale", 0, 1_000_000, "deploy");
  const max = stringFlag(values, "max-scale");
  if (max !== undefined) out.maxScale = parseWholeNumber(max, "max-scale", 0, 1_000_000, "deploy");
  return out;
}

/** The spec to send: the current one (if any) with the new source and the flags applied. */
export function mergeSpec(current: FunctionSpec | undefined, digest: string, flags: SpecFlags): FunctionManifest["spec"] {
  const spec: FunctionManifest["spec"] = { ...current, source: { digest } };
  if (flags.runtime !== undefined) spec.runtime = flags.runtime;
  if (flags.env !== undefined) spec.env = flags.env;
  if (flags.entry !== undefined) spec.entry = flags.entry;
  if (flags.concurrency !== undefined) spec.concurrency = flags.concurrency;
  if (flags.timeoutMs !== undefined || flags.memoryMb !== undefined) {
    spec.limits = { ...current?.limits, ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }), ...(flags.memoryMb === undefined ? {} : { memoryMb: flags.memoryMb }) };
  }
  if (flags.minScale !== undefined || flags.maxScale !== undefined) {
    spec.scale = { ...current?.scale, ...(flags.minScale === undefined ? {} : { min: flags.minScale }), ...(flags.maxScale === undefined ? {} : { max: flags.maxScale }) };
  }
  return spec;
}

/** Makes a DNS-1123 label out of a folder or package name ("" when nothing usable is left). */
export function sanitizeName(raw: string): string {
  return raw
    .replace(/^@[^/]+\//, "")
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .slice(0, 63)
    .replace(/^-+|-+$/g, "");
}

/** The function name: --name, else package.json's name, else the folder's, made a label (with a note if changed). */
export async function chooseName(dir: string, explicit: string | undefined): Promise<{ name: string; note?: string }> {
  if (explicit !== undefined) {
    const problem = dnsLabelProblem(explicit, "function name");
    if (problem !== undefined) throw new KumoError("KUMO_E_VALIDATION", `--name: ${problem}`);
    return { name: explicit };
  }
  let from = path.basename(dir);
  let what = "folder";
  try {
    const pkg: unknown = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
    if (typeof pkg === "object" && pkg !== null && typeof (pkg as { name?: unknown }).name === "string" && (pkg as { name: string }).name !== "") {
      from = (pkg as { name: string }).name;
      what = "package.json name";
    }
  } catch {
    // No (readable) package.json: the folder name it is.
  }
  const name = sanitizeName(from);
  if (name === "") throw new UsageError(`cannot make a function name out of the ${what} "${from}": pass --name`, "deploy");
  if (name === from) return { name };
  return { name, note: `Using function name "${name}" (from the ${what} "${from}"; names are DNS-1123 labels, pass --name to choose another)` };
}

async function getFunction(client: KumoClient, ns: string, name: string): Promise<KumoFunction | undefined> {
  try {
    return await client.getFunction(ns, name);
  } catch (err) {
    if (err instanceof KumoApiError && err.code === "KUMO_E_FUNCTION_NOT_FOUND") return undefined;
    throw err;
  }
}

/** Creates or replaces the function; on a conflict (someone wrote it meanwhile) reads it again and retries. */
async function apply(client: KumoClient, ns: string, name: string, digest: string, flags: SpecFlags): Promise<{ fn: KumoFunction; created: boolean }> {
  for (let attempt = 1; ; attempt++) {
    const current = await getFunction(client, ns, name);
    try {
      if (current === undefined) {
        return { fn: await client.createFunction(ns, { metadata: { name }, spec: mergeSpec(undefined, digest, flags) }), created: true };
      }
      const manifest: FunctionManifest = {
        metadata: { name, resourceVersion: current.metadata.resourceVersion, ...(current.metadata.labels === undefined ? {} : { labels: current.metadata.labels }) },
        spec: mergeSpec(current.spec, digest, flags),
      };
      return { fn: await client.replaceFunction(ns, manifest), created: false };
    } catch (err) {
      const lostRace = err instanceof KumoApiError && (err.code === "KUMO_E_CONFLICT" || err.code === "KUMO_E_ALREADY_EXISTS");
      if (!lostRace || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

async function runDeploy(ctx: CommandContext, values: Values, positionals: readonly string[]): Promise<number> {
  const started = performance.now();
  const shown = positionals[0]!;
  const dir = path.resolve(ctx.cwd, shown);
  const flags = specFlags(values);
  const wait = booleanFlag(values, "wait", true);
  const waitTimeoutMs = parseDuration(stringFlag(values, "wait-timeout") ?? "120s", "wait-timeout", "deploy");
  const { name, note } = await chooseName(dir, stringFlag(values, "name"));
  const progress = (line: string): void => {
    ctx.stderr.write(`${line}\n`);
  };
  if (note !== undefined) progress(note);

  const { packSource, digestOf } = await import("../builder/index.ts");
  const packed = await packSource(dir);
  progress(`Packing ${shown}: ${packed.files} file${packed.files === 1 ? "" : "s"}, ${formatBytes(packed.totalBytes)}`);
  progress(`Uploading source ${shortDigest(digestOf(packed.bytes))} (${formatBytes(packed.bytes.byteLength)})`);
  const { digest } = await ctx.client.uploadSource(ctx.namespace, packed.bytes);
  const { fn, created } = await apply(ctx.client, ctx.namespace, name, digest, flags);
  if (!wait) {
    if (ctx.output === "json") ctx.stdout.write(json(fn));
    else ctx.stdout.write(`Function "${name}" ${created ? "created" : "updated"} (generation ${fn.metadata.generation}); not waiting for it to be ready: see \`kumo describe ${name}\`\nURL: ${fn.status.url ?? "-"}\n`);
    return 0;
  }
  progress("Building revision…");
  const result = await waitForReady(ctx, name, fn.metadata.generation, waitTimeoutMs);
  const ms = Math.round(performance.now() - started);
  if (result.ready) {
    if (ctx.output === "json") ctx.stdout.write(json(result.fn));
    else ctx.stdout.write(`Ready: revision ${result.fn.status.latestReadyRevision ?? "?"} (${ms} ms)\nURL: ${result.fn.status.url ?? "-"}\n`);
    return 0;
  }
  if (ctx.output === "json") ctx.stdout.write(json(result.fn));
  ctx.stderr.write(`error: ${result.why}\n`);
  return 1;
}

type WaitResult = { ready: true; fn: KumoFunction } | { ready: false; fn: KumoFunction | undefined; why: string };

/** Polls the function until the controller has seen `generation` and set Ready to True or False. */
async function waitForReady(ctx: CommandContext, name: string, generation: number, timeoutMs: number): Promise<WaitResult> {
  const deadline = performance.now() + timeoutMs;
  let last: KumoFunction | undefined;
  for (;;) {
    last = await ctx.client.getFunction(ctx.namespace, name);
    const observed = last.status.observedGeneration ?? 0;
    const ready = getCondition(last.status.conditions, "Ready");
    if (observed >= generation && ready !== undefined) {
      if (ready.status === "True") return { ready: true, fn: last };
      if (ready.status === "False") return { ready: false, fn: last, why: `function "${name}" is not ready: ${ready.reason}: ${ready.message}` };
    }
    if (performance.now() >= deadline) {
      const state = ready === undefined ? "no Ready condition yet" : `Ready is ${ready.status} (${ready.reason}: ${ready.message})`;
      const seen = observed >= generation ? "" : ` and the controller has not seen generation ${generation} yet (observed ${observed})`;
      return { ready: false, fn: last, why: `function "${name}" was not ready after ${Math.round(timeoutMs / 1000)}s: ${state}${seen}; see \`kumo describe ${name}\`, or wait longer with --wait-timeout` };
    }
    await sleep(POLL_MS, undefined, { signal: ctx.signal });
  }
}
