// The embedded SQLite database (node:sqlite) that holds resources, invocation records and the
// event bus log, and a small numbered-migration mechanism each component registers its schema
// with, keyed by component name.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { KumoError } from "../model/index.ts";

/** The database file inside the data directory. */
export const DATABASE_FILE = "kumo.db";

/** Options for openDatabase. */
export interface DatabaseOptions {
  /** How long a write waits for another connection's lock before failing, ms (default 5000). */
  busyTimeoutMs?: number;
}

/** Opens (creating if needed) `<dataDir>/kumo.db` in WAL mode with foreign keys on. */
export function openDatabase(dataDir: string, options: DatabaseOptions = {}): DatabaseSync {
  mkdirSync(dataDir, { recursive: true });
  const db = new DatabaseSync(join(dataDir, DATABASE_FILE), { enableForeignKeyConstraints: true });
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  try {
    db.exec("PRAGMA journal_mode = WAL");
    // NORMAL in WAL mode syncs at checkpoints, not at every commit: a committed transaction
    // survives a crash or SIGKILL of the process (it is in the WAL file, which the OS holds),
    // but the last few commits may be lost if the machine itself loses power. FULL would close
    // that gap at the cost of an fsync per commit; the bus can opt into FULL per connection.
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.exec("PRAGMA foreign_keys = ON");
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** One migration: SQL to execute, or a function for changes SQL alone cannot express. */
export type Migration = string | ((db: DatabaseSync) => void);

/**
 * Applies the migrations of `component` that are not yet applied, each in its own transaction,
 * in order. Migration i (0-based) is version i+1; never edit or reorder an applied migration,
 * only append new ones. Returns the component's schema version afterwards.
 */
export function migrate(db: DatabaseSync, component: string, migrations: readonly Migration[]): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (component, version)
  ) WITHOUT ROWID`);
  const current = db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_migrations WHERE component = ?");
  const record = db.prepare("INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)");
  const versionNow = (): number => Number(current.get(component)?.["v"] ?? 0);
  let version = versionNow();
  while (version < migrations.length) {
    // IMMEDIATE takes the write lock first, so two processes opening the same database cannot
    // both apply one migration; the version is re-read under the lock.
    db.exec("BEGIN IMMEDIATE");
    try {
      version = versionNow();
      const step = migrations[version];
      if (step !== undefined) {
        if (typeof step === "string") db.exec(step);
        else step(db);
        record.run(component, version + 1, new Date().toISOString());
        version += 1;
      }
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw new KumoError("KUMO_E_INTERNAL", `migration ${version + 1} of "${component}" failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  if (version > migrations.length) {
    throw new KumoError("KUMO_E_INTERNAL", `database schema of "${component}" is at version ${version}, newer than this Kumo (${migrations.length}): upgrade Kumo or use another data directory`);
  }
  return version;
}

/** Runs fn inside a transaction (BEGIN IMMEDIATE), committing on return and rolling back on throw. */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  let result: T;
  try {
    result = fn();
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
  db.exec("COMMIT");
  return result;
}
