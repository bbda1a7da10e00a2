// `kumo trigger create|list|describe|delete`: triggers that fire a function on events (CloudEvents
// filters, OpenStack shorthands) or on a cron schedule, with their delivery settings.

import type { TriggerManifest } from "../api/index.ts";
import { getCondition } from "../model/index.ts";
import type { DeliverySpec, EventFilter, Trigger, TriggerSource } from "../model/index.ts";
import { booleanFlag, listFlag, parseDuration, parsePair, parseWholeNumber, readDataFlag, stringFlag, UsageError } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext, CommandGroup } from "./command.ts";
import { conditionsSection, fields, formatAge, formatMs, indent, json, table } from "./output.ts";
import { openstackShorthands, shorthandTable } from "./shorthands.ts";

const CREATE = "trigger create";
const ATTRIBUTE = /^[a-z0-9]{1,20}$/;

/** The flags that make a trigger an event trigger. */
const EVENT_FLAGS = ["event-type", "on", "filter", "filter-prefix", "filter-suffix", "source", "project", "host", "from-start"] as const;
/** The flags only a cron trigger takes. */
const CRON_FLAGS = ["timezone", "data", "missed"] as const;

function given(values: Values, name: string): boolean {
  const v = values[name];
  return v !== undefined && !(Array.isArray(v) && v.length === 0);
}

/** Sets one filter attribute, refusing two flags that disagree about it. */
function setAttribute(map: Record<string, string>, attr: string, value: string, flag: string, kind: string): void {
  const current = map[attr];
  if (current !== undefined && current !== value) {
    throw new UsageError(`${flag} wants ${kind} ${attr}="${value}" but another flag already asks for "${current}": give one`, CREATE);
  }
  map[attr] = value;
}

function filterPairs(values: Values, flag: string, kind: string, into: Record<string, string>): void {
  for (const raw of listFlag(values, flag)) {
    const [attr, value] = parsePair(raw, flag, "=", CREATE);
    if (!ATTRIBUTE.test(attr)) {
      throw new UsageError(`--${flag} "${raw}": "${attr}" is not a CloudEvents attribute name: use 1-20 lowercase letters and digits (type, source, subject, openstackproject, …)`, CREATE);
    }
    setAttribute(into, attr, value, `--${flag}`, kind);
  }
}

/** The event type for an `--on` shorthand; unknown ones are a usage error that lists them all. */
export function shorthandType(on: string): string {
  const type = openstackShorthands[on];
  if (type === undefined) throw new UsageError(`--on "${on}" is not an OpenStack shorthand; they are:\n${shorthandTable().trimEnd()}`, CREATE);
  return type;
}

function eventSource(values: Values): TriggerSource {
  const exact: Record<string, string> = {};
  const prefix: Record<string, string> = {};
  const suffix: Record<string, string> = {};
  filterPairs(values, "filter", "exact", exact);
  filterPairs(values, "filter-prefix", "prefix", prefix);
  filterPairs(values, "filter-suffix", "suffix", suffix);
  const eventType = stringFlag(values, "event-type");
  const on = stringFlag(values, "on");
  if (eventType !== undefined && on !== undefined) throw new UsageError("give --event-type or --on, not both: --on is a shorthand for an OpenStack event type", CREATE);
  if (eventType !== undefined) setAttribute(exact, "type", eventType, "--event-type", "exact");
  if (on !== undefined) setAttribute(exact, "type", shorthandType(on), "--on", "exact");
  const source = stringFlag(values, "source");
  if (source !== undefined) setAttribute(exact, "source", source, "--source", "exact");
  const project = stringFlag(values, "project");
  if (project !== undefined) setAttribute(exact, "openstackproject", project, "--project", "exact");
  const host = stringFlag(values, "host");
  if (host !== undefined) {
    if (host === "" || host.includes("/")) throw new UsageError(`--host "${host}" is not a host name: give the publisher host, as in source openstack/<service>/<host>`, CREATE);
    // OpenStack events have source openstack/<service>/<host>.
    setAttribute(suffix, "source", `/${host}`, "--host", "suffix");
  }
  const filter: EventFilter = {};
  if (Object.keys(exact).length > 0) filter.exact = exact;
  if (Object.keys(prefix).length > 0) filter.prefix = prefix;
  if (Object.keys(suffix).length > 0) filter.suffix = suffix;
  return booleanFlag(values, "from-start", false) ? { kind: "event", filter, fromStart: true } : { kind: "event", filter };
}

