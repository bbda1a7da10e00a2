// The dead-letter topic: how dead letters are written (JSON records on kumo.dlq), listed (read
// from the start with a throwaway consumer group) and replayed (republished to kumo.events,
// addressed to the original trigger through the kumotrigger extension).

import { randomUUID } from "node:crypto";
import { fromBusRecord, toBusRecord } from "../bus/index.ts";
import type { ConsumedRecord, EventBus, ProducerRecord, RecordPosition } from "../bus/index.ts";
import { DLQ_TOPIC, EVENTS_TOPIC, KumoError, TRIGGER_EXTENSION, systemClock } from "../model/index.ts";
import type { Clock, DeadLetter, KumoCloudEvent } from "../model/index.ts";
import type { EventSink } from "../../event-providers/index.ts";

/** Partition counts used when the topics do not exist yet. */
export interface TopicOptions {
  /** Partitions of kumo.events (default 8): the most dispatcher members that share the work. */
  eventPartitions?: number;
  /** Partitions of kumo.dlq (default 1). */
  dlqPartitions?: number;
}

/** Creates kumo.events and kumo.dlq if missing; call before providers or the dispatcher start. */
export async function ensureEventTopics(bus: EventBus, options: TopicOptions = {}): Promise<void> {
  await bus.ensureTopic(EVENTS_TOPIC, options.eventPartitions ?? 8);
  await bus.ensureTopic(DLQ_TOPIC, options.dlqPartitions ?? 1);
}

/** The partition key of an event: its `partitionkey` extension, else its subject, else its id. */
export function partitionKeyOf(event: KumoCloudEvent): string {
  const ext = event["partitionkey"];
  if (typeof ext === "string" && ext !== "") return ext;
  if (typeof event.subject === "string" && event.subject !== "") return event.subject;
  return event.id;
}

/** A dead letter as a bus record: the letter as JSON, keyed by trigger (or event id). */
export function deadLetterRecord(letter: DeadLetter): ProducerRecord {
  const key = letter.trigger !== undefined ? `${letter.trigger.namespace}/${letter.trigger.name}` : (letter.event?.id ?? letter.origin);
  return {
    key,
    value: new TextEncoder().encode(JSON.stringify(letter.event?.data instanceof Uint8Array ? { ...letter, event: withBase64Data(letter.event) } : letter)),
    headers: { "content-type": "application/json", "kumo_origin": letter.origin },
  };
}

// JSON has no bytes: binary data travels as data_base64, as in CloudEvents' JSON format.
function withBase64Data(event: KumoCloudEvent): KumoCloudEvent {
  const { data, ...rest } = event;
  return data instanceof Uint8Array ? { ...rest, data_base64: Buffer.from(data).toString("base64") } : event;
}

