// `kumo traffic <fn> rev=percent…` and `kumo rollback <fn> [revision]`: split a function's traffic
// between its revisions (Knative-style, with tags), each a read-modify-write of spec.traffic that
// retries when someone else wrote the function meanwhile.

import { KumoApiError } from "../api/index.ts";
import type { FunctionManifest, KumoClient, RevisionServing } from "../api/index.ts";
import { dnsLabelProblem, getCondition, KumoError } from "../model/index.ts";
import type { KumoFunction, Revision, TrafficTarget } from "../model/index.ts";
import { booleanFlag, listFlag, parsePair, UsageError } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";
import { sortRevisions } from "./list.ts";
import { json, table } from "./output.ts";

/** How many times a traffic change is retried when the function changed since it was read. */
const CONFLICT_RETRIES = 5;

/** The traffic a function without spec.traffic has: everything to the latest ready revision. */
const ALL_LATEST: readonly TrafficTarget[] = [{ latestRevision: true, percent: 100 }];

/** The revision a command-line reference means: `latest`, `@2`, `00002`, `2` or a full name `hello-00002`. */
export function resolveRevisionRef(ref: string, fn: string, command: string): { latestRevision: true } | { revision: string } {
  if (ref === "latest") return { latestRevision: true };
  const short = /^@?(\d+)$/.exec(ref);
  if (short !== null) {
    const n = Number(short[1]);
    if (n < 1) throw new UsageError(`revision "${ref}" does not exist: revisions count from 1 (${fn}-00001)`, command);
    return { revision: `${fn}-${String(n).padStart(5, "0")}` };
  }
  if (ref.startsWith("@")) throw new UsageError(`revision "${ref}" is not a revision: use @<number> (@2), a full name (${fn}-00002) or latest`, command);
  return { revision: ref };
}

function keyOf(t: TrafficTarget): string {
  return t.latestRevision === true ? "latest" : (t.revision ?? "");
}

/**
 * The traffic split from `rev=percent` arguments and `--tag rev=tag` flags. Percents must add up
 * to 100; a tagged revision without a percent gets 0% (reachable only by its tag URL).
 */
export function parseTraffic(fn: string, args: readonly string[], tags: readonly string[]): TrafficTarget[] {
  const targets: TrafficTarget[] = [];
  const seen = new Map<string, TrafficTarget>();
  for (const raw of args) {
    const eq = raw.lastIndexOf("=");
    if (eq <= 0) throw new UsageError(`"${raw}" is not <revision>=<percent>: e.g. ${fn}-00002=90 latest=10`, "traffic");
    const ref = raw.slice(0, eq);
    const pct = raw.slice(eq + 1).replace(/%$/, "");
    const percent = Number(pct);
    if (pct.trim() === "" || !Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new UsageError(`"${raw}": "${raw.slice(eq + 1)}" is not a percent: use a whole number from 0 to 100`, "traffic");
    }
    const target: TrafficTarget = { ...resolveRevisionRef(ref, fn, "traffic"), percent };
    if (seen.has(keyOf(target))) throw new UsageError(`revision ${keyOf(target)} is given twice: give each revision once`, "traffic");
    seen.set(keyOf(target), target);
    targets.push(target);
  }
  const total = targets.reduce((sum, t) => sum + t.percent, 0);
  if (targets.length > 0 && total !== 100) {
    throw new UsageError(`percents add up to ${total}, not 100 (${targets.map((t) => `${keyOf(t)}=${t.percent}`).join(" ")}): make them add up to 100`, "traffic");
  }
  const used = new Set<string>();
  for (const raw of tags) {
    const [ref, tag] = parsePair(raw, "tag", "=", "traffic");
    const problem = dnsLabelProblem(tag, "tag");
    if (problem !== undefined) throw new UsageError(`--tag "${raw}": ${problem}`, "traffic");
    if (used.has(tag)) throw new UsageError(`--tag "${raw}": tag "${tag}" is used twice: each tag names one revision`, "traffic");
    used.add(tag);
    const resolved: TrafficTarget = { ...resolveRevisionRef(ref, fn, "traffic"), percent: 0 };
    let target = seen.get(keyOf(resolved));
    if (target === undefined) {
      target = resolved;
      seen.set(keyOf(target), target);
      targets.push(target);
    }
    if (target.tag !== undefined) throw new UsageError(`revision ${keyOf(target)} has two tags ("${target.tag}" and "${tag}"): give it one`, "traffic");
    target.tag = tag;
  }
  return targets;
}

/** Throws KUMO_E_REVISION_NOT_FOUND, naming the revisions that exist, for a target revision the function does not have. */
export function assertRevisionsExist(fn: string, targets: readonly TrafficTarget[], revisions: readonly Revision[]): void {
  const names = new Set(revisions.map((r) => r.metadata.name));
  for (const t of targets) {
    if (t.revision === undefined || names.has(t.revision)) continue;
    const have = sortRevisions(revisions).map((r) => r.metadata.name);
    throw new KumoError(
      "KUMO_E_REVISION_NOT_FOUND",
      `function "${fn}" has no revision "${t.revision}": ${have.length === 0 ? "it has no revisions yet" : `it has ${have.join(", ")}`} (see kumo revisions ${fn})`,
    );
  }
}

