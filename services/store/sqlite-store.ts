// The embedded resource Store: Functions, Revisions and Triggers as JSON rows in SQLite, with
// a global resourceVersion counter, optimistic concurrency, and watches fed by a bounded
// `changes` table (for resuming) plus in-process notification (for live changes).

import { randomUUID } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { KumoError, systemClock } from "../model/index.ts";
import type { Clock, ErrorCode, Kind, ObjectMeta, ResourceOf } from "../model/index.ts";
import { inTransaction, migrate } from "./database.ts";
import type { NewResource, Store, Watch, WatchEvent } from "./store.ts";

/** Options for openSqliteStore. */
export interface SqliteStoreOptions {
  db: DatabaseSync;
  /** Close `db` when the store closes (default false: whoever opened it closes it). */
  ownsDatabase?: boolean;
  /** How many changes to keep for watches that resume from a resourceVersion (default 10,000). */
  changeRetention?: number;
  /** Source of creationTimestamp (default: the system clock). */
  clock?: Clock;
}

const storeMigrations: readonly string[] = [
  `CREATE TABLE resources (
     kind TEXT NOT NULL,
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     rv INTEGER NOT NULL,
     body TEXT NOT NULL,
     PRIMARY KEY (kind, namespace, name)
   ) WITHOUT ROWID;
   CREATE TABLE changes (
     rv INTEGER PRIMARY KEY,
     kind TEXT NOT NULL,
     type TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
     body TEXT NOT NULL
   );
   CREATE INDEX changes_by_kind ON changes (kind, rv);
   CREATE TABLE resource_version (id INTEGER PRIMARY KEY CHECK (id = 1), rv INTEGER NOT NULL);
   INSERT INTO resource_version (id, rv) VALUES (1, 0);`,
];

const notFoundCode: Readonly<Record<Kind, ErrorCode>> = {
  Function: "KUMO_E_FUNCTION_NOT_FOUND",
  Revision: "KUMO_E_REVISION_NOT_FOUND",
  Trigger: "KUMO_E_TRIGGER_NOT_FOUND",
};

/** Opens the Store on an open database, creating its tables if needed. */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}

type EventType = WatchEvent["type"];

/** Store on SQLite; see openSqliteStore. */
export class SqliteStore implements Store {
  private readonly db: DatabaseSync;
  private readonly ownsDatabase: boolean;
  private readonly changeRetention: number;
  private readonly clock: Clock;
  private readonly watchers = new Set<ResourceWatch<Kind>>();
  private closed = false;
  private readonly sql: {
    get: StatementSync;
    listNamespace: StatementSync;
    listAll: StatementSync;
    insert: StatementSync;
    replace: StatementSync;
    remove: StatementSync;
    setRv: StatementSync;
    currentRv: StatementSync;
    recordChange: StatementSync;
    pruneChanges: StatementSync;
    oldestChange: StatementSync;
    changesSince: StatementSync;
  };

  constructor(options: SqliteStoreOptions) {
    this.db = options.db;
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.changeRetention = Math.max(1, Math.floor(options.changeRetention ?? 10_000));
    this.clock = options.clock ?? systemClock;
    migrate(this.db, "store", storeMigrations);
    const db = this.db;
    this.sql = {
      get: db.prepare("SELECT body FROM resources WHERE kind = ? AND namespace = ? AND name = ?"),
      listNamespace: db.prepare("SELECT body FROM resources WHERE kind = ? AND namespace = ? ORDER BY name"),
      listAll: db.prepare("SELECT body FROM resources WHERE kind = ? ORDER BY namespace, name"),
      insert: db.prepare("INSERT INTO resources (kind, namespace, name, rv, body) VALUES (?, ?, ?, ?, ?)"),
      replace: db.prepare("UPDATE resources SET rv = ?, body = ? WHERE kind = ? AND namespace = ? AND name = ?"),
      remove: db.prepare("DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?"),
      setRv: db.prepare("UPDATE resource_version SET rv = ? WHERE id = 1"),
      currentRv: db.prepare("SELECT rv FROM resource_version WHERE id = 1"),
      recordChange: db.prepare("INSERT INTO changes (rv, kind, type, body) VALUES (?, ?, ?, ?)"),
      pruneChanges: db.prepare("DELETE FROM changes WHERE rv <= ?"),
      oldestChange: db.prepare("SELECT min(rv) AS rv FROM changes"),
      changesSince: db.prepare("SELECT type, body FROM changes WHERE kind = ? AND rv > ? ORDER BY rv"),
    };
  }

