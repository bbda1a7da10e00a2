// `kumo events publish|dlq|replay`: post a CloudEvent to the server's HTTP event provider, list
// the dead letters of undeliverable events, and replay them to the triggers they failed for.

import { randomUUID } from "node:crypto";
import type { DeadLetterItem } from "../api/index.ts";
import type { KumoCloudEvent } from "../model/index.ts";
import { booleanFlag, listFlag, parsePair, parseWholeNumber, readDataFlag, stringFlag, UsageError } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext, CommandGroup } from "./command.ts";
import { json, table } from "./output.ts";

const PUBLISH = "events publish";
const EXTENSION = /^[a-z0-9]{1,20}$/;
/** Context attributes of CloudEvents 1.0, which --extension may not set. */
const CONTEXT_ATTRIBUTES = new Set(["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"]);

/** The CloudEvent `kumo events publish` sends, from its flags. */
export async function eventFromFlags(values: Values, cwd: string, now: number, newId: () => string = randomUUID): Promise<KumoCloudEvent> {
  const type = stringFlag(values, "type");
  const source = stringFlag(values, "source");
  if (type === undefined || type === "") throw new UsageError("missing --type <type>: the CloudEvents type, e.g. com.acme.order.created", PUBLISH);
  if (source === undefined || source === "") throw new UsageError("missing --source <source>: where the event comes from, e.g. /orders or acme/billing", PUBLISH);
  const event: KumoCloudEvent = { specversion: "1.0", id: stringFlag(values, "id") ?? newId(), source, type, time: new Date(now).toISOString() };
  const subject = stringFlag(values, "subject");
  if (subject !== undefined) event.subject = subject;
  const data = stringFlag(values, "data");
  if (data !== undefined) {
    const read = await readDataFlag(data, "data", PUBLISH, cwd);
    event.datacontenttype = read.contentType;
    event.data = read.data;
  }
  for (const raw of listFlag(values, "extension")) {
    const [name, value] = parsePair(raw, "extension", "=", PUBLISH);
    if (!EXTENSION.test(name)) throw new UsageError(`--extension "${raw}": "${name}" is not a CloudEvents extension name: use 1-20 lowercase letters and digits`, PUBLISH);
    if (CONTEXT_ATTRIBUTES.has(name)) throw new UsageError(`--extension "${raw}": "${name}" is a CloudEvents attribute, not an extension: set it with --type, --source, --subject, --id or --data`, PUBLISH);
    event[name] = value;
  }
  return event;
}

const publishCommand: Command = {
  name: "publish",
  summary: "Publish a CloudEvent to the server's event log",
  description:
    "Posts one CloudEvent in structured mode (application/cloudevents+json) to <server>/events and prints its id once the server has " +
    "durably appended it; triggers whose filters match then fire. --data is sent as JSON when it parses, else as text; @path reads a file. " +
    "The id defaults to a random UUID and the time to now.",
  args: [],
  flags: {
    type: { type: "string", value: "<type>", help: "the event type (required), e.g. com.acme.order.created" },
    source: { type: "string", value: "<source>", help: "the event source (required), e.g. /orders" },
    subject: { type: "string", value: "<subject>", help: "what the event is about; events with one subject stay in order" },
    data: { type: "string", short: "d", value: "<json|text|@file>", help: "the event data" },
    id: { type: "string", value: "<id>", help: "the event id (default a random UUID)" },
    extension: { type: "string", multiple: true, value: "name=value", help: "a CloudEvents extension attribute" },
  },
  examples: [
    "kumo events publish --type com.acme.order.created --source /orders --subject order-42 --data '{\"total\":12}'",
    "kumo events publish --type org.openstack.nova.instance.create.end --source openstack/nova/compute-01 --data @instance.json --extension openstackproject=4f1c",
  ],
  run: async (ctx: CommandContext, values: Values) => {
    const event = await eventFromFlags(values, ctx.cwd, ctx.now());
    const answer = await ctx.client.publishEvent(event);
    if (ctx.output === "json") ctx.stdout.write(json({ ...answer, event }));
    else ctx.stdout.write(`Published event ${answer.ids[0] ?? event.id}\n`);
    return 0;
  },
};

