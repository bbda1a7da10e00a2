// The embedded InvocationLog: every invocation leaves a record, so appending must cost the hot
// path nothing. Records queue in memory and are written to SQLite in one transaction per batch
// (every flushIntervalMs, or sooner at batchSize); old records are pruned per function.

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { systemClock, toKumoError } from "../model/index.ts";
import type { Clock, InvocationRecord, KumoError } from "../model/index.ts";
import { inTransaction, migrate } from "./database.ts";
import type { InvocationEntry, InvocationLog, InvocationQuery } from "./store.ts";

/** Options for openInvocationLog. */
export interface InvocationLogOptions {
  db: DatabaseSync;
  /** Close `db` when the log closes (default false). */
  ownsDatabase?: boolean;
  /** Records kept per function; older ones are pruned (default 1000). */
  retentionPerFunction?: number;
  /** Longest a record waits in memory before it is written, ms (default 25). */
  flushIntervalMs?: number;
  /** Queued records that trigger a write without waiting for the interval (default 500). */
  batchSize?: number;
  /** How often functions with new records are pruned to retentionPerFunction, ms (default 5000). */
  pruneIntervalMs?: number;
  /** Queued records kept while writes fail; beyond it the oldest are dropped (default 100,000). */
  maxPending?: number;
  /** Timers for the flush interval and pruning (default: the system clock). */
  clock?: Clock;
  /** Told when a background write fails (default: console.error); the records are retried. */
  onError?: (err: KumoError) => void;
}

const logMigrations: readonly string[] = [
  `CREATE TABLE invocations (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     namespace TEXT NOT NULL,
     function TEXT NOT NULL,
     body TEXT NOT NULL
   );
   CREATE INDEX invocations_by_function ON invocations (namespace, function, seq);`,
];

/** After a failed background write, wait this long before retrying, ms. */
const RETRY_AFTER_MS = 1000;

type Listener = (entries: InvocationEntry[]) => void;

/** Opens the InvocationLog on an open database, creating its table if needed. */
export function openInvocationLog(options: InvocationLogOptions): SqliteInvocationLog {
  return new SqliteInvocationLog(options);
}

/** InvocationLog on SQLite; see openInvocationLog. */
export class SqliteInvocationLog implements InvocationLog {
  private readonly db: DatabaseSync;
  private readonly ownsDatabase: boolean;
  private readonly retention: number;
  private readonly flushIntervalMs: number;
  private readonly batchSize: number;
  private readonly pruneIntervalMs: number;
  private readonly maxPending: number;
  private readonly clock: Clock;
  private readonly onError: (err: KumoError) => void;
  private pending: InvocationRecord[] = [];
  private cancelTimer: (() => void) | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private lastPrune: number;
  /** Functions written since the last prune, as namespace + "\0" + function. */
  private readonly touched = new Set<string>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private droppedCount = 0;
  private closed = false;
  private readonly sql: {
    insert: StatementSync;
    after: StatementSync;
    newest: StatementSync;
    prune: StatementSync;
    functions: StatementSync;
  };

  constructor(options: InvocationLogOptions) {
    this.db = options.db;
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.retention = Math.max(1, Math.floor(options.retentionPerFunction ?? 1000));
    this.flushIntervalMs = options.flushIntervalMs ?? 25;
    this.batchSize = Math.max(1, options.batchSize ?? 500);
    this.pruneIntervalMs = options.pruneIntervalMs ?? 5000;
    this.maxPending = Math.max(this.batchSize, options.maxPending ?? 100_000);
    this.clock = options.clock ?? systemClock;
    this.onError = options.onError ?? ((err) => console.error(`kumo: invocation log: ${err.message}`));
    migrate(this.db, "invocations", logMigrations);
    const db = this.db;
    this.sql = {
      insert: db.prepare("INSERT INTO invocations (namespace, function, body) VALUES (?, ?, ?)"),
      after: db.prepare("SELECT seq, body FROM invocations WHERE namespace = ? AND function = ? AND seq > ? ORDER BY seq LIMIT ?"),
      newest: db.prepare(
        "SELECT seq, body FROM (SELECT seq, body FROM invocations WHERE namespace = ? AND function = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
      ),
      // Deletes the (retention+1)-th newest record of a function and everything older.
      prune: db.prepare(
        `DELETE FROM invocations WHERE namespace = ?1 AND function = ?2 AND seq <=
           (SELECT seq FROM invocations WHERE namespace = ?1 AND function = ?2 ORDER BY seq DESC LIMIT 1 OFFSET ?3)`,
      ),
      functions: db.prepare("SELECT DISTINCT namespace, function FROM invocations"),
    };
    // Records written by an earlier run are pruned once at start; after that only functions
    // that receive records need it.
    for (const row of this.sql.functions.all()) this.touched.add(functionKey(String(row["namespace"]), String(row["function"])));
    this.prune();
    this.lastPrune = this.clock.now();
  }