  async create<K extends Kind>(kind: K, obj: NewResource<K>): Promise<ResourceOf<K>> {
    this.assertOpen();
    checkKind(kind, obj.kind);
    const { name, namespace } = obj.metadata;
    const created = this.write(kind, "ADDED", (rv) => {
      if (this.sql.get.get(kind, namespace, name) !== undefined) {
        throw new KumoError("KUMO_E_ALREADY_EXISTS", `${noun(kind)} "${name}" already exists in namespace "${namespace}": use update or delete it first`);
      }
      const metadata: ObjectMeta = {
        name,
        namespace,
        uid: randomUUID(),
        resourceVersion: String(rv),
        generation: 1,
        creationTimestamp: new Date(this.clock.now()).toISOString(),
      };
      if (obj.metadata.labels !== undefined) metadata.labels = { ...obj.metadata.labels };
      if (obj.metadata.ownerName !== undefined) metadata.ownerName = obj.metadata.ownerName;
      // The object is rebuilt field by field so a client cannot smuggle in uid, generation or extra keys.
      const object = { apiVersion: obj.apiVersion, kind: obj.kind, metadata, spec: obj.spec, status: obj.status ?? {} } as ResourceOf<K>;
      const body = JSON.stringify(object);
      this.sql.insert.run(kind, namespace, name, rv, body);
      return { object, body };
    });
    return created ?? writeLost(kind, namespace, name);
  }

  async get<K extends Kind>(kind: K, namespace: string, name: string): Promise<ResourceOf<K> | undefined> {
    this.assertOpen();
    const row = this.sql.get.get(kind, namespace, name);
    return row === undefined ? undefined : parseBody<K>(row["body"]);
  }

  async list<K extends Kind>(kind: K, namespace?: string): Promise<ResourceOf<K>[]> {
    this.assertOpen();
    const rows = namespace === undefined ? this.sql.listAll.all(kind) : this.sql.listNamespace.all(kind, namespace);
    return rows.map((row) => parseBody<K>(row["body"]));
  }

  async update<K extends Kind>(kind: K, obj: ResourceOf<K>): Promise<ResourceOf<K>> {
    this.assertOpen();
    checkKind(kind, obj.kind);
    return this.modify(kind, obj.metadata, (stored) => {
      const specChanged = canonicalJson(stored.spec) !== canonicalJson(obj.spec);
      const labelsChanged = canonicalJson(stored.metadata.labels ?? {}) !== canonicalJson(obj.metadata.labels ?? {});
      if (!specChanged && !labelsChanged) return undefined;
      const metadata: ObjectMeta = { ...stored.metadata };
      delete metadata.labels;
      if (obj.metadata.labels !== undefined && Object.keys(obj.metadata.labels).length > 0) metadata.labels = { ...obj.metadata.labels };
      if (specChanged) metadata.generation = stored.metadata.generation + 1;
      return { ...stored, metadata, spec: obj.spec };
    });
  }

  async updateStatus<K extends Kind>(kind: K, obj: ResourceOf<K>): Promise<ResourceOf<K>> {
    this.assertOpen();
    checkKind(kind, obj.kind);
    return this.modify(kind, obj.metadata, (stored) => {
      if (canonicalJson(stored.status) === canonicalJson(obj.status)) return undefined;
      return { ...stored, metadata: { ...stored.metadata }, status: obj.status };
    });
  }

