// openDatabase and migrate: the pragmas that make the database durable, and numbered
// per-component migrations applied once, in order, atomically.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { migrate, openDatabase } from "./index.ts";

describe("openDatabase and migrate", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function open(): Promise<{ dir: string; db: DatabaseSync }> {
    const dir = join(await mkdtemp(join(tmpdir(), "kumo-db-")), "nested", "data");
    const db = openDatabase(dir);
    cleanups.push(async () => {
      if (db.isOpen) db.close();
      await rm(join(dir, "..", ".."), { recursive: true, force: true });
    });
    return { dir, db };
  }

  it("creates the data directory and opens kumo.db in WAL mode with foreign keys", async () => {
    const { db } = await open();
    expect(db.prepare("PRAGMA journal_mode").get()?.["journal_mode"]).toBe("wal");
    expect(db.prepare("PRAGMA foreign_keys").get()?.["foreign_keys"]).toBe(1);
    // synchronous = NORMAL is 1.
    expect(db.prepare("PRAGMA synchronous").get()?.["synchronous"]).toBe(1);
    expect(Number(db.prepare("PRAGMA busy_timeout").get()?.["timeout"])).toBeGreaterThan(0);
  });

  it("applies each component's migrations once, in order, and only the new ones later", async () => {
    const { dir, db } = await open();
    expect(migrate(db, "a", ["CREATE TABLE a1 (x INTEGER)", "ALTER TABLE a1 ADD COLUMN y TEXT"])).toBe(2);
    expect(migrate(db, "b", ["CREATE TABLE b1 (x INTEGER)"])).toBe(1);
    db.prepare("INSERT INTO a1 (x, y) VALUES (1, 'one')").run();
    db.close();

    const again = openDatabase(dir);
    cleanups.push(async () => {
      if (again.isOpen) again.close();
    });
    const seen: string[] = [];
    expect(
      migrate(again, "a", [
        "CREATE TABLE a1 (x INTEGER)",
        "ALTER TABLE a1 ADD COLUMN y TEXT",
        (d) => {
          seen.push("3");
          d.exec("UPDATE a1 SET y = upper(y)");
        },
      ]),
    ).toBe(3);
    expect(seen).toEqual(["3"]);
    expect(again.prepare("SELECT y FROM a1").get()?.["y"]).toBe("ONE");
  });

  it("rolls back a failing migration and leaves the version where it was", async () => {
    const { db } = await open();
    migrate(db, "c", ["CREATE TABLE c1 (x INTEGER)"]);
    expect(() => migrate(db, "c", ["CREATE TABLE c1 (x INTEGER)", "CREATE TABLE c2 (x INTEGER); INSERT INTO nope VALUES (1)"])).toThrow(/migration 2 of "c" failed/);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'c2'").get()?.["n"]).toBe(0);
    expect(migrate(db, "c", ["CREATE TABLE c1 (x INTEGER)", "CREATE TABLE c2 (x INTEGER)"])).toBe(2);
  });

  it("refuses a database whose schema is newer than the code", async () => {
    const { db } = await open();
    migrate(db, "d", ["CREATE TABLE d1 (x INTEGER)", "CREATE TABLE d2 (x INTEGER)"]);
    expect(() => migrate(db, "d", ["CREATE TABLE d1 (x INTEGER)"])).toThrow(/newer than this Kumo/);
  });
});
