// The cron provider: watches cron Triggers and schedules them with node-cron (time zones
// included). Each fire appends a `dev.kumo.cron.fired` CloudEvent addressed to its trigger, with
// `time` = the scheduled time and an id unique per (trigger, scheduled time). The last scheduled
// time handled per trigger is kept in SQLite, so fires missed while Kumo was down are reported
// on start and, with `missedFires: "run-once"`, the latest one is fired.

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { Counter, Registry } from "prom-client";
import { schedule as scheduleTask } from "node-cron";
import { CRON_FIRED_TYPE, CRON_MISSED_TYPE, TRIGGER_EXTENSION, systemClock } from "../../services/model/index.ts";
import type { Clock, KumoCloudEvent, Trigger } from "../../services/model/index.ts";
import { migrate } from "../../services/store/index.ts";
import type { Store, Watch } from "../../services/store/index.ts";
import type { EventProvider, EventSink, ProviderHealth } from "../provider.ts";
import { CronSchedule, installCronCheck, missedFires } from "./schedule.ts";

/** Runs a callback at each fire time of an expression; node-cron in production, a fake in tests. */
export interface CronScheduler {
  /** Starts calling `onFire` with each scheduled time; the returned function stops it. */
  schedule(expression: string, timezone: string, onFire: (scheduled: Date) => void): () => void;
}

/** The node-cron scheduler: `ctx.date` is the slot node-cron scheduled, not the moment it ran. */
export const nodeCronScheduler: CronScheduler = {
  schedule(expression, timezone, onFire) {
    const task = scheduleTask(expression, (ctx) => onFire(ctx.date), { timezone });
    return () => void task.destroy();
  },
};

/** The cron provider's metric families. */
export interface CronMetrics {
  fires: Counter;
  missed: Counter;
  fireErrors: Counter;
}

/** Registers the cron provider's metrics on a registry. */
export function createCronMetrics(registry: Registry): CronMetrics {
  const registers = [registry];
  return {
    fires: new Counter({ name: "kumo_cron_fires_total", help: "Cron fires appended to the bus.", registers }),
    missed: new Counter({ name: "kumo_cron_missed_fires_total", help: "Cron fire times that passed while Kumo was down.", registers }),
    fireErrors: new Counter({ name: "kumo_cron_fire_errors_total", help: "Cron fires the bus did not take (after retries).", registers }),
  };
}

/** Where the cron provider reports what happens to it. */
export type CronLog = (level: "info" | "warn" | "error", message: string) => void;

/** What the cron provider needs. */
export interface CronProviderOptions {
  store: Store;
  /** Database for the last handled fire per trigger (table cron_last_fires); without it, memory only (no missed-fire detection across restarts). */
  db?: DatabaseSync;
  clock?: Clock;
  scheduler?: CronScheduler;
  metrics?: CronMetrics;
  log?: CronLog;
  /** Appends tried per fire before it counts as failed (default 5, with backoff from 500 ms). */
  appendAttempts?: number;
}

const migrations = [
  `CREATE TABLE cron_last_fires (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     uid TEXT NOT NULL,
     scheduled_ms INTEGER NOT NULL,
     PRIMARY KEY (namespace, name)
   ) WITHOUT ROWID`,
];

/** Last handled scheduled time per trigger. */
interface LastFires {
  get(namespace: string, name: string, uid: string): number | undefined;
  set(namespace: string, name: string, uid: string, ms: number): void;
  delete(namespace: string, name: string): void;
}

function memoryLastFires(): LastFires {
  const map = new Map<string, { uid: string; ms: number }>();
  return {
    get: (ns, name, uid) => {
      const row = map.get(`${ns}/${name}`);
      return row?.uid === uid ? row.ms : undefined;
    },
    set: (ns, name, uid, ms) => void map.set(`${ns}/${name}`, { uid, ms }),
    delete: (ns, name) => void map.delete(`${ns}/${name}`),
  };
}

function sqliteLastFires(db: DatabaseSync): LastFires {
  migrate(db, "cron", migrations);
  const get: StatementSync = db.prepare("SELECT uid, scheduled_ms FROM cron_last_fires WHERE namespace = ? AND name = ?");
  const set: StatementSync = db.prepare(
    "INSERT INTO cron_last_fires (namespace, name, uid, scheduled_ms) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, name) DO UPDATE SET uid = excluded.uid, scheduled_ms = excluded.scheduled_ms",
  );
  const del: StatementSync = db.prepare("DELETE FROM cron_last_fires WHERE namespace = ? AND name = ?");
  return {
    get: (ns, name, uid) => {
      const row = get.get(ns, name);
      return row !== undefined && row["uid"] === uid ? Number(row["scheduled_ms"]) : undefined;
    },
    set: (ns, name, uid, ms) => void set.run(ns, name, uid, ms),
    delete: (ns, name) => void del.run(ns, name),
  };
}