async function cronSource(values: Values, schedule: string, cwd: string): Promise<TriggerSource> {
  const source: TriggerSource = { kind: "cron", schedule, timezone: stringFlag(values, "timezone") ?? "UTC" };
  const data = stringFlag(values, "data");
  if (data !== undefined) source.data = (await readDataFlag(data, "data", CREATE, cwd)).data;
  const missed = stringFlag(values, "missed");
  if (missed !== undefined) {
    if (missed !== "skip" && missed !== "run-once") throw new UsageError(`--missed "${missed}" is not a policy: use skip (default) or run-once`, CREATE);
    source.missedFires = missed;
  }
  return source;
}

function delivery(values: Values): Partial<DeliverySpec> {
  const out: Partial<DeliverySpec> = {};
  const retries = stringFlag(values, "retries");
  if (retries !== undefined) out.retries = parseWholeNumber(retries, "retries", 0, 100, CREATE);
  const backoff = stringFlag(values, "backoff");
  if (backoff !== undefined) {
    if (backoff !== "exponential" && backoff !== "linear") throw new UsageError(`--backoff "${backoff}" is not a backoff: use exponential (default) or linear`, CREATE);
    out.backoff = backoff;
  }
  const delay = stringFlag(values, "backoff-delay");
  if (delay !== undefined) out.backoffDelayMs = parseDuration(delay, "backoff-delay", CREATE);
  const concurrency = stringFlag(values, "concurrency");
  if (concurrency !== undefined) out.concurrency = parseWholeNumber(concurrency, "concurrency", 1, 1000, CREATE);
  if (values.ordered !== undefined) out.ordered = booleanFlag(values, "ordered", false);
  if (values["dead-letter"] !== undefined) out.deadLetter = booleanFlag(values, "dead-letter", true);
  return out;
}

/** The trigger spec `kumo trigger create` sends, from its flags; a bad combination is a usage error. */
export async function triggerSpecFromFlags(values: Values, cwd: string): Promise<TriggerManifest["spec"]> {
  const fn = stringFlag(values, "function");
  if (fn === undefined) throw new UsageError("missing --function <fn>: the function the trigger invokes", CREATE);
  const cron = stringFlag(values, "cron");
  const eventFlags = EVENT_FLAGS.filter((f) => given(values, f));
  let source: TriggerSource;
  if (cron !== undefined) {
    if (eventFlags.length > 0) throw new UsageError(`--cron fires on a schedule, not on events: drop --${eventFlags.join(", --")}`, CREATE);
    if (cron.trim() === "") throw new UsageError('--cron needs a cron expression such as "0 2 * * *"', CREATE);
    source = await cronSource(values, cron, cwd);
  } else {
    const cronOnly = CRON_FLAGS.filter((f) => given(values, f));
    if (cronOnly.length > 0) throw new UsageError(`--${cronOnly.join(", --")} ${cronOnly.length === 1 ? "is" : "are"} for --cron triggers only`, CREATE);
    if (eventFlags.filter((f) => f !== "from-start").length === 0) {
      throw new UsageError('say when the trigger fires: --event-type <type>, --on <shorthand> (OpenStack events; --on list shows them), --filter attr=value, or --cron "<expr>"', CREATE);
    }
    source = eventSource(values);
  }
  const d = delivery(values);
  return Object.keys(d).length === 0 ? { function: fn, source } : { function: fn, source, delivery: d };
}

/** A filter in one line: exact as attr=value, prefix as attr=value*, suffix as attr=*value. */
export function filterSummary(filter: EventFilter): string {
  const parts = [
    ...Object.entries(filter.exact ?? {}).map(([k, v]) => `${k}=${v}`),
    ...Object.entries(filter.prefix ?? {}).map(([k, v]) => `${k}=${v}*`),
    ...Object.entries(filter.suffix ?? {}).map(([k, v]) => `${k}=*${v}`),
  ];
  return parts.length === 0 ? "(every event)" : parts.join(", ");
}

/** A trigger's source in one line. */
export function sourceSummary(source: TriggerSource): string {
  switch (source.kind) {
    case "event":
      return `event ${filterSummary(source.filter)}`;
    case "cron":
      return `cron "${source.schedule}" ${source.timezone}`;
    case "http":
      return "http";
  }
}

/** The rows of `kumo trigger list`: NAME, FUNCTION, SOURCE, READY, AGE. */
export function triggerTable(triggers: readonly Trigger[], now: number): string {
  return table(
    ["NAME", "FUNCTION", "READY", "AGE", "SOURCE"],
    triggers.map((t) => [t.metadata.name, t.spec.function, getCondition(t.status.conditions, "Ready")?.status ?? "-", formatAge(t.metadata.creationTimestamp, now), sourceSummary(t.spec.source)]),
  );
}


