// The dispatcher: reads kumo.events as the consumer group "kumo-dispatcher", matches each event
// against the Triggers it watches in the store, and delivers it to their functions with retries,
// per-trigger concurrency, optional per-key ordering and dead letters. A partition's offset is
// committed only past events that every matching trigger has delivered or dead-lettered.

import { Registry } from "prom-client";
import type { BusConsumer, ConsumedBatch, ConsumedRecord, EventBus } from "../bus/index.ts";
import {
  DLQ_TOPIC,
  EVENTS_TOPIC,
  KumoError,
  TRIGGER_EXTENSION,
  condition,
  getCondition,
  setCondition,
  systemClock,
} from "../model/index.ts";
import type { Clock, DeadLetter, DeliverySpec, EventFilter, KumoCloudEvent, Outcome, Trigger } from "../model/index.ts";
import type { Store, Watch } from "../store/index.ts";
import { backoffDelay, isRetryable } from "./backoff.ts";
import { deadLetterRecord, decodeEvent, ensureEventTopics, partitionKeyOf, type TopicOptions } from "./dead-letters.ts";
import { TriggerIndex, matches } from "./filter.ts";
import type { EventInvoker } from "./invoker.ts";
import { createDispatcherMetrics, type DispatcherMetrics } from "./metrics.ts";
import { PartitionProgress } from "./progress.ts";

/** The consumer group the dispatcher reads kumo.events as. */
export const DISPATCHER_GROUP = "kumo-dispatcher";

/** Where the dispatcher reports what happens to it. */
export type DispatcherLog = (level: "info" | "warn" | "error", message: string) => void;

/** What the dispatcher needs. */
export interface DispatcherOptions {
  bus: EventBus;
  store: Store;
  invoker: EventInvoker;
  /** Time for backoff timers (default: the system clock). */
  clock?: Clock;
  metrics?: DispatcherMetrics;
  log?: DispatcherLog;
  /** Consumer group (default "kumo-dispatcher"). */
  group?: string;
  /** Partition counts for kumo.events / kumo.dlq if they do not exist yet. */
  topics?: TopicOptions;
  /**
   * Records of one partition between the committed position and the newest one read (default
   * 1000). When a slow trigger holds the oldest one, reading that partition pauses at this bound.
   */
  maxInFlightPerPartition?: number;
  /** Records per bus batch (default 100). */
  maxBatch?: number;
  /** How long stop() waits for running invocations (ms, default 10000). */
  stopGraceMs?: number;
}

/** One trigger as the dispatcher delivers to it. */
interface TriggerState {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  uid: string;
  fn: string;
  kind: "event" | "cron";
  filter: EventFilter;
  delivery: DeliverySpec;
  fromStart: boolean;
  /** Event triggers: the first offset per partition they receive from the main stream. */
  startOffsets: Map<number, bigint> | undefined;
  active: number;
  ready: Delivery[];
  /** Ordered delivery: deliveries per partition key; the head of each lane is running or ready. */
  lanes: Map<string, Delivery[]>;
  deleted: boolean;
}