  async delete<K extends Kind>(kind: K, namespace: string, name: string, resourceVersion?: string): Promise<ResourceOf<K>> {
    this.assertOpen();
    const deleted = this.write(kind, "DELETED", (rv) => {
      const stored = this.mustGet(kind, namespace, name);
      checkVersion(kind, stored, resourceVersion);
      this.sql.remove.run(kind, namespace, name);
      // The DELETED event carries the deletion's version so a resuming watcher moves past it.
      const object = { ...stored, metadata: { ...stored.metadata, resourceVersion: String(rv) } };
      return { object, body: JSON.stringify(object) };
    });
    return deleted ?? writeLost(kind, namespace, name);
  }

  watch<K extends Kind>(kind: K, options: { sinceResourceVersion?: string } = {}): Watch<K> {
    this.assertOpen();
    const watch = new ResourceWatch<K>(kind, () => this.watchers.delete(watch));
    // node:sqlite is synchronous, so reading the backlog and registering for live changes
    // happen in one turn of the event loop: no write can fall between them.
    const since = options.sinceResourceVersion;
    if (since === undefined) {
      for (const row of this.sql.listAll.all(kind)) watch.push("ADDED", String(row["body"]));
    } else {
      const sinceRv = parseResourceVersion(since);
      const oldestRow = this.sql.oldestChange.get();
      const oldest = oldestRow?.["rv"] === null || oldestRow === undefined ? Number(this.sql.currentRv.get()?.["rv"] ?? 0) + 1 : Number(oldestRow["rv"]);
      if (sinceRv + 1 < oldest) {
        watch.fail(
          new KumoError(
            "KUMO_E_WATCH_EXPIRED",
            `resourceVersion ${since} is too old: only changes after ${oldest - 1} are kept; list ${noun(kind)}s again and watch without a resourceVersion`,
          ),
        );
        return watch;
      }
      for (const row of this.sql.changesSince.all(kind, sinceRv)) watch.push(String(row["type"]) as EventType, String(row["body"]));
    }
    this.watchers.add(watch);
    return watch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watchers]) watch.close();
    if (this.ownsDatabase) this.db.close();
  }

  /** Read-check-write of an existing object; `change` returns undefined when nothing changes. */
  private modify<K extends Kind>(kind: K, sent: ObjectMeta, change: (stored: ResourceOf<K>) => ResourceOf<K> | undefined): ResourceOf<K> {
    let stored: ResourceOf<K> | undefined;
    const written = this.write(kind, "MODIFIED", (rv) => {
      stored = this.mustGet(kind, sent.namespace, sent.name);
      checkVersion(kind, stored, sent.resourceVersion);
      // A write that changes nothing is not a write: no new version, no watch event (as in Kubernetes).
      const next = change(stored);
      if (next === undefined) return undefined;
      next.metadata.resourceVersion = String(rv);
      const body = JSON.stringify(next);
      this.sql.replace.run(rv, body, kind, sent.namespace, sent.name);
      return { object: next, body };
    });
    return written ?? (stored as ResourceOf<K>);
  }

  /**
   * One write in one transaction: bumps the global resourceVersion, lets `apply` write the row,
   * records the change for resuming watchers, prunes old changes, then notifies live watchers.
   */
  private write<K extends Kind>(kind: K, type: EventType, apply: (rv: number) => Written<K> | undefined): ResourceOf<K> | undefined {
    const done = inTransaction(this.db, () => {
      const rv = Number(this.sql.currentRv.get()?.["rv"] ?? 0) + 1;
      const out = apply(rv);
      if (out === undefined) return undefined;
      this.sql.setRv.run(rv);
      this.sql.recordChange.run(rv, kind, type, out.body);
      if (rv > this.changeRetention) this.sql.pruneChanges.run(rv - this.changeRetention);
      return out;
    });
    if (done === undefined) return undefined;
    for (const watch of this.watchers) if (watch.kind === kind) watch.push(type, done.body);
    return done.object;
  }

  private mustGet<K extends Kind>(kind: K, namespace: string, name: string): ResourceOf<K> {
    const row = this.sql.get.get(kind, namespace, name);
    if (row === undefined) throw new KumoError(notFoundCode[kind], `${noun(kind)} "${name}" not found in namespace "${namespace}"`);
    return parseBody<K>(row["body"]);
  }

  private assertOpen(): void {
    if (this.closed) throw new KumoError("KUMO_E_UNAVAILABLE", "the resource store is closed (the server is shutting down)");
  }
}

