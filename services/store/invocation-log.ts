// The embedded InvocationLog: every invocation leaves a record, so appending must cost the hot
// path nothing. Records queue in memory; each flush (every flushIntervalMs, or sooner at
// batchSize) writes one chunk row per function holding that batch's records as a JSON array,
// and retention deletes whole old chunks, so SQLite sees a few rows per flush, not one per record.

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { systemClock, toKumoError } from "../model/index.ts";
import type { Clock, InvocationRecord, KumoError } from "../model/index.ts";
import { inTransaction, migrate } from "./database.ts";
import type { Migration } from "./database.ts";
import type { InvocationEntry, InvocationLog, InvocationQuery } from "./store.ts";

/** Options for openInvocationLog. */
export interface InvocationLogOptions {
  db: DatabaseSync;
  /** Close `db` when the log closes (default false). */
  ownsDatabase?: boolean;
  /**
   * Records kept per function (default 1000). Queries see only the newest this many; storage
   * holds up to one chunk more until whole older chunks are pruned. When more than this many
   * records of one function arrive in a single flush, only the newest this many are written:
   * subscribers still receive every record, so a record can be streamed but never stored.
   */
  retentionPerFunction?: number;
  /** Longest a record waits in memory before it is written, ms (default 100). */
  flushIntervalMs?: number;
  /**
   * Queued records that trigger a write without waiting for the interval (default 10,000). Large
   * on purpose: a flush writes at most retentionPerFunction records per function, however many
   * are queued, so bigger batches under load mean less written.
   */
  batchSize?: number;
  /** How often functions with new records have their old chunks pruned, ms (default 0: at every write). */
  pruneIntervalMs?: number;
  /** Queued records kept while writes fail; beyond it the oldest are dropped (default 100,000). */
  maxPending?: number;
  /** Timers for the flush interval and pruning (default: the system clock). */
  clock?: Clock;
  /** Told when a background write fails (default: console.error); the records are retried. */
  onError?: (err: KumoError) => void;
}

const logMigrations: readonly Migration[] = [
  `CREATE TABLE invocations (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     namespace TEXT NOT NULL,
     function TEXT NOT NULL,
     body TEXT NOT NULL
   );
   CREATE INDEX invocations_by_function ON invocations (namespace, function, seq);`,
  migrateToChunks,
];

/**
 * Version 2: one row per (function, flush) instead of per record. A chunk's records have the
 * consecutive sequence numbers first_seq..last_seq (count = last_seq - first_seq + 1), so the
 * seq of body[i] is first_seq + i; chunks never overlap, so first_seq is the row id. `ordinal`
 * is how many records of the function were stored before the chunk, so "the newest N" is one
 * index seek (the chunk holding ordinal total - N), not a walk over chunks.
 */
function migrateToChunks(db: DatabaseSync): void {
  db.exec(`CREATE TABLE invocation_chunks (
     first_seq INTEGER PRIMARY KEY,
     last_seq INTEGER NOT NULL,
     count INTEGER NOT NULL,
     ordinal INTEGER NOT NULL,
     namespace TEXT NOT NULL,
     function TEXT NOT NULL,
     body TEXT NOT NULL
   );
   CREATE INDEX invocation_chunks_by_seq ON invocation_chunks (namespace, function, last_seq);
   CREATE UNIQUE INDEX invocation_chunks_by_ordinal ON invocation_chunks (namespace, function, ordinal);`);
  // Records of the previous layout move over (runs of consecutive seqs become one chunk), so
  // they stay readable and a `kumo logs --follow` cursor stays valid across the upgrade.
  const insert = db.prepare("INSERT INTO invocation_chunks (first_seq, last_seq, count, ordinal, namespace, function, body) VALUES (?, ?, ?, ?, ?, ?, ?)");
  let run: { namespace: string; fn: string; first: number; last: number; ordinal: number; bodies: string[] } | undefined;
  const write = (): void => {
    if (run !== undefined) insert.run(run.first, run.last, run.bodies.length, run.ordinal, run.namespace, run.fn, `[${run.bodies.join(",")}]`);
  };
  for (const row of db.prepare("SELECT seq, namespace, function, body FROM invocations ORDER BY namespace, function, seq").iterate()) {
    const seq = Number(row["seq"]);
    const namespace = String(row["namespace"]);
    const fn = String(row["function"]);
    const body = String(row["body"]);
    const sameFunction = run !== undefined && run.namespace === namespace && run.fn === fn;
    if (run !== undefined && sameFunction && run.last === seq - 1) {
      run.last = seq;
      run.bodies.push(body);
    } else {
      const ordinal = run !== undefined && sameFunction ? run.ordinal + run.bodies.length : 0;
      write();
      run = { namespace, fn, first: seq, last: seq, ordinal, bodies: [body] };
    }
  }
  write();
  db.exec("DROP TABLE invocations");
}