/** Reads a dead letter back from its bus record; KUMO_E_VALIDATION if it is not one. */
export function parseDeadLetterRecord(record: ConsumedRecord): DeadLetter {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(record.value));
  } catch (err) {
    throw new KumoError("KUMO_E_VALIDATION", `dead letter ${record.partition}:${record.offset} is not JSON`, { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || typeof (parsed as { reason?: unknown }).reason !== "string") {
    throw new KumoError("KUMO_E_VALIDATION", `dead letter ${record.partition}:${record.offset} has no reason: not a Kumo dead letter`);
  }
  return parsed as DeadLetter;
}

/** An EventSink over the bus: events to kumo.events (binary mode), dead letters to kumo.dlq. */
export function createBusSink(bus: EventBus): EventSink {
  return {
    async append(events) {
      if (events.length === 0) return;
      await bus.publish(
        EVENTS_TOPIC,
        events.map(({ event, partitionKey }) => toBusRecord(event, partitionKey ?? partitionKeyOf(event))),
      );
    },
    async deadLetter(letter) {
      await bus.publish(DLQ_TOPIC, [deadLetterRecord(letter)]);
    },
  };
}

/** A dead letter with where it sits on the topic. */
export interface DeadLetterEntry {
  /** `<partition>:<offset>`, what `kumo events replay` takes. */
  id: string;
  partition: number;
  offset: string;
  letter: DeadLetter;
}

/** Which dead letters to list. */
export interface ListDeadLettersOptions {
  /** Only letters of triggers in this namespace. */
  namespace?: string;
  /** Only letters of this trigger (needs namespace). */
  trigger?: string;
  /** At most this many, the newest ones (default 100). */
  limit?: number;
  /** Stop reading after this long even if a partition did not reach its end (ms, default 10000). */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * Lists dead letters oldest-first, reading kumo.dlq from the start with a throwaway consumer
 * group that commits nothing. Records that are not dead letters are skipped.
 */
export async function listDeadLetters(bus: EventBus, options: ListDeadLettersOptions = {}): Promise<DeadLetterEntry[]> {
  const clock = options.clock ?? systemClock;
  const limit = options.limit ?? 100;
  let ends: Map<number, string>;
  try {
    ends = await bus.endOffsets(DLQ_TOPIC);
  } catch {
    return []; // no topic yet: nothing was ever dead-lettered
  }
  const remaining = new Map<number, bigint>();
  for (const [partition, end] of ends) if (BigInt(end) > 0n) remaining.set(partition, BigInt(end));
  const entries: DeadLetterEntry[] = [];
  if (remaining.size > 0) {
    const consumer = bus.consumer({ group: `kumo-dlq-reader-${randomUUID()}`, topic: DLQ_TOPIC, start: "earliest", maxBatch: 500 });
    await new Promise<void>((resolve, reject) => {
      const cancel = clock.setTimer(resolve, options.timeoutMs ?? 10_000);
      const finish = (): void => {
        cancel();
        resolve();
      };
      consumer
        .run(async (batch) => {
          const end = remaining.get(batch.partition);
          if (end === undefined) return;
          for (const record of batch.records) {
            if (BigInt(record.offset) >= end) break;
            let letter: DeadLetter;
            try {
              letter = parseDeadLetterRecord(record);
            } catch {
              continue;
            }
            if (wanted(letter, options)) entries.push({ id: `${record.partition}:${record.offset}`, partition: record.partition, offset: record.offset, letter });
          }
          const last = batch.records[batch.records.length - 1];
          if (last !== undefined && BigInt(last.offset) + 1n >= end) {
            remaining.delete(batch.partition);
            if (remaining.size === 0) finish();
          }
        })
        .catch(reject);
    }).finally(() => consumer.stop());
  }
  entries.sort((a, b) => a.letter.time.localeCompare(b.letter.time) || a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return entries.slice(Math.max(0, entries.length - limit));
}

function wanted(letter: DeadLetter, options: ListDeadLettersOptions): boolean {
  if (options.namespace !== undefined && letter.trigger?.namespace !== options.namespace) return false;
  if (options.trigger !== undefined && letter.trigger?.name !== options.trigger) return false;
  return true;
}

/** Finds one dead letter by its id (`<partition>:<offset>`); KUMO_E_NOT_FOUND if absent. */
export async function getDeadLetter(bus: EventBus, id: string, options: Omit<ListDeadLettersOptions, "limit"> = {}): Promise<DeadLetterEntry> {
  const found = (await listDeadLetters(bus, { ...options, limit: Number.MAX_SAFE_INTEGER })).find((e) => e.id === id);
  if (found === undefined) throw new KumoError("KUMO_E_NOT_FOUND", `no dead letter "${id}": list them with \`kumo events dlq\``);
  return found;
}

/**
 * Republishes a dead letter's event to kumo.events, addressed to the trigger it failed for (the
 * kumotrigger extension) and marked with `kumoreplay` = the letter's id. KUMO_E_VALIDATION when
 * the letter holds no event (an undecodable source message).
 */
export async function replayDeadLetter(bus: EventBus, entry: DeadLetterEntry): Promise<RecordPosition> {
  const { letter } = entry;
  if (letter.event === undefined) {
    throw new KumoError("KUMO_E_VALIDATION", `dead letter "${entry.id}" holds no event (${letter.reason}): only events that failed delivery can be replayed`);
  }
  const event: KumoCloudEvent = { ...letter.event, kumoreplay: entry.id };
  if (letter.trigger !== undefined) event[TRIGGER_EXTENSION] = `${letter.trigger.namespace}/${letter.trigger.name}`;
  const [position] = await bus.publish(EVENTS_TOPIC, [toBusRecord(event, partitionKeyOf(event))]);
  if (position === undefined) throw new KumoError("KUMO_E_INTERNAL", "the bus accepted the replayed event but returned no position");
  return position;
}

/** Decodes an events-topic record, or explains why it is not a CloudEvent. */
export function decodeEvent(record: ConsumedRecord): { event: KumoCloudEvent } | { error: string } {
  try {
    return { event: fromBusRecord(record) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