  /** Records dropped because writes kept failing or the log was closed. */
  get dropped(): number {
    return this.droppedCount;
  }

  append(record: InvocationRecord): void {
    if (this.closed) {
      this.droppedCount += 1;
      return;
    }
    this.pending.push(record);
    if (this.pending.length > this.maxPending) {
      const excess = this.pending.length - this.maxPending;
      this.pending.splice(0, excess);
      this.droppedCount += excess;
    }
    if (this.pending.length >= this.batchSize) {
      // A full batch is written on the next turn of the event loop, never inside the caller.
      this.immediate ??= setImmediate(() => this.flushInBackground());
    } else if (this.cancelTimer === undefined) {
      this.cancelTimer = this.clock.setTimer(() => this.flushInBackground(), this.flushIntervalMs);
    }
  }

  async query(q: InvocationQuery): Promise<InvocationEntry[]> {
    this.flushNow();
    const limit = q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit));
    const rows =
      q.afterSeq === undefined && limit >= 0
        ? this.sql.newest.all(q.namespace, q.function, limit)
        : this.sql.after.all(q.namespace, q.function, q.afterSeq ?? 0, limit);
    return rows.map((row) => ({ seq: Number(row["seq"]), record: JSON.parse(String(row["body"])) as InvocationRecord }));
  }

  subscribe(namespace: string, fn: string, listener: Listener): () => void {
    const key = functionKey(namespace, fn);
    let set = this.listeners.get(key);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(key);
      current?.delete(listener);
      if (current?.size === 0) this.listeners.delete(key);
    };
  }

  async flush(): Promise<void> {
    this.flushNow();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.flushNow();
    } finally {
      this.closed = true;
      this.cancelTimer?.();
      this.cancelTimer = undefined;
      if (this.immediate !== undefined) clearImmediate(this.immediate);
      this.immediate = undefined;
      this.droppedCount += this.pending.length;
      this.pending = [];
      this.listeners.clear();
      if (this.ownsDatabase) this.db.close();
    }
  }

  /** Deletes all but the newest retentionPerFunction records of every function written since the last prune. */
  prune(): void {
    for (const key of this.touched) {
      const [namespace = "", fn = ""] = key.split("\0");
      this.sql.prune.run(namespace, fn, this.retention);
    }
    this.touched.clear();
    this.lastPrune = this.clock.now();
  }

  private flushInBackground(): void {
    try {
      this.flushNow();
    } catch (err) {
      this.onError(toKumoError(err));
      if (!this.closed && this.cancelTimer === undefined) {
        this.cancelTimer = this.clock.setTimer(() => this.flushInBackground(), RETRY_AFTER_MS);
      }
    }
  }

  /** Writes every queued record in one transaction, then tells subscribers. */
  private flushNow(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    if (this.closed || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    let written: { key: string; entry: InvocationEntry }[];
    try {
      written = inTransaction(this.db, () =>
        batch.map((record) => {
          const { lastInsertRowid } = this.sql.insert.run(record.namespace, record.function, JSON.stringify(record));
          return { key: functionKey(record.namespace, record.function), entry: { seq: Number(lastInsertRowid), record } };
        }),
      );
    } catch (err) {
      // Keep the batch, in order, ahead of anything appended since; it is retried.
      this.pending = batch.concat(this.pending);
      throw err;
    }
    const byFunction = new Map<string, InvocationEntry[]>();
    for (const { key, entry } of written) {
      this.touched.add(key);
      if (!this.listeners.has(key)) continue;
      let list = byFunction.get(key);
      if (list === undefined) {
        list = [];
        byFunction.set(key, list);
      }
      list.push(entry);
    }
    for (const [key, entries] of byFunction) {
      for (const listener of this.listeners.get(key) ?? []) {
        try {
          listener(entries);
        } catch (err) {
          this.onError(toKumoError(err));
        }
      }
    }
    if (this.clock.now() - this.lastPrune >= this.pruneIntervalMs) this.prune();
  }
}

function functionKey(namespace: string, fn: string): string {
  return `${namespace}\0${fn}`;
}
