// `kumo describe <fn>`: everything about one function: its spec, status conditions with their
// full messages (a build error shows file and line), traffic, instances per revision, revisions,
// URL and recent invocations.

import { KumoApiError } from "../api/index.ts";
import type { InvocationEntry, KumoClient, RevisionServing } from "../api/index.ts";
import type { KumoFunction, Outcome, Revision, ScaleSpec } from "../model/index.ts";
import type { Command, CommandContext } from "./command.ts";
import { sortRevisions } from "./list.ts";
import { conditionsSection, fields, formatAge, formatMs, indent, json, table } from "./output.ts";
import { servingTable, trafficSummary, trafficTable } from "./traffic.ts";

/** How many recent invocations describe counts. */
const RECENT = 100;

/** Counts of recent invocations by outcome. */
export interface InvocationSummary {
  total: number;
  byOutcome: Record<Outcome, number>;
  coldStarts: number;
  /** Median duration, ms (undefined with no invocations). */
  p50Ms?: number;
  last?: string;
}

/** Summarises invocation records. */
export function summarize(entries: readonly InvocationEntry[]): InvocationSummary {
  const byOutcome: Record<Outcome, number> = { success: 0, function_error: 0, timeout: 0, platform_error: 0 };
  let coldStarts = 0;
  for (const { record } of entries) {
    byOutcome[record.outcome]++;
    if (record.coldStart) coldStarts++;
  }
  const out: InvocationSummary = { total: entries.length, byOutcome, coldStarts };
  if (entries.length > 0) {
    const durations = entries.map((e) => e.record.durationMs).sort((a, b) => a - b);
    out.p50Ms = durations[Math.floor((durations.length - 1) / 2)]!;
    out.last = entries[entries.length - 1]!.record.start;
  }
  return out;
}


/** The scale settings; those left out follow the server's autoscaler defaults. */
export function scaleText(scale: Partial<ScaleSpec>): string {
  const or = (v: number | undefined, unit = ""): string => (v === undefined ? "server default" : `${v}${unit}`);
  const text = `min ${or(scale.min)}, max ${or(scale.max)}, target ${or(scale.target)} in flight per instance, to zero after ${or(scale.scaleToZeroGraceSeconds, "s")} idle`;
  return Object.keys(scale).length === 0 ? "server defaults" : text;
}

/** The human description of a function; `serving` is what the server reports per revision. */
export function describeText(fn: KumoFunction, revisions: readonly Revision[], invocations: InvocationSummary, now: number, serving: readonly RevisionServing[] = []): string {
  const s = fn.spec;
  const env = Object.keys(s.env);
  const traffic = trafficSummary(fn);
  const rows: [string, string][] = [
    ["Name", fn.metadata.name],
    ["Namespace", fn.metadata.namespace],
    ["URL", fn.status.url ?? "-"],
    ["Created", `${fn.metadata.creationTimestamp} (${formatAge(fn.metadata.creationTimestamp, now)} ago)`],
    ["Generation", `${fn.metadata.generation} (observed ${fn.status.observedGeneration ?? "none yet"})`],
    ["Source", s.source.digest],
    ["Entry", s.entry ?? "(default: index.ts, index.js, index.mjs or package.json main)"],
    ["Runtime", s.runtime],
    ["Limits", `timeout ${s.limits.timeoutMs} ms, memory ${s.limits.memoryMb} MiB`],
    ["Concurrency", `${s.concurrency} requests per instance`],
    ["Scale", scaleText(s.scale)],
    ["Env", env.length === 0 ? "(none)" : env.join(", ")],
    ["Traffic", traffic],
    ["Latest ready", fn.status.latestReadyRevision ?? "-"],
    ["Latest created", fn.status.latestCreatedRevision ?? "-"],
  ];
  let out = fields(rows);
  out += conditionsSection(fn.status.conditions, now, "(none yet: the controller has not reconciled this function)");

  out += "\nTraffic:\n";
  out += indent(trafficTable(fn), 2);

  out += "\nServing:\n";
  out += indent(servingTable(fn, serving), 2);

  out += "\nRevisions:\n";
  const sorted = sortRevisions(revisions);
  if (sorted.length === 0) out += "  (none yet)\n";
  else {
    const t = table(
      ["NAME", "GENERATION", "ARTIFACT", "CREATED"],
      sorted.map((r) => [r.metadata.name, String(r.spec.generation), r.spec.artifact, r.metadata.creationTimestamp]),
    );
    out += indent(t, 2);
    // A revision whose instances failed to start says why (the pool stops retrying).
    for (const r of sorted) {
      const ready = r.status.conditions?.find((c) => c.type === "Ready");
      if (ready?.status === "False") out += `  ${r.metadata.name}: ${ready.reason}: ${ready.message}\n`;
    }
  }

  out += `\nInvocations (last ${RECENT}):\n`;
  if (invocations.total === 0) out += "  (none yet)\n";
  else {
    const o = invocations.byOutcome;
    out += `  ${invocations.total} total: ${o.success} success, ${o.function_error} function_error, ${o.timeout} timeout, ${o.platform_error} platform_error\n`;
    out += `  ${invocations.coldStarts} cold start${invocations.coldStarts === 1 ? "" : "s"}, median ${formatMs(invocations.p50Ms ?? 0)}, last at ${invocations.last ?? "-"}\n`;
  }
  return out;
}

/** `kumo describe <fn>` */
export const describeCommand: Command = {
  name: "describe",
  summary: "Show a function's spec, status (with build errors), traffic, instances, revisions and recent invocations",
  description:
    "Shows everything about one function: its spec, its status conditions with their full messages (a failed build names the file and line), " +
    "its traffic split with the URL of each tag, instances, in-flight and queued requests per revision, " +
    `its revisions with their artifact digests, its URL and counts of its last ${RECENT} invocations.`,
  args: [{ name: "fn", required: true }],
  flags: {},
  examples: ["kumo describe hello", "kumo describe hello -o json"],
  run: async (ctx: CommandContext, _values, positionals) => {
    const name = positionals[0]!;
    const fn = await ctx.client.getFunction(ctx.namespace, name);
    const [revisions, entries, serving] = await Promise.all([
      ctx.client.listRevisions(ctx.namespace, { function: name }),
      ctx.client.listInvocations(ctx.namespace, name, { limit: RECENT }),
      servingOf(ctx.client, ctx.namespace, name),
    ]);
    const summary = summarize(entries);
    if (ctx.output === "json") ctx.stdout.write(json({ function: fn, revisions: sortRevisions(revisions), invocations: summary, serving }));
    else ctx.stdout.write(describeText(fn, revisions, summary, ctx.now(), serving));
    return 0;
  },
};

/** Instances per revision; an older server without the serving endpoint reports none. */
async function servingOf(client: KumoClient, namespace: string, name: string): Promise<RevisionServing[]> {
  try {
    return await client.getServing(namespace, name);
  } catch (err) {
    if (err instanceof KumoApiError && err.code === "KUMO_E_NOT_FOUND") return [];
    throw err;
  }
}