/** The human description of a trigger: spec, delivery, conditions, start offsets. */
export function describeTrigger(t: Trigger, now: number): string {
  const s = t.spec;
  const d = s.delivery;
  const rows: [string, string][] = [
    ["Name", t.metadata.name],
    ["Namespace", t.metadata.namespace],
    ["Function", s.function],
    ["Created", `${t.metadata.creationTimestamp} (${formatAge(t.metadata.creationTimestamp, now)} ago)`],
    ["Generation", String(t.metadata.generation)],
  ];
  const src = s.source;
  if (src.kind === "event") {
    rows.push(["Source", "events"]);
    const f = src.filter;
    const lines = [
      ...Object.entries(f.exact ?? {}).map(([k, v]) => `${k} is "${v}"`),
      ...Object.entries(f.prefix ?? {}).map(([k, v]) => `${k} starts with "${v}"`),
      ...Object.entries(f.suffix ?? {}).map(([k, v]) => `${k} ends with "${v}"`),
    ];
    rows.push(["Filter", lines.length === 0 ? "(none: every event)" : lines.join(" and ")]);
    rows.push(["From", src.fromStart === true ? "the start of the event log" : "events published after the trigger was created"]);
  } else if (src.kind === "cron") {
    rows.push(["Source", "cron"], ["Schedule", src.schedule], ["Time zone", src.timezone], ["Missed fires", src.missedFires ?? "skip"]);
    rows.push(["Data", src.data === undefined ? "(none)" : JSON.stringify(src.data)]);
  } else rows.push(["Source", "http"]);
  rows.push(
    ["Retries", `${d.retries}, ${d.backoff} backoff from ${formatMs(d.backoffDelayMs)} up to ${formatMs(d.maxBackoffMs)}`],
    ["Concurrency", `${d.concurrency} events at once${d.ordered ? ", in order per partition key" : ""}`],
    ["Dead letter", d.deadLetter ? "yes: undeliverable events go to the dead-letter topic (kumo events dlq)" : "no: undeliverable events are dropped"],
  );
  let out = fields(rows);
  out += conditionsSection(t.status.conditions, now, "(none yet)");
  if (src.kind === "event") {
    out += "\nStart offsets:\n";
    const offsets = Object.entries(t.status.startOffsets ?? {}).sort(([a], [b]) => Number(a) - Number(b));
    if (offsets.length === 0) out += "  (none yet: the dispatcher has not seen this trigger)\n";
    else out += indent(table(["PARTITION", "OFFSET"], offsets), 2);
  }
  return out;
}

const createCommand: Command = {
  name: "create",
  summary: "Create a trigger: fire a function on events or a cron schedule",
  description:
    "Creates a trigger that invokes --function on every event matching its filters (all must match), or on a cron schedule. " +
    "Events: --event-type sets the exact type, --on an OpenStack shorthand (--on list prints them), --filter/--filter-prefix/--filter-suffix " +
    "match any CloudEvents attribute or extension, --project the OpenStack project and --host the publishing host. " +
    "Cron: --cron takes a 5- or 6-field expression, checked by the server. " +
    "Failed deliveries are retried with backoff, then go to the dead-letter topic (kumo events dlq) unless --no-dead-letter.",
  args: [{ name: "name", required: true }],
  flags: {
    function: { type: "string", value: "<fn>", help: "the function to invoke (required)" },
    "event-type": { type: "string", value: "<type>", help: "fire on events of this exact CloudEvents type" },
    on: { type: "string", value: "<shorthand>", help: "fire on an OpenStack event: vm.create, vm.delete, port.create, volume.attach, … (list: --on list)" },
    cron: { type: "string", value: "\"<expr>\"", help: "fire on a cron schedule, e.g. \"0 2 * * *\"" },
    timezone: { type: "string", value: "<tz>", help: "IANA time zone of --cron (default UTC), e.g. Asia/Tokyo" },
    data: { type: "string", value: "<json|@file>", help: "event data each cron fire carries" },
    missed: { type: "string", value: "skip|run-once", help: "fires missed while Kumo was down: skip them (default) or run once" },
    filter: { type: "string", multiple: true, value: "attr=value", help: "an attribute must equal value" },
    "filter-prefix": { type: "string", multiple: true, value: "attr=value", help: "an attribute must start with value" },
    "filter-suffix": { type: "string", multiple: true, value: "attr=value", help: "an attribute must end with value" },
    source: { type: "string", value: "<source>", help: "the event source must be exactly this" },
    project: { type: "string", value: "<id>", help: "only events of this OpenStack project (openstackproject)" },
    host: { type: "string", value: "<host>", help: "only events an OpenStack host published (source openstack/<service>/<host>)" },
    retries: { type: "string", value: "<n>", help: "retries after a failed delivery, 0-100 (default 3)" },
    backoff: { type: "string", value: "exponential|linear", help: "how the wait between retries grows (default exponential)" },
    "backoff-delay": { type: "string", value: "<duration>", help: "the first wait between retries (default 200ms)" },
    concurrency: { type: "string", value: "<n>", help: "events delivered at once, 1-1000 (default 10)" },
    ordered: { type: "boolean", help: "deliver events about one resource one at a time, in order" },
    "dead-letter": { type: "boolean", negatable: true, help: "drop undeliverable events instead of dead-lettering them" },
    "from-start": { type: "boolean", help: "also deliver events already in the event log" },
  },
  examples: [
    "kumo trigger create on-vm --function vm-inventory --on vm.create",
    "kumo trigger create on-vm-prod --function vm-inventory --on vm.delete --project 4f1c… --host compute-01",
    "kumo trigger create nightly --function report --cron \"0 2 * * *\" --timezone Asia/Tokyo --data '{\"scope\":\"all\"}'",
    "kumo trigger create orders --function billing --event-type com.acme.order.created --filter-prefix subject=eu- --retries 5 --ordered",
    "kumo trigger create x --on list",
  ],
  run: async (ctx: CommandContext, values: Values, positionals: readonly string[]) => {
    if (stringFlag(values, "on") === "list") {
      ctx.stdout.write(shorthandTable());
      return 0;
    }
    const name = positionals[0]!;
    const spec = await triggerSpecFromFlags(values, ctx.cwd);
    const created = await ctx.client.createTrigger(ctx.namespace, { metadata: { name }, spec });
    if (ctx.output === "json") ctx.stdout.write(json(created));
    else ctx.stdout.write(`Created trigger "${name}": ${sourceSummary(created.spec.source)} → function "${created.spec.function}"\n`);
    return 0;
  },
};

