// `kumo logs <fn>`: invocation records (time, revision, outcome, status, duration, cold start,
// id) with each invocation's log lines beneath it; --follow streams new ones until Ctrl-C.

import type { InvocationEntry } from "../api/index.ts";
import type { InvocationRecord } from "../model/index.ts";
import { booleanFlag, parseWholeNumber, stringFlag } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";
import { formatMs, json } from "./output.ts";

/** One record: a header line, then its error and log lines indented. */
export function formatRecord(r: InvocationRecord): string {
  const delivery = r.trigger !== undefined ? [`trigger=${r.trigger}`, ...(r.eventId !== undefined ? [`event=${r.eventId}`] : [])] : [];
  const head = [r.start, r.revision, r.outcome, String(r.status), formatMs(r.durationMs), ...(r.coldStart ? ["cold"] : []), r.id, ...delivery].join("  ");
  let out = `${head}\n`;
  if (r.error !== undefined && r.error !== "") out += r.error.split("\n").map((l) => `    error: ${l}\n`).join("");
  for (const line of r.logs) {
    const text = line.message.split("\n").join("\n" + " ".repeat(4));
    out += `    +${line.t}ms ${line.level.padEnd(5)} ${text}\n`;
  }
  return out;
}

/** `kumo logs <fn> [--follow] [--limit N] [--revision r]` */
export const logsCommand: Command = {
  name: "logs",
  summary: "Show a function's invocations and their log lines (-f to follow)",
  description:
    "Prints the newest invocation records of a function, oldest first: start time, revision, outcome, HTTP status, duration, " +
    "\"cold\" when the invocation started an instance, the invocation id, and for event deliveries the trigger and event id, then the lines the function logged. " +
    "With --follow it keeps printing new records until Ctrl-C. With -o json the records are a JSON array of { seq, record }, or with --follow one such object per line.",
  args: [{ name: "fn", required: true }],
  flags: {
    follow: { type: "boolean", short: "f", help: "keep printing new invocations until Ctrl-C" },
    limit: { type: "string", value: "<n>", help: "how many recent invocations to show first (default 20, at most 1000)" },
    revision: { type: "string", value: "<revision>", help: "only invocations served by this revision" },
  },
  examples: ["kumo logs hello", "kumo logs hello -f", "kumo logs hello --limit 100 --revision hello-00003 -o json"],
  run: runLogs,
};

async function runLogs(ctx: CommandContext, values: Values, positionals: readonly string[]): Promise<number> {
  const fn = positionals[0]!;
  const limitRaw = stringFlag(values, "limit");
  const limit = limitRaw === undefined ? 20 : parseWholeNumber(limitRaw, "limit", 1, 1000, "logs");
  const revision = stringFlag(values, "revision");
  const show = (e: InvocationEntry): void => {
    if (revision !== undefined && e.record.revision !== revision) return;
    ctx.stdout.write(ctx.output === "json" ? `${JSON.stringify(e)}\n` : formatRecord(e.record));
  };
  if (!booleanFlag(values, "follow", false)) {
    const entries = await ctx.client.listInvocations(ctx.namespace, fn, { limit });
    const shown = revision === undefined ? entries : entries.filter((e) => e.record.revision === revision);
    if (ctx.output === "json") {
      ctx.stdout.write(json(shown));
      return 0;
    }
    if (shown.length === 0) ctx.stderr.write(`No invocations of "${fn}"${revision === undefined ? "" : ` on revision ${revision}`} yet.\n`);
    shown.forEach(show);
    return 0;
  }
  ctx.stderr.write(`Following invocations of "${fn}" (Ctrl-C to stop)…\n`);
  for await (const entry of ctx.client.followInvocations(ctx.namespace, fn, { limit, signal: ctx.signal })) show(entry);
  return 0;
}
