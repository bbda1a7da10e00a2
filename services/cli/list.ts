// `kumo list`, `kumo revisions <fn>` and `kumo delete <fn>`: the short resource commands.

import { getCondition } from "../model/index.ts";
import type { KumoFunction, Revision } from "../model/index.ts";
import type { Command, CommandContext } from "./command.ts";
import { formatAge, json, shortDigest, table } from "./output.ts";

/** The rows of `kumo list`: NAME, READY, REVISION, RUNTIME, URL, AGE. */
export function functionTable(fns: readonly KumoFunction[], now: number): string {
  return table(
    ["NAME", "READY", "REVISION", "RUNTIME", "URL", "AGE"],
    fns.map((f) => [
      f.metadata.name,
      readiness(f),
      f.status.latestReadyRevision ?? "-",
      f.spec.runtime,
      f.status.url ?? "-",
      formatAge(f.metadata.creationTimestamp, now),
    ]),
  );
}

/** True / False / Unknown from the Ready condition; Unknown while the controller has not caught up. */
export function readiness(f: KumoFunction): string {
  const ready = getCondition(f.status.conditions, "Ready");
  if (ready === undefined) return "Unknown";
  if ((f.status.observedGeneration ?? 0) < f.metadata.generation) return "Unknown";
  return ready.status;
}

/** `kumo list` */
export const listCommand: Command = {
  name: "list",
  summary: "List functions: ready, revision, runtime, URL, age",
  description: "Lists the functions in the namespace with whether they are ready, their latest ready revision, runtime, URL and age.",
  args: [],
  flags: {},
  examples: ["kumo list", "kumo list -n prod -o json"],
  run: async (ctx: CommandContext) => {
    const fns = await ctx.client.listFunctions(ctx.namespace);
    if (ctx.output === "json") ctx.stdout.write(json(fns));
    else if (fns.length === 0) ctx.stdout.write(`No functions in namespace "${ctx.namespace}". Deploy one with: kumo deploy <dir>\n`);
    else ctx.stdout.write(functionTable(fns, ctx.now()));
    return 0;
  },
};

/** The rows of `kumo revisions`: NAME, GENERATION, ARTIFACT, RUNTIME, READY, AGE; the serving one is marked. */
export function revisionTable(revisions: readonly Revision[], latestReady: string | undefined, now: number): string {
  return table(
    ["NAME", "GENERATION", "ARTIFACT", "RUNTIME", "READY", "AGE"],
    revisions.map((r) => [
      r.metadata.name === latestReady ? `${r.metadata.name} *` : r.metadata.name,
      String(r.spec.generation),
      shortDigest(r.spec.artifact),
      r.spec.runtime,
      getCondition(r.status.conditions, "Ready")?.status ?? "-",
      formatAge(r.metadata.creationTimestamp, now),
    ]),
  );
}

/** `kumo revisions <fn>` */
export const revisionsCommand: Command = {
  name: "revisions",
  summary: "List a function's revisions (* marks the latest ready one)",
  description: "Lists the immutable revisions of a function, one per deployed change, with the artifact each was built into.",
  args: [{ name: "fn", required: true }],
  flags: {},
  examples: ["kumo revisions hello"],
  run: async (ctx: CommandContext, _values, positionals) => {
    const name = positionals[0]!;
    const fn = await ctx.client.getFunction(ctx.namespace, name);
    const revisions = sortRevisions(await ctx.client.listRevisions(ctx.namespace, { function: name }));
    if (ctx.output === "json") ctx.stdout.write(json(revisions));
    else if (revisions.length === 0) ctx.stdout.write(`Function "${name}" has no revisions yet: its first build has not finished (kumo describe ${name})\n`);
    else ctx.stdout.write(revisionTable(revisions, fn.status.latestReadyRevision, ctx.now()));
    return 0;
  },
};

/** Revisions newest first. */
export function sortRevisions(revisions: readonly Revision[]): Revision[] {
  return [...revisions].sort((a, b) => b.spec.generation - a.spec.generation || b.metadata.name.localeCompare(a.metadata.name));
}

/** `kumo delete <fn>` */
export const deleteCommand: Command = {
  name: "delete",
  summary: "Delete a function with its revisions and triggers",
  description: "Deletes the function, its revisions and its triggers. Its URL stops answering once the server has drained in-flight requests.",
  args: [{ name: "fn", required: true }],
  flags: {},
  examples: ["kumo delete hello", "kumo delete hello -n staging"],
  run: async (ctx: CommandContext, _values, positionals) => {
    const name = positionals[0]!;
    const deleted = await ctx.client.deleteFunction(ctx.namespace, name);
    if (ctx.output === "json") ctx.stdout.write(json(deleted));
    else ctx.stdout.write(`Deleted function "${name}" from namespace "${ctx.namespace}", with its revisions and triggers.\n`);
    return 0;
  },
};