/** One event on its way to one trigger. */
interface Delivery {
  readonly state: TriggerState;
  readonly stream: Stream;
  readonly record: ConsumedRecord;
  readonly event: KumoCloudEvent;
  readonly laneKey: string | undefined;
  readonly attempts: { at: string; error: string }[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Matches bus events to triggers and delivers them; see the module header. */
export class Dispatcher {
  readonly bus: EventBus;
  readonly store: Store;
  readonly invoker: EventInvoker;
  readonly clock: Clock;
  readonly metrics: DispatcherMetrics;
  readonly log: DispatcherLog;
  readonly group: string;
  readonly maxInFlightPerPartition: number;
  readonly maxBatch: number;
  private readonly topics: TopicOptions;
  private readonly stopGraceMs: number;
  private readonly triggers = new Map<string, TriggerState>();
  private readonly index = new TriggerIndex<TriggerState>();
  private readonly catchUps = new Map<string, Stream>();
  private readonly sleepers = new Set<() => void>();
  private readonly running = new Set<Promise<void>>();
  private main: Stream | undefined;
  private watch: Watch<"Trigger"> | undefined;
  private watching: Promise<void> | undefined;
  private stopping = false;

  constructor(options: DispatcherOptions) {
    this.bus = options.bus;
    this.store = options.store;
    this.invoker = options.invoker;
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? createDispatcherMetrics(new Registry());
    this.log = options.log ?? ((level, text) => (level === "info" ? console.log : console.error)(`[dispatcher] ${text}`));
    this.group = options.group ?? DISPATCHER_GROUP;
    this.topics = options.topics ?? {};
    this.maxInFlightPerPartition = options.maxInFlightPerPartition ?? 1000;
    this.maxBatch = options.maxBatch ?? 100;
    this.stopGraceMs = options.stopGraceMs ?? 10_000;
  }

  /** Creates the topics if missing, loads the triggers, then starts watching them and consuming. */
  async start(): Promise<void> {
    this.stopping = false;
    await ensureEventTopics(this.bus, this.topics);
    for (const trigger of await this.store.list("Trigger")) await this.upsertSafely(trigger);
    const watch = this.store.watch("Trigger");
    this.watch = watch;
    this.watching = (async () => {
      for await (const change of watch) {
        if (change.type === "DELETED") this.remove(`${change.object.metadata.namespace}/${change.object.metadata.name}`, change.object.metadata.uid);
        else await this.upsertSafely(change.object);
      }
    })();
    // A new group starts at the beginning: triggers filter by their own start offsets anyway.
    const consumer = this.bus.consumer({ group: this.group, topic: EVENTS_TOPIC, start: "earliest", maxBatch: this.maxBatch });
    this.main = new Stream(this, consumer, (record, event) => this.mainTargets(record, event));
    await this.main.start();
  }

  /** Stops consuming and watching; waits (up to the grace period) for running invocations. Undelivered events stay uncommitted. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.watch?.close();
    await this.watching?.catch(() => undefined);
    for (const wake of [...this.sleepers]) wake();
    const streams = [...(this.main === undefined ? [] : [this.main]), ...this.catchUps.values()];
    this.catchUps.clear();
    this.main = undefined;
    await Promise.all(streams.map((s) => s.stop()));
    if (this.running.size > 0) {
      let cancel = (): void => undefined;
      const grace = new Promise<void>((resolve) => {
        cancel = this.clock.setTimer(resolve, this.stopGraceMs);
      });
      await Promise.race([Promise.allSettled([...this.running]), grace]);
      cancel();
    }
  }

  /** Deliveries started and not yet finished. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Keys (`<namespace>/<name>`) of the triggers the dispatcher delivers to. */
  triggerKeys(): string[] {
    return [...this.triggers.keys()];
  }

  // ---- triggers ----

  private async upsertSafely(trigger: Trigger): Promise<void> {
    try {
      await this.upsert(trigger);
    } catch (err) {
      this.log("error", `trigger ${trigger.metadata.namespace}/${trigger.metadata.name}: ${message(err)}`);
    }
  }

  private async upsert(trigger: Trigger): Promise<void> {
    const { namespace, name, uid } = trigger.metadata;
    const key = `${namespace}/${name}`;
    const source = trigger.spec.source;
    if (source.kind === "http") {
      this.remove(key, undefined);
      return;
    }
    let state = this.triggers.get(key);
    if (state !== undefined && state.uid !== uid) {
      this.remove(key, undefined);
      state = undefined;
    }
    const filter = source.kind === "event" ? source.filter : {};
    if (state === undefined) {
      state = {
        key,
        namespace,
        name,
        uid,
        fn: trigger.spec.function,
        kind: source.kind,
        filter,
        delivery: trigger.spec.delivery,
        fromStart: source.kind === "event" && source.fromStart === true,
        startOffsets: undefined,
        active: 0,
        ready: [],
        lanes: new Map(),
        deleted: false,
      };
    } else {
      state.fn = trigger.spec.function;
      state.kind = source.kind;
      state.filter = filter;
      state.delivery = trigger.spec.delivery;
      state.fromStart = source.kind === "event" && source.fromStart === true;
    }
    let recorded = false;
    if (state.kind === "event" && state.startOffsets === undefined) {
      const stored = trigger.status.startOffsets;
      if (stored !== undefined) {
        state.startOffsets = new Map(Object.entries(stored).map(([p, o]) => [Number(p), BigInt(o)]));
        recorded = true;
      } else {
        // Receives only what is appended from now on (fromStart: a catch-up stream reads the rest).
        const ends = await this.bus.endOffsets(EVENTS_TOPIC);
        state.startOffsets = new Map([...ends].map(([p, o]) => [p, BigInt(o)]));
      }
    }
    this.triggers.set(key, state);
    if (state.kind === "event") this.index.set(state);
    else this.index.delete(key);
    await this.markReady(trigger, state);
    if (state.kind === "event" && state.fromStart && !this.catchUps.has(key) && !this.stopping) await this.startCatchUp(state, recorded);
  }

  private remove(key: string, uid: string | undefined): void {
    const state = this.triggers.get(key);
    if (state === undefined || (uid !== undefined && state.uid !== uid)) return;
    state.deleted = true;
    this.triggers.delete(key);
    this.index.delete(key);
    const catchUp = this.catchUps.get(key);
    if (catchUp !== undefined) {
      this.catchUps.delete(key);
      void catchUp.stop();
    }
    // Queued deliveries drain as discarded, so their offsets can be committed.
    this.pump(state);
  }

  /** Records the start offsets and a Ready condition in the trigger's status (once). */
  private async markReady(trigger: Trigger, state: TriggerState): Promise<void> {
    const offsets = state.startOffsets === undefined ? undefined : Object.fromEntries([...state.startOffsets].map(([p, o]) => [String(p), String(o)]));
    const text =
      offsets === undefined
        ? "the dispatcher delivers this trigger's fires"
        : `receives events appended to ${EVENTS_TOPIC} from offsets ${Object.entries(offsets).map(([p, o]) => `${p}:${o}`).join(", ")}${state.fromStart ? " (and, from the start, everything before)" : ""}`;
    let current: Trigger | undefined = trigger;
    for (let attempt = 0; attempt < 5 && current !== undefined; attempt++) {
      if (current.metadata.uid !== state.uid) return;
      const ready = getCondition(current.status.conditions, "Ready");
      if (ready?.status === "True" && (offsets === undefined || current.status.startOffsets !== undefined)) return;
      const status = { ...current.status, conditions: setCondition(current.status.conditions, condition("Ready", "True", "Subscribed", text, new Date(this.clock.now()))) };
      if (offsets !== undefined && current.status.startOffsets === undefined) status.startOffsets = offsets;
      try {
        await this.store.updateStatus("Trigger", { ...current, status });
        return;
      } catch (err) {
        if (!(err instanceof KumoError) || (err.code !== "KUMO_E_CONFLICT" && err.code !== "KUMO_E_TRIGGER_NOT_FOUND")) throw err;
        if (err.code === "KUMO_E_TRIGGER_NOT_FOUND") return;
      }
      current = await this.store.get("Trigger", state.namespace, state.name);
    }
  }

  /** Starts reading the log from the start for a fromStart trigger, up to its start offsets. */
  private async startCatchUp(state: TriggerState, resuming: boolean): Promise<void> {
    const group = `${this.group}.catchup.${state.uid}`;
    const committed = resuming ? await this.bus.committedOffsets(group, EVENTS_TOPIC) : new Map<number, string>();
    const pending = new Map<number, bigint>();
    for (const [partition, end] of state.startOffsets ?? []) {
      if (end > BigInt(committed.get(partition) ?? "0")) pending.set(partition, end);
    }
    if (pending.size === 0) return;
    const consumer = this.bus.consumer({ group, topic: EVENTS_TOPIC, start: "earliest", maxBatch: this.maxBatch });
    const stream = new Stream(
      this,
      consumer,
      (record, event) => {
        const end = pending.get(record.partition);
        if (end === undefined || BigInt(record.offset) >= end || state.deleted || typeof event[TRIGGER_EXTENSION] === "string") return [];
        return matches(state.filter, event) ? [state] : [];
      },
      (partition, position) => {
        const end = pending.get(partition);
        if (end !== undefined && BigInt(position) >= end) pending.delete(partition);
        if (pending.size === 0 && this.catchUps.get(state.key) === stream) {
          this.catchUps.delete(state.key);
          this.log("info", `trigger ${state.key} caught up with the history of ${EVENTS_TOPIC}`);
          void stream.stop();
        }
      },
    );
    this.catchUps.set(state.key, stream);
    await stream.start();
  }

  /** The triggers an event read by the main stream goes to. */
  private mainTargets(record: ConsumedRecord, event: KumoCloudEvent): TriggerState[] {
    const target = event[TRIGGER_EXTENSION];
    if (typeof target === "string") {
      const state = this.triggers.get(target);
      if (state === undefined) {
        this.log("warn", `event ${event.id} is addressed to trigger ${target}, which does not exist: dropped`);
        return [];
      }
      return [state];
    }
    const partition = record.partition;
    const offset = BigInt(record.offset);
    return this.index.match(event).filter((s) => offset >= (s.startOffsets?.get(partition) ?? 0n));
  }

  // ---- delivery ----

  /** Queues an event for a trigger, behind earlier events of the same key when ordered. */
  enqueue(state: TriggerState, stream: Stream, record: ConsumedRecord, event: KumoCloudEvent): void {
    const laneKey = state.delivery.ordered ? (record.key ?? partitionKeyOf(event)) : undefined;
    const delivery: Delivery = { state, stream, record, event, laneKey, attempts: [] };
    if (laneKey !== undefined) {
      const lane = state.lanes.get(laneKey);
      if (lane !== undefined) {
        lane.push(delivery);
        return;
      }
      state.lanes.set(laneKey, [delivery]);
    }
    state.ready.push(delivery);
    this.pump(state);
  }

  private pump(state: TriggerState): void {
    while (state.ready.length > 0 && (state.active < state.delivery.concurrency || state.deleted)) {
      const delivery = state.ready.shift();
      if (delivery === undefined) break;
      state.active += 1;
      this.metrics.inFlight.inc();
      const run: Promise<void> = this.deliver(delivery)
        .catch((err: unknown) => {
          this.log("error", `delivery of ${delivery.event.id} to ${state.key}: ${message(err)}`);
          return false;
        })
        .then((finished) => {
          this.running.delete(run);
          this.metrics.inFlight.dec();
          state.active -= 1;
          if (delivery.laneKey !== undefined) {
            const lane = state.lanes.get(delivery.laneKey);
            lane?.shift();
            const next = lane?.[0];
            if (next === undefined) state.lanes.delete(delivery.laneKey);
            else state.ready.push(next);
          }
          if (finished) delivery.stream.complete(delivery.record.partition, delivery.record.offset);
          this.pump(state);
        });
      this.running.add(run);
    }
  }

  /** Runs the attempts of one delivery; true when it is finished (delivered, dead-lettered or discarded). */
  private async deliver(d: Delivery): Promise<boolean> {
    const { state } = d;
    for (let attempt = 1; ; attempt++) {
      if (this.stopping) return false;
      if (state.deleted) {
        this.metrics.deliveries.inc({ result: "discarded" });
        return true;
      }
      const startedAt = this.clock.now();
      if (attempt === 1) this.metrics.latency.observe(Math.max(0, startedAt - d.record.timestamp) / 1000);
      else this.metrics.retries.inc();
      let outcome: Outcome;
      let error: string;
      try {
        const result = await this.invoker.invokeEvent(state.namespace, state.fn, d.event, { trigger: state.name, attempt });
        outcome = result.outcome;
        error = result.error ?? `status ${result.status}`;
      } catch (err) {
        if (err instanceof KumoError && err.code === "KUMO_E_FUNCTION_NOT_FOUND") {
          d.attempts.push({ at: new Date(startedAt).toISOString(), error: err.message });
          const reason = `function "${state.fn}" does not exist in namespace "${state.namespace}"`;
          return this.deadLetter(d, reason, "no_function");
        }
        outcome = "platform_error";
        error = message(err);
      }
      this.metrics.attempts.inc({ outcome });
      if (outcome === "success") {
        this.metrics.deliveries.inc({ result: "delivered" });
        return true;
      }
      d.attempts.push({ at: new Date(startedAt).toISOString(), error: `${outcome}: ${error}` });
      if (!isRetryable(outcome) || attempt > state.delivery.retries) break;
      if (!(await this.sleep(backoffDelay(state.delivery, attempt)))) return false;
    }
    const last = d.attempts[d.attempts.length - 1]?.error ?? "unknown error";
    return this.deadLetter(d, `delivery to function "${state.fn}" failed after ${d.attempts.length} attempt(s); last: ${last}`, "delivery");
  }

  private async deadLetter(d: Delivery, reason: string, kind: "delivery" | "no_function"): Promise<boolean> {
    const { state } = d;
    if (!state.delivery.deadLetter) {
      this.log("warn", `event ${d.event.id} for trigger ${state.key} discarded (dead letters off): ${reason}`);
      this.metrics.deliveries.inc({ result: "discarded" });
      return true;
    }
    const letter: DeadLetter = {
      origin: "dispatcher",
      reason,
      event: d.event,
      trigger: { namespace: state.namespace, name: state.name, function: state.fn },
      attempts: d.attempts,
      time: new Date(this.clock.now()).toISOString(),
    };
    if (!(await this.publishDeadLetter(letter, kind))) return false;
    this.metrics.deliveries.inc({ result: "dead_lettered" });
    return true;
  }

  /** Publishes a dead letter, retrying until it is durable or the dispatcher stops. */
  async publishDeadLetter(letter: DeadLetter, kind: "delivery" | "no_function" | "decode"): Promise<boolean> {
    for (let n = 0; ; n++) {
      try {
        await this.bus.publish(DLQ_TOPIC, [deadLetterRecord(letter)]);
        this.metrics.deadLetters.inc({ reason: kind });
        return true;
      } catch (err) {
        this.log("error", `could not write a dead letter (${letter.reason}): ${message(err)}; retrying`);
        if (!(await this.sleep(Math.min(30_000, 200 * 2 ** n)))) return false;
      }
    }
  }

  /** Waits on the clock; false if the dispatcher stopped meanwhile. */
  sleep(ms: number): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (): void => {
        cancel();
        this.sleepers.delete(wake);
        resolve(false);
      };
      const cancel = this.clock.setTimer(() => {
        this.sleepers.delete(wake);
        resolve(!this.stopping);
      }, ms);
      this.sleepers.add(wake);
    });
  }

  get isStopping(): boolean {
    return this.stopping;
  }
}