/** A scheduled cron trigger. */
interface Scheduled {
  trigger: Trigger;
  signature: string;
  stop: () => void;
  /** Fires of one trigger run one after another, so the recorded last fire only moves forward. */
  chain: Promise<void>;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The CloudEvent a cron trigger fires for one scheduled time. */
export function cronFiredEvent(trigger: Trigger, scheduledMs: number): KumoCloudEvent {
  const { namespace, name } = trigger.metadata;
  const time = new Date(scheduledMs).toISOString();
  const event: KumoCloudEvent = {
    specversion: "1.0",
    id: `cron:${namespace}/${name}:${time}`,
    source: `kumo/cron/${namespace}/${name}`,
    type: CRON_FIRED_TYPE,
    subject: name,
    time,
    [TRIGGER_EXTENSION]: `${namespace}/${name}`,
  };
  const source = trigger.spec.source;
  if (source.kind === "cron" && source.data !== undefined) {
    event.datacontenttype = "application/json";
    event.data = source.data;
  }
  return event;
}

/** Fires cron Triggers into the bus; see the module header. */
export class CronProvider implements EventProvider {
  readonly name = "cron";
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly scheduler: CronScheduler;
  private readonly metrics: CronMetrics;
  private readonly log: CronLog;
  private readonly lastFires: LastFires;
  private readonly appendAttempts: number;
  private readonly scheduled = new Map<string, Scheduled>();
  private sink: EventSink | undefined;
  private watch: Watch<"Trigger"> | undefined;
  private watching: Promise<void> | undefined;
  private stopped = true;
  private lastFireTime: string | undefined;
  private lastError = "";

  constructor(options: CronProviderOptions) {
    installCronCheck();
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.scheduler = options.scheduler ?? nodeCronScheduler;
    this.metrics = options.metrics ?? createCronMetrics(new Registry());
    this.log = options.log ?? ((level, text) => (level === "info" ? console.log : console.error)(`[cron] ${text}`));
    this.lastFires = options.db === undefined ? memoryLastFires() : sqliteLastFires(options.db);
    this.appendAttempts = options.appendAttempts ?? 5;
  }

  /** Reports missed fires of existing cron triggers, schedules them, then follows changes. */
  async start(sink: EventSink): Promise<void> {
    this.sink = sink;
    this.stopped = false;
    for (const trigger of await this.store.list("Trigger")) {
      if (trigger.spec.source.kind !== "cron") continue;
      await this.catchUp(trigger);
      this.upsert(trigger);
    }
    const watch = this.store.watch("Trigger");
    this.watch = watch;
    this.watching = (async () => {
      for await (const change of watch) {
        const { namespace, name } = change.object.metadata;
        if (change.type === "DELETED") {
          this.unschedule(`${namespace}/${name}`);
          this.lastFires.delete(namespace, name);
        } else this.upsert(change.object);
      }
    })();
  }

  /** Stops every schedule and the watch; waits for fires being appended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    await this.watching?.catch(() => undefined);
    const chains = [...this.scheduled.values()].map((s) => s.chain);
    for (const key of [...this.scheduled.keys()]) this.unschedule(key);
    await Promise.allSettled(chains);
  }

  health(): ProviderHealth {
    const health: ProviderHealth = {
      ready: !this.stopped,
      message: this.stopped ? "stopped" : `${this.scheduled.size} cron trigger(s) scheduled${this.lastError === "" ? "" : `; last error: ${this.lastError}`}`,
    };
    if (this.lastFireTime !== undefined) health.lastMessageTime = this.lastFireTime;
    return health;
  }

  /** Keys (`<namespace>/<name>`) of the scheduled triggers. */
  scheduledKeys(): string[] {
    return [...this.scheduled.keys()];
  }

  private upsert(trigger: Trigger): void {
    const { namespace, name, uid } = trigger.metadata;
    const key = `${namespace}/${name}`;
    const source = trigger.spec.source;
    if (source.kind !== "cron") {
      this.unschedule(key);
      return;
    }
    const signature = JSON.stringify([uid, source.schedule, source.timezone, source.data ?? null]);
    const current = this.scheduled.get(key);
    if (current !== undefined && current.signature === signature) {
      current.trigger = trigger;
      return;
    }
    this.unschedule(key);
    let stop: () => void;
    const entry: Scheduled = { trigger, signature, stop: () => undefined, chain: current?.chain ?? Promise.resolve() };
    try {
      stop = this.scheduler.schedule(source.schedule, source.timezone, (scheduled) => this.onFire(entry, scheduled.getTime()));
    } catch (err) {
      // Validation rejects bad expressions at create time; this guards objects written around it.
      this.log("error", `trigger ${key}: cannot schedule "${source.schedule}" in ${source.timezone}: ${errorText(err)}`);
      return;
    }
    entry.stop = stop;
    this.scheduled.set(key, entry);
    if (this.lastFires.get(namespace, name, uid) === undefined) this.lastFires.set(namespace, name, uid, this.clock.now());
  }