/** The rows of `kumo events dlq`: ID, TIME, ORIGIN, TRIGGER, EVENT-TYPE, EVENT-ID, ATTEMPTS, REASON. */
export function deadLetterTable(items: readonly DeadLetterItem[]): string {
  return table(
    ["ID", "TIME", "ORIGIN", "TRIGGER", "EVENT-TYPE", "EVENT-ID", "ATTEMPTS", "REASON"],
    items.map(({ id, letter }) => [
      id,
      letter.time,
      letter.origin,
      letter.trigger?.name ?? "-",
      letter.event?.type ?? "-",
      letter.event?.id ?? "-",
      String(letter.attempts?.length ?? 0),
      letter.reason.split("\n")[0] ?? "",
    ]),
  );
}

const dlqCommand: Command = {
  name: "dlq",
  summary: "List dead letters: events that could not be delivered, and why",
  description:
    "Lists the newest dead letters of the namespace's triggers, oldest first: when, where it came from (dispatcher or a provider), " +
    "the trigger, the event, how many delivery attempts were made and the reason. -o json prints each letter whole, with every attempt's error. " +
    "Replay one with kumo events replay <id>.",
  args: [],
  flags: {
    limit: { type: "string", value: "<n>", help: "how many of the newest to show, 1-1000 (default 100)" },
    trigger: { type: "string", value: "<name>", help: "only the dead letters of this trigger" },
  },
  examples: ["kumo events dlq", "kumo events dlq --trigger on-vm --limit 10 -o json"],
  run: async (ctx: CommandContext, values: Values) => {
    const limitRaw = stringFlag(values, "limit");
    const limit = limitRaw === undefined ? undefined : parseWholeNumber(limitRaw, "limit", 1, 1000, "events dlq");
    const trigger = stringFlag(values, "trigger");
    const items = await ctx.client.listDeadLetters(ctx.namespace, { ...(limit === undefined ? {} : { limit }), ...(trigger === undefined ? {} : { trigger }) });
    if (ctx.output === "json") ctx.stdout.write(json(items));
    else if (items.length === 0) ctx.stdout.write(`No dead letters in namespace "${ctx.namespace}"${trigger === undefined ? "" : ` for trigger "${trigger}"`}.\n`);
    else ctx.stdout.write(deadLetterTable(items));
    return 0;
  },
};

const replayCommand: Command = {
  name: "replay",
  summary: "Replay dead letters to the triggers they failed for",
  description:
    "Publishes a dead letter's event again, addressed to the trigger it failed for (only that trigger receives it). " +
    "Give one dead-letter id (from kumo events dlq), or --all for every dead letter of the namespace (or of one --trigger).",
  args: [{ name: "dead-letter-id", required: false }],
  flags: {
    all: { type: "boolean", help: "replay every dead letter" },
    trigger: { type: "string", value: "<name>", help: "with --all: only the dead letters of this trigger" },
  },
  examples: ["kumo events replay 0:17", "kumo events replay --all --trigger on-vm"],
  run: async (ctx: CommandContext, values: Values, positionals: readonly string[]) => {
    const id = positionals[0];
    const all = booleanFlag(values, "all", false);
    const trigger = stringFlag(values, "trigger");
    if (id !== undefined && all) throw new UsageError("give a dead-letter id or --all, not both", "events replay");
    if (id === undefined && !all) throw new UsageError("say what to replay: a dead-letter id (see kumo events dlq) or --all", "events replay");
    if (trigger !== undefined && !all) throw new UsageError("--trigger goes with --all: a dead-letter id already names one letter", "events replay");
    const answer = id !== undefined ? await ctx.client.replayDeadLetter(ctx.namespace, id) : await ctx.client.replayDeadLetters(ctx.namespace, trigger === undefined ? {} : { trigger });
    if (ctx.output === "json") ctx.stdout.write(json(answer));
    else ctx.stdout.write(`Replayed ${answer.replayed} dead letter${answer.replayed === 1 ? "" : "s"}${id === undefined ? "" : ` (${id})`}${trigger === undefined ? "" : ` of trigger "${trigger}"`}.\n`);
    return 0;
  },
};

/** `kumo events publish|dlq|replay` */
export const eventsCommand: CommandGroup = {
  name: "events",
  summary: "Publish CloudEvents, list and replay dead letters",
  description: "Events reach triggers through the server's event log: publish one by hand, see what could not be delivered, and deliver it again.",
  subcommands: [publishCommand, dlqCommand, replayCommand],
};