/** After a failed background write, wait this long before retrying, ms. */
const RETRY_AFTER_MS = 1000;

type Listener = (entries: InvocationEntry[]) => void;

/** One function's records in a flush. */
interface FunctionBatch {
  namespace: string;
  fn: string;
  records: InvocationRecord[];
}

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
  /** Highest sequence number written. */
  private lastSeq: number;
  /** Functions written since the last prune, by namespace + "\0" + function. */
  private readonly touched = new Map<string, { namespace: string; fn: string }>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private droppedCount = 0;
  private closed = false;
  private readonly sql: {
    insert: StatementSync;
    lastSeq: StatementSync;
    nextOrdinal: StatementSync;
    chunkAt: StatementSync;
    from: StatementSync;
    prune: StatementSync;
    functions: StatementSync;
  };

  constructor(options: InvocationLogOptions) {
    this.db = options.db;
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.retention = Math.max(1, Math.floor(options.retentionPerFunction ?? 1000));
    this.flushIntervalMs = options.flushIntervalMs ?? 100;
    this.batchSize = Math.max(1, options.batchSize ?? 10_000);
    this.pruneIntervalMs = options.pruneIntervalMs ?? 0;
    this.maxPending = Math.max(this.batchSize, options.maxPending ?? 100_000);
    this.clock = options.clock ?? systemClock;
    this.onError = options.onError ?? ((err) => console.error(`kumo: invocation log: ${err.message}`));
    migrate(this.db, "invocations", logMigrations);
    const db = this.db;
    this.sql = {
      insert: db.prepare("INSERT INTO invocation_chunks (first_seq, last_seq, count, ordinal, namespace, function, body) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      // Chunks never overlap, so the one with the highest first_seq holds the highest seq.
      lastSeq: db.prepare("SELECT last_seq FROM invocation_chunks ORDER BY first_seq DESC LIMIT 1"),
      nextOrdinal: db.prepare("SELECT ordinal + count AS next FROM invocation_chunks WHERE namespace = ? AND function = ? ORDER BY ordinal DESC LIMIT 1"),
      chunkAt: db.prepare("SELECT first_seq, ordinal FROM invocation_chunks WHERE namespace = ? AND function = ? AND ordinal <= ? ORDER BY ordinal DESC LIMIT 1"),
      from: db.prepare("SELECT first_seq, body FROM invocation_chunks WHERE namespace = ? AND function = ? AND last_seq >= ? ORDER BY last_seq"),
      prune: db.prepare("DELETE FROM invocation_chunks WHERE namespace = ? AND function = ? AND ordinal < ?"),
      functions: db.prepare("SELECT DISTINCT namespace, function FROM invocation_chunks"),
    };
    this.lastSeq = this.storedLastSeq();
    // Records written by an earlier run (perhaps with a larger retention) are pruned once at
    // start; after that only functions that receive records need it.
    for (const row of this.sql.functions.all()) this.touch(String(row["namespace"]), String(row["function"]));
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
    const limit = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    if (limit === 0) return [];
    // Older records may still sit in chunks awaiting pruning; they are out of retention already.
    const visible = q.afterSeq === undefined ? Math.min(limit, this.retention) : this.retention;
    const from = Math.max(this.newestStart(q.namespace, q.function, visible)?.seq ?? 0, (q.afterSeq ?? 0) + 1);
    const out: InvocationEntry[] = [];
    for (const row of this.sql.from.iterate(q.namespace, q.function, from)) {
      const first = Number(row["first_seq"]);
      const records = JSON.parse(String(row["body"])) as InvocationRecord[];
      for (let i = Math.max(0, from - first); i < records.length && out.length < limit; i++) {
        out.push({ seq: first + i, record: records[i] as InvocationRecord });
      }
      if (out.length >= limit) break;
    }
    return out;
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

  /**
   * Deletes, for every function written since the last prune, its oldest chunks while the
   * newer ones still hold retentionPerFunction records; index seeks, never a walk over records.
   */
  prune(): void {
    inTransaction(this.db, () => this.pruneTouched());
  }

  private pruneTouched(): void {
    for (const { namespace, fn } of this.touched.values()) {
      const start = this.newestStart(namespace, fn, this.retention);
      if (start !== undefined) this.sql.prune.run(namespace, fn, start.chunkOrdinal);
    }
    this.touched.clear();
    this.lastPrune = this.clock.now();
  }

  /** A function's `n`-th newest stored record (its seq, and its chunk's ordinal), if it has `n`. */
  private newestStart(namespace: string, fn: string, n: number): { seq: number; chunkOrdinal: number } | undefined {
    const ordinal = this.nextOrdinal(namespace, fn) - n;
    if (ordinal < 0) return undefined;
    // Ordinals of a function's chunks are contiguous, so the chunk at or before it holds it,
    // unless that part was pruned already (fewer than n stored).
    const row = this.sql.chunkAt.get(namespace, fn, ordinal);
    if (row === undefined) return undefined;
    const chunkOrdinal = Number(row["ordinal"]);
    return { seq: Number(row["first_seq"]) + (ordinal - chunkOrdinal), chunkOrdinal };
  }

  /** How many records of a function have ever been stored (the ordinal its next chunk gets). */
  private nextOrdinal(namespace: string, fn: string): number {
    return Number(this.sql.nextOrdinal.get(namespace, fn)?.["next"] ?? 0);
  }

  private storedLastSeq(): number {
    return Number(this.sql.lastSeq.get()?.["last_seq"] ?? 0);
  }

  private touch(namespace: string, fn: string): void {
    const key = functionKey(namespace, fn);
    if (!this.touched.has(key)) this.touched.set(key, { namespace, fn });
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

  /** Writes every queued record as one chunk per function in one transaction, then tells subscribers. */
  private flushNow(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    if (this.closed || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const byFunction = groupByFunction(batch);
    // Serialized before taking the write lock. Records beyond retention in one flush would be
    // pruned at once, so only the newest are written.
    const chunks = byFunction.map(({ namespace, fn, records }) => {
      this.touch(namespace, fn);
      const kept = records.length > this.retention ? records.slice(-this.retention) : records;
      return { namespace, fn, total: records.length, count: kept.length, body: JSON.stringify(kept) };
    });
    let firstSeq: number;
    try {
      firstSeq = inTransaction(this.db, () => {
        // Re-read under the write lock: another connection to this database may have written.
        const first = Math.max(this.lastSeq, this.storedLastSeq()) + 1;
        let next = first;
        for (const { namespace, fn, total, count, body } of chunks) {
          const last = next + total - 1;
          this.sql.insert.run(last - count + 1, last, count, this.nextOrdinal(namespace, fn), namespace, fn, body);
          next = last + 1;
        }
        if (this.clock.now() - this.lastPrune >= this.pruneIntervalMs) this.pruneTouched();
        return first;
      });
    } catch (err) {
      // Keep the batch, in order, ahead of anything appended since; it is retried.
      this.pending = batch.concat(this.pending);
      throw err;
    }
    this.lastSeq = firstSeq + batch.length - 1;
    let seq = firstSeq;
    for (const { namespace, fn, records } of byFunction) {
      const listeners = this.listeners.get(functionKey(namespace, fn));
      if (listeners !== undefined) {
        const entries = records.map((record, i) => ({ seq: seq + i, record }));
        for (const listener of listeners) {
          try {
            listener(entries);
          } catch (err) {
            this.onError(toKumoError(err));
          }
        }
      }
      seq += records.length;
    }
  }
}

/** Splits a batch by function, keeping append order within each and first appearance between them. */
function groupByFunction(batch: readonly InvocationRecord[]): FunctionBatch[] {
  const groups: FunctionBatch[] = [];
  const byNamespace = new Map<string, Map<string, FunctionBatch>>();
  for (const record of batch) {
    let fns = byNamespace.get(record.namespace);
    if (fns === undefined) {
      fns = new Map();
      byNamespace.set(record.namespace, fns);
    }
    let group = fns.get(record.function);
    if (group === undefined) {
      group = { namespace: record.namespace, fn: record.function, records: [] };
      fns.set(record.function, group);
      groups.push(group);
    }
    group.records.push(record);
  }
  return groups;
}

function functionKey(namespace: string, fn: string): string {
  return `${namespace}\0${fn}`;
}