/** The ready revision before status.latestReadyRevision, by generation; undefined when there is none. */
export function previousRevision(fn: KumoFunction, revisions: readonly Revision[]): Revision | undefined {
  const latest = fn.status.latestReadyRevision;
  if (latest === undefined) return undefined;
  const latestGeneration = revisions.find((r) => r.metadata.name === latest)?.spec.generation ?? Number.POSITIVE_INFINITY;
  return sortRevisions(revisions).find(
    (r) => r.metadata.name !== latest && r.spec.generation < latestGeneration && getCondition(r.status.conditions, "Ready")?.status !== "False",
  );
}

/** A traffic split in one line: `90% hello-00002, 10% latest (hello-00003) tag canary`. */
export function trafficSummary(fn: KumoFunction, traffic: readonly TrafficTarget[] | undefined = fn.spec.traffic): string {
  return (traffic ?? ALL_LATEST).map((t) => `${t.percent}% ${revisionLabel(fn, t)}${t.tag === undefined ? "" : ` tag ${t.tag}`}`).join(", ");
}

function revisionLabel(fn: KumoFunction, t: TrafficTarget): string {
  if (t.latestRevision !== true) return t.revision ?? "?";
  const latest = fn.status.latestReadyRevision;
  return latest === undefined ? "latest" : `latest (${latest})`;
}

/** The URL a tag is served at: the function's URL with `@tag`. */
export function tagUrl(fn: KumoFunction, tag: string): string {
  const base = fn.status.url ?? `/${fn.metadata.namespace}/${fn.metadata.name}`;
  return `${base.replace(/\/+$/, "")}@${tag}`;
}

/** PERCENT, REVISION, TAG, URL: the traffic split, with the URL of each tag. */
export function trafficTable(fn: KumoFunction): string {
  return table(
    ["PERCENT", "REVISION", "TAG", "URL"],
    (fn.spec.traffic ?? ALL_LATEST).map((t) => [`${t.percent}%`, revisionLabel(fn, t), t.tag ?? "-", t.tag === undefined ? "-" : tagUrl(fn, t.tag)]),
  );
}

/** Percent of traffic per revision name (latest resolved to status.latestReadyRevision). */
export function trafficByRevision(fn: KumoFunction): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of fn.spec.traffic ?? ALL_LATEST) {
    const name = t.latestRevision === true ? fn.status.latestReadyRevision : t.revision;
    if (name !== undefined) out.set(name, (out.get(name) ?? 0) + t.percent);
  }
  return out;
}

/**
 * REVISION, TRAFFIC, INSTANCES, IN-FLIGHT, QUEUED, DESIRED: each revision that takes traffic or has
 * instances, newest first. "-" means the server reported nothing for that revision.
 */
export function servingTable(fn: KumoFunction, serving: readonly RevisionServing[]): string {
  const traffic = trafficByRevision(fn);
  const byName = new Map(serving.map((s) => [s.revision, s]));
  const names = [...new Set([...traffic.keys(), ...byName.keys()])].sort((a, b) => b.localeCompare(a));
  return table(
    ["REVISION", "TRAFFIC", "INSTANCES", "IN-FLIGHT", "QUEUED", "DESIRED"],
    names.map((name) => {
      const s = byName.get(name);
      const pct = `${traffic.get(name) ?? 0}%`;
      if (s === undefined) return [name, pct, "-", "-", "-", "-"];
      return [name, pct, `${s.instances}${s.starting > 0 ? ` (+${s.starting} starting)` : ""}`, String(s.inflight), String(s.queued), String(s.desired)];
    }),
  );
}

/**
 * Reads the function and its revisions, computes the new traffic, and writes it with the
 * resourceVersion it read; on a conflict it reads again and recomputes.
 */
