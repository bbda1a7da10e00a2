// Runs the Store contract against SQLite in a temporary data directory, plus the behaviour only
// the SQLite store has: numeric, increasing resourceVersions and a bounded change history.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { newFunction, runStoreContract } from "../../test/contract/store.contract.ts";
import { openDatabase, openSqliteStore } from "./index.ts";
import type { SqliteStore } from "./index.ts";

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "kumo-store-"));
}

runStoreContract("sqlite", async () => {
  const dir = await tempDir();
  let store = openSqliteStore({ db: openDatabase(dir), ownsDatabase: true });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = openSqliteStore({ db: openDatabase(dir), ownsDatabase: true });
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe("SqliteStore", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function open(changeRetention?: number): Promise<SqliteStore> {
    const dir = await tempDir();
    const store = openSqliteStore({ db: openDatabase(dir), ownsDatabase: true, ...(changeRetention === undefined ? {} : { changeRetention }) });
    cleanups.push(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    return store;
  }

  it("numbers resourceVersions with one increasing integer across kinds", async () => {
    const store = await open();
    const versions: number[] = [];
    const f = await store.create("Function", newFunction("f"));
    versions.push(Number(f.metadata.resourceVersion));
    const g = await store.create("Function", newFunction("g"));
    versions.push(Number(g.metadata.resourceVersion));
    const f2 = await store.update("Function", { ...f, spec: { ...f.spec, concurrency: 3 } });
    versions.push(Number(f2.metadata.resourceVersion));
    const deleted = await store.delete("Function", "default", "g");
    versions.push(Number(deleted.metadata.resourceVersion));
    expect(versions).toEqual([1, 2, 3, 4]);
  });

  it("refuses to resume a watch from a version whose changes were pruned", async () => {
    const store = await open(3);
    const f = await store.create("Function", newFunction("f"));
    let current = f;
    for (let i = 1; i <= 5; i++) current = await store.update("Function", { ...current, spec: { ...current.spec, concurrency: i } });

    const expired = store.watch("Function", { sinceResourceVersion: f.metadata.resourceVersion });
    const err: unknown = await expired[Symbol.asyncIterator]().next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KumoError);
    expect((err as KumoError).code).toBe("KUMO_E_WATCH_EXPIRED");

    // The last three changes are still there.
    const recent = store.watch("Function", { sinceResourceVersion: String(Number(current.metadata.resourceVersion) - 3) });
    const it = recent[Symbol.asyncIterator]();
    const concurrencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const next = await it.next();
      if (next.done === true) break;
      concurrencies.push(next.value.object.spec.concurrency);
    }
    expect(concurrencies).toEqual([3, 4, 5]);
    recent.close();
  });

  it("rejects a resourceVersion that is not a number", async () => {
    const store = await open();
    expect(() => store.watch("Function", { sinceResourceVersion: "abc" })).toThrow(/not a decimal integer/);
  });

  it("refuses calls after close with KUMO_E_UNAVAILABLE and ends open watches", async () => {
    const dir = await tempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = openSqliteStore({ db: openDatabase(dir), ownsDatabase: true });
    const w = store.watch("Function");
    const pending = w[Symbol.asyncIterator]().next();
    await store.close();
    expect((await pending).done).toBe(true);
    await expect(store.get("Function", "default", "f")).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
  });
});