/**
 * One consumer of kumo.events with its per-partition progress: the main group, or a fromStart
 * trigger's catch-up group. The batch handler schedules deliveries and returns; it waits only
 * when a partition has maxInFlightPerPartition records between its committed and read positions.
 */
class Stream {
  private readonly dispatcher: Dispatcher;
  private readonly consumer: BusConsumer;
  private readonly targets: (record: ConsumedRecord, event: KumoCloudEvent) => TriggerState[];
  private readonly onCommitted: ((partition: number, position: string) => void) | undefined;
  private readonly progress = new Map<number, PartitionProgress>();
  private readonly commits = new Map<number, { running: boolean; next: string | undefined }>();
  private readonly waiters = new Map<number, (() => void)[]>();
  private closed = false;

  constructor(
    dispatcher: Dispatcher,
    consumer: BusConsumer,
    targets: (record: ConsumedRecord, event: KumoCloudEvent) => TriggerState[],
    onCommitted?: (partition: number, position: string) => void,
  ) {
    this.dispatcher = dispatcher;
    this.consumer = consumer;
    this.targets = targets;
    this.onCommitted = onCommitted;
  }

  start(): Promise<void> {
    return this.consumer.run((batch) => this.handle(batch));
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const list of this.waiters.values()) for (const wake of list) wake();
    this.waiters.clear();
    await this.consumer.stop();
  }

  private progressOf(partition: number): PartitionProgress {
    let progress = this.progress.get(partition);
    if (progress === undefined) {
      progress = new PartitionProgress();
      this.progress.set(partition, progress);
    }
    return progress;
  }

  private async handle(batch: ConsumedBatch): Promise<void> {
    const { partition } = batch;
    const progress = this.progressOf(partition);
    const max = this.dispatcher.maxInFlightPerPartition;
    for (const record of batch.records) {
      if (this.closed) return;
      if (progress.has(record.offset)) continue;
      while (progress.inFlight >= max && !this.closed) await this.slot(partition);
      if (this.closed) return;
      this.dispatcher.metrics.eventsConsumed.inc();
      const decoded = decodeEvent(record);
      if ("error" in decoded) {
        progress.add(record.offset, 1);
        void this.deadLetterUndecodable(record, decoded.error);
        continue;
      }
      const targets = this.targets(record, decoded.event);
      const position = progress.add(record.offset, targets.length);
      if (position !== undefined) this.commit(partition, position);
      for (const state of targets) this.dispatcher.enqueue(state, this, record, decoded.event);
    }
  }

  private async deadLetterUndecodable(record: ConsumedRecord, error: string): Promise<void> {
    const letter: DeadLetter = {
      origin: "dispatcher",
      reason: `record ${record.topic}/${record.partition}@${record.offset} is not a CloudEvent: ${error}`,
      raw: Buffer.from(record.value).toString("base64"),
      rawEncoding: "base64",
      meta: record.headers,
      time: new Date(this.dispatcher.clock.now()).toISOString(),
    };
    if (await this.dispatcher.publishDeadLetter(letter, "decode")) this.complete(record.partition, record.offset);
  }

  /** Marks one delivery of a record finished; commits when the partition's finished prefix grew. */
  complete(partition: number, offset: string): void {
    const progress = this.progress.get(partition);
    if (progress === undefined) return;
    const position = progress.complete(offset);
    if (position !== undefined) this.commit(partition, position);
    const waiting = this.waiters.get(partition);
    if (waiting !== undefined && progress.inFlight < this.dispatcher.maxInFlightPerPartition) {
      this.waiters.delete(partition);
      for (const wake of waiting) wake();
    }
  }

  private slot(partition: number): Promise<void> {
    return new Promise((resolve) => {
      const list = this.waiters.get(partition);
      if (list === undefined) this.waiters.set(partition, [resolve]);
      else list.push(resolve);
    });
  }

  // Commits are coalesced per partition: while one is being written, only the latest position waits.
  private commit(partition: number, position: string): void {
    let state = this.commits.get(partition);
    if (state === undefined) {
      state = { running: false, next: undefined };
      this.commits.set(partition, state);
    }
    state.next = position;
    if (state.running) return;
    state.running = true;
    const current = state;
    void (async () => {
      while (current.next !== undefined) {
        const next = current.next;
        current.next = undefined;
        try {
          await this.consumer.commit(partition, next);
          this.onCommitted?.(partition, next);
        } catch (err) {
          this.dispatcher.log("warn", `could not commit ${EVENTS_TOPIC}/${partition} at ${next}: ${message(err)}`);
        }
      }
      current.running = false;
    })();
  }
}