/** An object as written, with its JSON. */
interface Written<K extends Kind> {
  object: ResourceOf<K>;
  body: string;
}

/** A watch: a queue of events fed by the store, read with for-await. */
class ResourceWatch<K extends Kind> implements Watch<K>, AsyncIterator<WatchEvent<K>> {
  readonly kind: Kind;
  private readonly queue: WatchEvent<K>[] = [];
  private waiting: ((result: IteratorResult<WatchEvent<K>>) => void) | undefined;
  private failWaiting: ((err: Error) => void) | undefined;
  private error: Error | undefined;
  private closed = false;
  private readonly onClose: () => void;

  constructor(kind: Kind, onClose: () => void) {
    this.kind = kind;
    this.onClose = onClose;
  }

  push(type: EventType, body: string): void {
    if (this.closed) return;
    // Each watcher parses its own copy, so one consumer mutating an object cannot affect another.
    const event: WatchEvent<K> = { type, object: JSON.parse(body) as ResourceOf<K> };
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      this.failWaiting = undefined;
      waiting({ value: event, done: false });
    } else {
      this.queue.push(event);
    }
  }

  fail(err: Error): void {
    this.error = err;
    const failWaiting = this.failWaiting;
    this.waiting = undefined;
    this.failWaiting = undefined;
    failWaiting?.(err);
  }

  next(): Promise<IteratorResult<WatchEvent<K>>> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.error !== undefined) {
      const err = this.error;
      this.error = undefined;
      this.close();
      return Promise.reject(err);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  async return(): Promise<IteratorResult<WatchEvent<K>>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent<K>> {
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.onClose();
    const waiting = this.waiting;
    this.waiting = undefined;
    this.failWaiting = undefined;
    waiting?.({ value: undefined, done: true });
  }
}

/** create and delete always write; this only guards the types. */
function writeLost(kind: Kind, namespace: string, name: string): never {
  throw new KumoError("KUMO_E_INTERNAL", `the write of ${noun(kind)} "${name}" in namespace "${namespace}" produced no object`);
}

function noun(kind: Kind): string {
  return kind.toLowerCase();
}

function checkKind(kind: Kind, objectKind: string): void {
  if (kind !== objectKind) throw new KumoError("KUMO_E_VALIDATION", `object kind "${objectKind}" does not match "${kind}": send a ${kind} to the ${noun(kind)}s endpoint`);
}

/** An empty resourceVersion means "whatever is stored" (an unconditional write, as in Kubernetes). */
function checkVersion(kind: Kind, stored: ResourceOf<Kind>, sent: string | undefined): void {
  if (sent === undefined || sent === "" || sent === stored.metadata.resourceVersion) return;
  const { name, namespace, resourceVersion } = stored.metadata;
  throw new KumoError(
    "KUMO_E_CONFLICT",
    `${noun(kind)} "${name}" in namespace "${namespace}" was changed by someone else (resourceVersion is ${resourceVersion}, you sent ${sent}): read it again and retry`,
  );
}

function parseResourceVersion(rv: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(rv)) {
    throw new KumoError("KUMO_E_VALIDATION", `resourceVersion "${rv}" is not a decimal integer: pass a resourceVersion read from the store`);
  }
  return Number(rv);
}

function parseBody<K extends Kind>(body: unknown): ResourceOf<K> {
  return JSON.parse(String(body)) as ResourceOf<K>;
}

/** JSON with object keys sorted, so two equal values compare equal whatever their key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}