  private unschedule(key: string): void {
    const entry = this.scheduled.get(key);
    if (entry === undefined) return;
    this.scheduled.delete(key);
    entry.stop();
  }

  private onFire(entry: Scheduled, scheduledMs: number): void {
    entry.chain = entry.chain
      .then(async () => {
        await this.fire(entry.trigger, scheduledMs);
      })
      .catch((err: unknown) => {
        this.lastError = errorText(err);
        this.log("error", `trigger ${entry.trigger.metadata.namespace}/${entry.trigger.metadata.name}: fire failed: ${this.lastError}`);
      });
  }

  /** Appends the fire for one scheduled time unless that time (or a later one) was already handled. */
  async fire(trigger: Trigger, scheduledMs: number): Promise<boolean> {
    const { namespace, name, uid } = trigger.metadata;
    const last = this.lastFires.get(namespace, name, uid);
    if (last !== undefined && scheduledMs <= last) {
      this.log("warn", `trigger ${namespace}/${name}: fire for ${new Date(scheduledMs).toISOString()} already handled, skipped`);
      return false;
    }
    const event = cronFiredEvent(trigger, scheduledMs);
    if (!(await this.append(event, `${namespace}/${name}`))) return false;
    this.lastFires.set(namespace, name, uid, scheduledMs);
    this.metrics.fires.inc();
    this.lastFireTime = new Date(this.clock.now()).toISOString();
    return true;
  }

  private async append(event: KumoCloudEvent, partitionKey: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const sink = this.sink;
      if (sink === undefined || this.stopped) return false;
      try {
        await sink.append([{ event, partitionKey }]);
        return true;
      } catch (err) {
        this.lastError = errorText(err);
        if (attempt >= this.appendAttempts) {
          this.metrics.fireErrors.inc();
          this.log("error", `event ${event.id} was not appended after ${attempt} attempts: ${this.lastError}`);
          return false;
        }
        await new Promise<void>((resolve) => this.clock.setTimer(resolve, 500 * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * Reports the fires a trigger missed since its last handled one (or its creation) and, with
   * missedFires "run-once", fires once for the latest; "skip" (the default) fires nothing.
   */
  private async catchUp(trigger: Trigger): Promise<void> {
    const source = trigger.spec.source;
    if (source.kind !== "cron") return;
    const { namespace, name, uid } = trigger.metadata;
    const key = `${namespace}/${name}`;
    const since = this.lastFires.get(namespace, name, uid) ?? Date.parse(trigger.metadata.creationTimestamp);
    const now = this.clock.now();
    if (!Number.isFinite(since) || since >= now) return;
    let schedule: CronSchedule;
    try {
      schedule = new CronSchedule(source.schedule, source.timezone);
    } catch (err) {
      this.log("error", `trigger ${key}: ${errorText(err)}`);
      return;
    }
    const missed = missedFires(schedule, since, now);
    schedule.dispose();
    if (missed.count === 0 || missed.first === undefined || missed.last === undefined) return;
    const policy = source.missedFires ?? "skip";
    const first = new Date(missed.first).toISOString();
    const last = new Date(missed.last).toISOString();
    const count = `${missed.count}${missed.capped ? "+" : ""}`;
    this.log("warn", `trigger ${key} missed ${count} fire(s) of "${source.schedule}" (${source.timezone}) from ${first} to ${last} while Kumo was down; policy ${policy}`);
    this.metrics.missed.inc(missed.count);
    const report: KumoCloudEvent = {
      specversion: "1.0",
      id: `cron-missed:${key}:${last}`,
      source: `kumo/cron/${namespace}/${name}`,
      type: CRON_MISSED_TYPE,
      subject: name,
      time: new Date(now).toISOString(),
      datacontenttype: "application/json",
      data: { trigger: key, schedule: source.schedule, timezone: source.timezone, missed: missed.count, capped: missed.capped, first, last, policy },
    };
    await this.append(report, key);
    if (policy === "run-once") await this.fire(trigger, missed.last);
    else this.lastFires.set(namespace, name, uid, missed.last);
  }
}
