// The dispatcher against the embedded bus and the SQLite store, with a fake invoker.
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Registry } from "prom-client";
import { createEmbeddedBus, toBusRecord } from "../bus/index.ts";
import type { EmbeddedBus } from "../bus/index.ts";
import { API_VERSION, EVENTS_TOPIC, KumoError, TRIGGER_EXTENSION, deliveryDefaults, getCondition } from "../model/index.ts";
import type { DeliverySpec, KumoCloudEvent, TriggerSource } from "../model/index.ts";
import { openSqliteStore } from "../store/index.ts";
import type { SqliteStore } from "../store/index.ts";
import {
  DISPATCHER_GROUP,
  Dispatcher,
  createBusSink,
  createDispatcherMetrics,
  ensureEventTopics,
  listDeadLetters,
  replayDeadLetter,
} from "./index.ts";
import type { EventInvocationResult, EventInvoker } from "./index.ts";

interface Call {
  fn: string;
  trigger: string;
  attempt: number;
  event: KumoCloudEvent;
}

type Behaviour = (call: Call) => Promise<EventInvocationResult> | EventInvocationResult;

const ok: EventInvocationResult = { outcome: "success", status: 200, invocationId: "i" };

/** An invoker that records calls and answers per function. */
class FakeInvoker implements EventInvoker {
  readonly calls: Call[] = [];
  readonly behaviours = new Map<string, Behaviour>();
  active = 0;
  maxActive = 0;

  async invokeEvent(_ns: string, fn: string, event: KumoCloudEvent, meta: { trigger: string; attempt: number }): Promise<EventInvocationResult> {
    const call = { fn, trigger: meta.trigger, attempt: meta.attempt, event };
    this.calls.push(call);
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      return await (this.behaviours.get(fn) ?? (() => ok))(call);
    } finally {
      this.active -= 1;
    }
  }

  ids(fn: string): string[] {
    return this.calls.filter((c) => c.fn === fn).map((c) => c.event.id);
  }
}

