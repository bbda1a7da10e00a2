import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it, vi } from "vitest";
import { API_VERSION, CRON_FIRED_TYPE, CRON_MISSED_TYPE, FakeClock, deliveryDefaults } from "../../services/model/index.ts";
import type { Clock, DeadLetter, KumoCloudEvent, TriggerSource } from "../../services/model/index.ts";
import { openSqliteStore } from "../../services/store/index.ts";
import type { SqliteStore } from "../../services/store/index.ts";
import type { EventSink } from "../provider.ts";
import { CronProvider } from "./index.ts";
import type { CronScheduler } from "./index.ts";

class MemorySink implements EventSink {
  readonly appended: { event: KumoCloudEvent; partitionKey?: string }[] = [];
  async append(events: readonly { event: KumoCloudEvent; partitionKey?: string }[]): Promise<void> {
    this.appended.push(...events);
  }
  async deadLetter(_letter: DeadLetter): Promise<void> {}
  ofType(type: string): KumoCloudEvent[] {
    return this.appended.map((a) => a.event).filter((e) => e.type === type);
  }
}

interface FakeTask {
  expression: string;
  timezone: string;
  onFire: (scheduled: Date) => void;
  stopped: boolean;
}

/** A scheduler the test fires by hand. */
class FakeScheduler implements CronScheduler {
  readonly tasks: FakeTask[] = [];
  schedule(expression: string, timezone: string, onFire: (scheduled: Date) => void): () => void {
    const task: FakeTask = { expression, timezone, onFire, stopped: false };
    this.tasks.push(task);
    return () => {
      task.stopped = true;
    };
  }
  live(): FakeTask[] {
    return this.tasks.filter((t) => !t.stopped);
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function open(clock: Clock): { db: DatabaseSync; store: SqliteStore } {
  const db = new DatabaseSync(":memory:");
  const store = openSqliteStore({ db, clock });
  cleanups.push(async () => {
    await store.close();
    db.close();
  });
  return { db, store };
}

async function startProvider(options: { store: SqliteStore; db: DatabaseSync; clock: Clock; scheduler?: CronScheduler }): Promise<{ provider: CronProvider; sink: MemorySink }> {
  const provider = new CronProvider({ ...options, log: () => undefined });
  const sink = new MemorySink();
  await provider.start(sink);
  cleanups.push(() => provider.stop());
  return { provider, sink };
}

async function createCron(store: SqliteStore, name: string, source: Partial<Extract<TriggerSource, { kind: "cron" }>> = {}): Promise<void> {
  await store.create("Trigger", {
    apiVersion: API_VERSION,
    kind: "Trigger",
    metadata: { name, namespace: "default" },
    spec: { function: "report", source: { kind: "cron", schedule: "0 2 * * *", timezone: "UTC", ...source }, delivery: deliveryDefaults },
    status: {},
  });
}

describe("CronProvider", () => {
  it("appends a fire event stamped with the scheduled time, once per scheduled time", async () => {
    const clock = new FakeClock(Date.parse("2025-03-01T00:00:00Z"));
    const { db, store } = open(clock);
    await createCron(store, "nightly", { schedule: "0 2 * * *", timezone: "Asia/Tokyo", data: { report: "idle-volumes" } });
    const scheduler = new FakeScheduler();
    const { sink } = await startProvider({ store, db, clock, scheduler });
    expect(scheduler.live().map((t) => [t.expression, t.timezone])).toEqual([["0 2 * * *", "Asia/Tokyo"]]);
    const scheduled = new Date("2025-03-01T17:00:00Z");
    clock.advance(17 * 3_600_000 + 1234); // node-cron runs a little after the slot
    scheduler.live()[0]!.onFire(scheduled);
    scheduler.live()[0]!.onFire(scheduled); // a duplicate fire of the same slot
    await vi.waitFor(() => expect(sink.appended).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 10));
    expect(sink.appended).toEqual([
      {
        event: {
          specversion: "1.0",
          id: "cron:default/nightly:2025-03-01T17:00:00.000Z",
          source: "kumo/cron/default/nightly",
          type: CRON_FIRED_TYPE,
          subject: "nightly",
          time: "2025-03-01T17:00:00.000Z",
          kumotrigger: "default/nightly",
          datacontenttype: "application/json",
          data: { report: "idle-volumes" },
        },
        partitionKey: "default/nightly",
      },
    ]);
  });

  it("reschedules on a schedule change and stops on delete, without restart", async () => {
    const clock = new FakeClock(Date.parse("2025-03-01T00:00:00Z"));
    const { db, store } = open(clock);
    await createCron(store, "job", { schedule: "0 2 * * *" });
    const scheduler = new FakeScheduler();
    const { provider } = await startProvider({ store, db, clock, scheduler });
    const trigger = (await store.get("Trigger", "default", "job"))!;
    await store.update("Trigger", { ...trigger, spec: { ...trigger.spec, source: { kind: "cron", schedule: "*/5 * * * *", timezone: "Europe/Berlin" } } });
    await vi.waitFor(() => expect(scheduler.live().map((t) => [t.expression, t.timezone])).toEqual([["*/5 * * * *", "Europe/Berlin"]]));
    expect(scheduler.tasks).toHaveLength(2);
    await store.delete("Trigger", "default", "job");
    await vi.waitFor(() => expect(scheduler.live()).toEqual([]));
    expect(provider.scheduledKeys()).toEqual([]);
  });

  it("schedules triggers created while running and ignores event triggers", async () => {
    const clock = new FakeClock(Date.parse("2025-03-01T00:00:00Z"));
    const { db, store } = open(clock);
    const scheduler = new FakeScheduler();
    const { provider } = await startProvider({ store, db, clock, scheduler });
    await store.create("Trigger", {
      apiVersion: API_VERSION,
      kind: "Trigger",
      metadata: { name: "events", namespace: "default" },
      spec: { function: "f", source: { kind: "event", filter: {} }, delivery: deliveryDefaults },
      status: {},
    });
    await createCron(store, "later");
    await vi.waitFor(() => expect(provider.scheduledKeys()).toEqual(["default/later"]));
  });

  it.each([
    ["skip", undefined, 0],
    ["run-once", "run-once" as const, 1],
  ])("reports fires missed while down (policy %s)", async (_name, missedFires, fired) => {
    const clock = new FakeClock(Date.parse("2025-03-01T10:20:00Z"));
    const { db, store } = open(clock);
    await createCron(store, "hourly", { schedule: "0 * * * *", ...(missedFires === undefined ? {} : { missedFires }) });
    const first = await startProvider({ store, db, clock, scheduler: new FakeScheduler() });
    await first.provider.stop();
    clock.advance(3 * 3_600_000 + 15 * 60_000); // down from 10:20 to 13:35: 11:00, 12:00, 13:00 missed
    const { sink } = await startProvider({ store, db, clock, scheduler: new FakeScheduler() });
    const [report] = sink.ofType(CRON_MISSED_TYPE);
    expect(report).toMatchObject({
      source: "kumo/cron/default/hourly",
      subject: "hourly",
      data: { trigger: "default/hourly", missed: 3, capped: false, first: "2025-03-01T11:00:00.000Z", last: "2025-03-01T13:00:00.000Z", policy: missedFires ?? "skip" },
    });
    expect(report?.["kumotrigger"]).toBeUndefined(); // a report is for anyone listening, not the trigger
    const fires = sink.ofType(CRON_FIRED_TYPE);
    expect(fires.map((e) => e.time)).toEqual(fired === 0 ? [] : ["2025-03-01T13:00:00.000Z"]);

    // The report is made once: a restart right after finds nothing new.
    const again = await startProvider({ store, db, clock, scheduler: new FakeScheduler() });
    expect(again.sink.appended).toEqual([]);
  });

  it("counts missed fires from the trigger's creation when it never fired", async () => {
    const clock = new FakeClock(Date.parse("2025-03-01T00:30:00Z"));
    const { db, store } = open(clock);
    await createCron(store, "nightly", { schedule: "0 2 * * *" });
    clock.advance(2 * 86_400_000);
    const { sink } = await startProvider({ store, db, clock, scheduler: new FakeScheduler() });
    expect(sink.ofType(CRON_MISSED_TYPE)[0]?.data).toMatchObject({ missed: 2, last: "2025-03-02T02:00:00.000Z" });
  });

  it("fires with node-cron on real time", async () => {
    const clock = { now: () => Date.now(), setTimer: (fn: () => void, ms: number) => { const t = setTimeout(fn, ms); return () => clearTimeout(t); } };
    const { db, store } = open(clock);
    await createCron(store, "every-second", { schedule: "* * * * * *" });
    const { sink } = await startProvider({ store, db, clock });
    await vi.waitFor(() => expect(sink.appended.length).toBeGreaterThanOrEqual(1), { timeout: 3000, interval: 50 });
    const event = sink.appended[0]!.event;
    expect(event.type).toBe(CRON_FIRED_TYPE);
    expect(Date.parse(event.time ?? "") % 1000).toBe(0);
    expect(event.id).toBe(`cron:default/every-second:${event.time}`);
  });
});