export async function updateTraffic(
  client: KumoClient,
  namespace: string,
  name: string,
  compute: (fn: KumoFunction, revisions: readonly Revision[]) => TrafficTarget[],
): Promise<{ before: KumoFunction; after: KumoFunction }> {
  for (let attempt = 1; ; attempt++) {
    const [before, revisions] = await Promise.all([client.getFunction(namespace, name), client.listRevisions(namespace, { function: name })]);
    const traffic = compute(before, revisions);
    const manifest: FunctionManifest = {
      metadata: { name, resourceVersion: before.metadata.resourceVersion, ...(before.metadata.labels === undefined ? {} : { labels: before.metadata.labels }) },
      spec: { ...before.spec, traffic },
    };
    try {
      return { before, after: await client.replaceFunction(namespace, manifest) };
    } catch (err) {
      if (!(err instanceof KumoApiError && err.code === "KUMO_E_CONFLICT") || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

/** `kumo traffic <fn> [rev=percent…] [--tag rev=tag…] [--latest]` */
export const trafficCommand: Command = {
  name: "traffic",
  summary: "Split a function's traffic between revisions, with tags; --latest resets it",
  description:
    "Sets how a function's requests are split between its revisions. Name revisions in full (hello-00002), by number (@2 or 00002), " +
    "or as latest (the latest ready revision, which follows new deploys); percents must add up to 100. " +
    "--tag rev=tag also serves that revision at <url>@<tag> (a tagged revision without a percent gets 0% of the untagged traffic). " +
    "--latest sends everything to the latest ready revision again. Without arguments it shows the current split.",
  args: [
    { name: "fn", required: true },
    { name: "rev=percent", required: false, variadic: true },
  ],
  flags: {
    tag: { type: "string", multiple: true, value: "rev=tag", help: "serve the revision at <url>@<tag> as well" },
    latest: { type: "boolean", help: "send 100% to the latest ready revision (and drop tags)" },
  },
  examples: ["kumo traffic hello @1=90 @2=10", "kumo traffic hello hello-00002=50 latest=50 --tag latest=canary", "kumo traffic hello --latest", "kumo traffic hello"],
  run: async (ctx: CommandContext, values: Values, positionals: readonly string[]) => {
    const name = positionals[0]!;
    const args = positionals.slice(1);
    const tags = listFlag(values, "tag");
    const latest = booleanFlag(values, "latest", false);
    if (latest && (args.length > 0 || tags.length > 0)) throw new UsageError("--latest sends all traffic to the latest revision: drop the rev=percent arguments and --tag", "traffic");
    if (!latest && args.length === 0 && tags.length === 0) {
      const fn = await ctx.client.getFunction(ctx.namespace, name);
      ctx.stdout.write(ctx.output === "json" ? json(fn.spec.traffic ?? ALL_LATEST) : trafficTable(fn));
      return 0;
    }
    if (!latest && args.length === 0) throw new UsageError("--tag needs a traffic split too: give every revision's percent, e.g. latest=100 --tag @2=previous", "traffic");
    const wanted = latest ? [...ALL_LATEST] : parseTraffic(name, args, tags);
    const { after } = await updateTraffic(ctx.client, ctx.namespace, name, (_fn, revisions) => {
      assertRevisionsExist(name, wanted, revisions);
      return wanted.map((t) => ({ ...t }));
    });
    if (ctx.output === "json") ctx.stdout.write(json(after));
    else ctx.stdout.write(`Traffic of "${name}" is now:\n${trafficTable(after)}`);
    return 0;
  },
};

/** `kumo rollback <fn> [revision]` */
export const rollbackCommand: Command = {
  name: "rollback",
  summary: "Send all of a function's traffic to an earlier revision",
  description:
    "Routes 100% of the function's traffic to the given revision or, without one, to the ready revision before the latest ready one. " +
    "The function then stays on that revision: new deploys build but take no traffic until `kumo traffic <fn> --latest`.",
  args: [
    { name: "fn", required: true },
    { name: "revision", required: false },
  ],
  flags: {},
  examples: ["kumo rollback hello", "kumo rollback hello @1", "kumo rollback hello hello-00003"],
  run: async (ctx: CommandContext, _values: Values, positionals: readonly string[]) => {
    const name = positionals[0]!;
    const ref = positionals[1];
    const explicit = ref === undefined ? undefined : resolveRevisionRef(ref, name, "rollback");
    const { before, after } = await updateTraffic(ctx.client, ctx.namespace, name, (fn, revisions) => {
      if (explicit !== undefined) {
        const target: TrafficTarget = { ...explicit, percent: 100 };
        assertRevisionsExist(name, [target], revisions);
        return [target];
      }
      const latest = fn.status.latestReadyRevision;
      if (latest === undefined) throw new KumoError("KUMO_E_FUNCTION_NOT_READY", `function "${name}" has no ready revision yet: there is nothing to roll back`);
      const previous = previousRevision(fn, revisions);
      if (previous === undefined) throw new KumoError("KUMO_E_REVISION_NOT_FOUND", `function "${name}" has no ready revision before ${latest}: there is nothing to roll back to`);
      return [{ revision: previous.metadata.name, percent: 100 }];
    });
    if (ctx.output === "json") ctx.stdout.write(json(after));
    else {
      const to = trafficSummary(after);
      ctx.stdout.write(`Rolled back "${name}": ${to} (was ${trafficSummary(before)}).\n`);
      if (after.spec.traffic?.some((t) => t.latestRevision === true) !== true) {
        ctx.stdout.write(`New deploys of "${name}" take no traffic until: kumo traffic ${name} --latest\n`);
      }
    }
    return 0;
  },
};