const listTriggersCommand: Command = {
  name: "list",
  summary: "List triggers: function, readiness, age, what fires them",
  description: "Lists the triggers in the namespace (or of one function with --function) and what fires each: an event filter or a cron schedule.",
  args: [],
  flags: { function: { type: "string", value: "<fn>", help: "only the triggers of this function" } },
  examples: ["kumo trigger list", "kumo trigger list --function vm-inventory -o json"],
  run: async (ctx: CommandContext, values: Values) => {
    const fn = stringFlag(values, "function");
    const triggers = await ctx.client.listTriggers(ctx.namespace, fn === undefined ? {} : { function: fn });
    if (ctx.output === "json") ctx.stdout.write(json(triggers));
    else if (triggers.length === 0) ctx.stdout.write(`No triggers in namespace "${ctx.namespace}"${fn === undefined ? "" : ` for function "${fn}"`}. Create one with: kumo trigger create <name> --function <fn> --on vm.create\n`);
    else ctx.stdout.write(triggerTable(triggers, ctx.now()));
    return 0;
  },
};

const describeTriggerCommand: Command = {
  name: "describe",
  summary: "Show a trigger's filter or schedule, delivery, conditions and start offsets",
  description: "Shows one trigger: what fires it, how it delivers (retries, backoff, concurrency, dead letter), its status conditions and the event-log offsets it started from.",
  args: [{ name: "name", required: true }],
  flags: {},
  examples: ["kumo trigger describe on-vm", "kumo trigger describe nightly -o json"],
  run: async (ctx: CommandContext, _values: Values, positionals: readonly string[]) => {
    const t = await ctx.client.getTrigger(ctx.namespace, positionals[0]!);
    ctx.stdout.write(ctx.output === "json" ? json(t) : describeTrigger(t, ctx.now()));
    return 0;
  },
};

const deleteTriggerCommand: Command = {
  name: "delete",
  summary: "Delete a trigger",
  description: "Deletes a trigger; its function stays. Events already being delivered finish.",
  args: [{ name: "name", required: true }],
  flags: {},
  examples: ["kumo trigger delete on-vm"],
  run: async (ctx: CommandContext, _values: Values, positionals: readonly string[]) => {
    const name = positionals[0]!;
    const deleted = await ctx.client.deleteTrigger(ctx.namespace, name);
    if (ctx.output === "json") ctx.stdout.write(json(deleted));
    else ctx.stdout.write(`Deleted trigger "${name}" from namespace "${ctx.namespace}".\n`);
    return 0;
  },
};

/** `kumo trigger create|list|describe|delete` */
export const triggerCommand: CommandGroup = {
  name: "trigger",
  summary: "Create, list, describe and delete triggers (events and cron)",
  description: "Triggers fire a function on CloudEvents (OpenStack notifications, events posted to /events) or on a cron schedule.",
  subcommands: [createCommand, listTriggersCommand, describeTriggerCommand, deleteTriggerCommand],
};