/** A promise to hold an invocation until the test releases it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

interface Env {
  db: DatabaseSync;
  bus: EmbeddedBus;
  store: SqliteStore;
  invoker: FakeInvoker;
  registry: Registry;
  dispatcher: Dispatcher;
}

let env: Env | undefined;

async function setup(): Promise<Env> {
  const db = new DatabaseSync(":memory:");
  const bus = createEmbeddedBus({ db });
  const store = openSqliteStore({ db });
  await ensureEventTopics(bus, { eventPartitions: 1 });
  const invoker = new FakeInvoker();
  const registry = new Registry();
  const dispatcher = new Dispatcher({ bus, store, invoker, metrics: createDispatcherMetrics(registry), log: () => undefined });
  env = { db, bus, store, invoker, registry, dispatcher };
  return env;
}

afterEach(async () => {
  if (env === undefined) return;
  await env.dispatcher.stop();
  await env.bus.close();
  await env.store.close();
  env.db.close();
  env = undefined;
});

let seq = 0;
function event(type: string, extra: Partial<KumoCloudEvent> = {}): KumoCloudEvent {
  seq += 1;
  return { specversion: "1.0", id: `ev-${seq}`, source: "test/source", type, data: { n: seq }, ...extra };
}

async function publish(bus: EmbeddedBus, ...events: KumoCloudEvent[]): Promise<void> {
  await createBusSink(bus).append(events.map((e) => ({ event: e })));
}

async function createTrigger(
  store: SqliteStore,
  name: string,
  fn: string,
  source: TriggerSource = { kind: "event", filter: {} },
  delivery: Partial<DeliverySpec> = {},
): Promise<void> {
  await store.create("Trigger", {
    apiVersion: API_VERSION,
    kind: "Trigger",
    metadata: { name, namespace: "default" },
    spec: { function: fn, source, delivery: { ...deliveryDefaults, backoffDelayMs: 1, maxBackoffMs: 5, ...delivery } },
    status: {},
  });
}

async function committed(bus: EmbeddedBus): Promise<string | undefined> {
  return (await bus.committedOffsets(DISPATCHER_GROUP, EVENTS_TOPIC)).get(0);
}

async function end(bus: EmbeddedBus): Promise<string | undefined> {
  return (await bus.endOffsets(EVENTS_TOPIC)).get(0);
}

/** Waits until the dispatcher committed everything appended so far. */
async function drained(bus: EmbeddedBus): Promise<void> {
  const target = await end(bus);
  await vi.waitFor(async () => expect(await committed(bus)).toBe(target), { timeout: 5000, interval: 5 });
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = found?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

describe("Dispatcher", () => {
  it("delivers matching events, commits past them and marks the trigger Ready", async () => {
    const { bus, store, invoker, dispatcher, registry } = await setup();
    await createTrigger(store, "on-create", "inventory", { kind: "event", filter: { exact: { type: "vm.create" } } });
    await dispatcher.start();
    const created = event("vm.create");
    await publish(bus, created, event("vm.delete"));
    await drained(bus);
    expect(invoker.calls.map((c) => [c.fn, c.trigger, c.attempt, c.event.id])).toEqual([["inventory", "on-create", 1, created.id]]);
    expect(invoker.calls[0]?.event.data).toEqual(created.data);
    const trigger = await store.get("Trigger", "default", "on-create");
    expect(getCondition(trigger?.status.conditions, "Ready")?.status).toBe("True");
    expect(trigger?.status.startOffsets).toEqual({ "0": "0" });
    expect(await metric(registry, "kumo_dispatcher_events_consumed_total")).toBe(2);
    expect(await metric(registry, "kumo_dispatcher_deliveries_total", { result: "delivered" })).toBe(1);
  });

  it("retries with backoff, then dead-letters with every attempt recorded; a replay reaches only that trigger", async () => {
    const { bus, store, invoker, dispatcher, registry } = await setup();
    await createTrigger(store, "flaky", "broken", { kind: "event", filter: {} }, { retries: 2 });
    await createTrigger(store, "other", "fine", { kind: "event", filter: {} });
    invoker.behaviours.set("broken", (c) => ({ outcome: c.attempt === 2 ? "timeout" : "function_error", status: 500, error: `boom ${c.attempt}`, invocationId: "x" }));
    await dispatcher.start();
    const failing = event("job.run");
    await publish(bus, failing);
    await drained(bus);
    expect(invoker.calls.filter((c) => c.fn === "broken").map((c) => c.attempt)).toEqual([1, 2, 3]);
    const letters = await listDeadLetters(bus);
    expect(letters).toHaveLength(1);
    const letter = letters[0]!.letter;
    expect(letter.origin).toBe("dispatcher");
    expect(letter.trigger).toEqual({ namespace: "default", name: "flaky", function: "broken" });
    expect(letter.event?.id).toBe(failing.id);
    expect(letter.attempts?.map((a) => a.error)).toEqual(["function_error: boom 1", "timeout: boom 2", "function_error: boom 3"]);
    for (const a of letter.attempts ?? []) expect(Number.isNaN(Date.parse(a.at))).toBe(false);
    expect(letter.reason).toContain("3 attempt(s)");
    expect(await metric(registry, "kumo_dispatcher_retries_total")).toBe(2);
    expect(await metric(registry, "kumo_dispatcher_dead_letters_total", { reason: "delivery" })).toBe(1);

    invoker.behaviours.set("broken", () => ok);
    await replayDeadLetter(bus, letters[0]!);
    await drained(bus);
    expect(invoker.ids("broken")).toEqual([failing.id, failing.id, failing.id, failing.id]);
    expect(invoker.ids("fine")).toEqual([failing.id]); // the replay went to "flaky" only
    expect(invoker.calls.at(-1)?.event[TRIGGER_EXTENSION]).toBe("default/flaky");
    expect(await listDeadLetters(bus, { namespace: "default", trigger: "other" })).toEqual([]);
  });

  it("drops without a dead letter when deadLetter is off", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "quiet", "broken", { kind: "event", filter: {} }, { retries: 1, deadLetter: false });
    invoker.behaviours.set("broken", () => ({ outcome: "platform_error", status: 503, invocationId: "x" }));
    await dispatcher.start();
    await publish(bus, event("a"));
    await drained(bus);
    expect(invoker.calls).toHaveLength(2);
    expect(await listDeadLetters(bus)).toEqual([]);
  });

  it("dead-letters at once when the trigger's function does not exist", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "orphan", "ghost", { kind: "event", filter: {} }, { retries: 5 });
    invoker.behaviours.set("ghost", () => {
      throw new KumoError("KUMO_E_FUNCTION_NOT_FOUND", 'function "ghost" not found');
    });
    await dispatcher.start();
    await publish(bus, event("a"));
    await drained(bus);
    expect(invoker.calls).toHaveLength(1);
    const [entry] = await listDeadLetters(bus);
    expect(entry?.letter.reason).toBe('function "ghost" does not exist in namespace "default"');
  });

  it("delivers events with the same partition key one at a time, in order", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "ordered", "fn", { kind: "event", filter: {} }, { ordered: true, concurrency: 10 });
    const first = gate();
    invoker.behaviours.set("fn", async (c) => {
      if (c.event.id === "a1") await first.wait;
      return ok;
    });
    await dispatcher.start();
    await publish(bus, event("t", { id: "a1", subject: "A" }), event("t", { id: "b1", subject: "B" }), event("t", { id: "a2", subject: "A" }), event("t", { id: "a3", subject: "A" }));
    await vi.waitFor(() => expect(invoker.ids("fn")).toEqual(["a1", "b1"]), { interval: 5 });
    expect(await committed(bus)).toBeUndefined(); // a1 holds the partition's position
    first.open();
    await drained(bus);
    expect(invoker.ids("fn")).toEqual(["a1", "b1", "a2", "a3"]);
  });

  it("keeps a trigger's deliveries within its concurrency", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "narrow", "fn", { kind: "event", filter: {} }, { concurrency: 2 });
    const hold = gate();
    invoker.behaviours.set("fn", async () => {
      await hold.wait;
      return ok;
    });
    await dispatcher.start();
    await publish(bus, event("t"), event("t"), event("t"), event("t"), event("t"));
    await vi.waitFor(() => expect(invoker.calls).toHaveLength(2), { interval: 5 });
    hold.open();
    await drained(bus);
    expect(invoker.calls).toHaveLength(5);
    expect(invoker.maxActive).toBe(2);
  });

  it("does not let a slow trigger stall another, and commits only the finished prefix", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "slow", "slow-fn", { kind: "event", filter: {} }, { concurrency: 1 });
    await createTrigger(store, "fast", "fast-fn", { kind: "event", filter: {} });
    const release = gate();
    invoker.behaviours.set("slow-fn", async () => {
      await release.wait;
      return ok;
    });
    await dispatcher.start();
    const events = [event("t"), event("t"), event("t"), event("t")];
    await publish(bus, ...events);
    await vi.waitFor(() => expect(invoker.ids("fast-fn")).toEqual(events.map((e) => e.id)), { interval: 5 });
    expect(invoker.ids("slow-fn")).toEqual([events[0]!.id]);
    // The fast trigger finished all four, but the slow one holds offset 0: nothing is committed.
    expect(await committed(bus)).toBeUndefined();
    release.open();
    await drained(bus);
    expect(await committed(bus)).toBe("4");
    expect(invoker.ids("slow-fn")).toEqual(events.map((e) => e.id));
  });

  it("pauses reading a partition at maxInFlightPerPartition", async () => {
    const { bus, store, invoker } = await setup();
    const dispatcher = new Dispatcher({ bus, store, invoker, log: () => undefined, maxInFlightPerPartition: 2 });
    env!.dispatcher = dispatcher;
    await createTrigger(store, "slow", "slow-fn", { kind: "event", filter: {} });
    const release = gate();
    invoker.behaviours.set("slow-fn", async (c) => {
      if (c.event.id === "first") await release.wait;
      return ok;
    });
    await dispatcher.start();
    await publish(bus, event("t", { id: "first" }), event("t"), event("t"), event("t"));
    await vi.waitFor(() => expect(invoker.calls).toHaveLength(2), { interval: 5 });
    // Let the bus deliver whatever it would; the bound keeps the 3rd and 4th unread.
    await new Promise((r) => setTimeout(r, 50));
    expect(invoker.calls).toHaveLength(2);
    release.open();
    await drained(bus);
    expect(invoker.calls).toHaveLength(4);
  });

  it("gives a new trigger only events appended after it, unless fromStart", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await dispatcher.start();
    const old = [event("t"), event("t")];
    await publish(bus, ...old);
    await drained(bus);
    await createTrigger(store, "late", "late-fn");
    await createTrigger(store, "history", "history-fn", { kind: "event", filter: {}, fromStart: true });
    await vi.waitFor(() => expect(dispatcher.triggerKeys().sort()).toEqual(["default/history", "default/late"]), { interval: 5 });
    const fresh = event("t");
    await publish(bus, fresh);
    await drained(bus);
    await vi.waitFor(() => expect(invoker.ids("history-fn").sort()).toEqual([...old, fresh].map((e) => e.id).sort()), { interval: 5 });
    expect(invoker.ids("late-fn")).toEqual([fresh.id]);
    expect((await store.get("Trigger", "default", "late"))?.status.startOffsets).toEqual({ "0": "2" });
  });

  it("stops delivering to a deleted trigger", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "gone", "fn");
    await dispatcher.start();
    await publish(bus, event("t", { id: "before" }));
    await drained(bus);
    await store.delete("Trigger", "default", "gone");
    await vi.waitFor(() => expect(dispatcher.triggerKeys()).toEqual([]), { interval: 5 });
    await publish(bus, event("t", { id: "after" }));
    await drained(bus);
    expect(invoker.ids("fn")).toEqual(["before"]);
  });

  it("delivers a cron fire only to the trigger it names", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "nightly", "report", { kind: "cron", schedule: "0 2 * * *", timezone: "UTC" });
    await createTrigger(store, "catch-all", "audit");
    await dispatcher.start();
    await publish(bus, event("dev.kumo.cron.fired", { id: "fire", [TRIGGER_EXTENSION]: "default/nightly" }), event("t", { id: "plain" }));
    await drained(bus);
    expect(invoker.ids("report")).toEqual(["fire"]);
    expect(invoker.ids("audit")).toEqual(["plain"]);
  });

  it("dead-letters a record that is not a CloudEvent and moves on", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "all", "fn");
    await dispatcher.start();
    await bus.publish(EVENTS_TOPIC, [{ value: new TextEncoder().encode("garbage"), headers: { ce_id: "x" } }]);
    await bus.publish(EVENTS_TOPIC, [toBusRecord(event("t", { id: "good" }))]);
    await drained(bus);
    expect(invoker.ids("fn")).toEqual(["good"]);
    const [entry] = await listDeadLetters(bus);
    expect(entry?.letter.reason).toContain("not a CloudEvent");
    expect(Buffer.from(entry?.letter.raw ?? "", "base64").toString()).toBe("garbage");
  });

  it("resumes after a restart from the committed position, without redelivering", async () => {
    const { bus, store, invoker, dispatcher } = await setup();
    await createTrigger(store, "all", "fn");
    await dispatcher.start();
    await publish(bus, event("t", { id: "one" }));
    await drained(bus);
    await dispatcher.stop();
    await publish(bus, event("t", { id: "two" }));
    const next = new Dispatcher({ bus, store, invoker, log: () => undefined });
    env!.dispatcher = next;
    await next.start();
    await drained(bus);
    expect(invoker.ids("fn")).toEqual(["one", "two"]);
  });
});
