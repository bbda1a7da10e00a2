// The SQLite InvocationLog: batching off the hot path (driven by a fake clock), query order and
// paging, per-function retention by whole chunks, coalescing under load, flush on close,
// subscribers, retry after a failed write, and opening a database of the previous layout.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../model/index.ts";
import type { InvocationRecord } from "../model/index.ts";
import { migrate, openDatabase, openInvocationLog } from "./index.ts";
import type { InvocationEntry, InvocationLogOptions, SqliteInvocationLog } from "./index.ts";

type RecordOption = (r: InvocationRecord) => void;

let counter = 0;
function record(...options: RecordOption[]): InvocationRecord {
  counter += 1;
  const r: InvocationRecord = {
    id: `inv-${counter}`,
    namespace: "default",
    function: "hello",
    revision: "hello-00001",
    start: new Date(1_700_000_000_000 + counter).toISOString(),
    durationMs: 3,
    outcome: "success",
    status: 200,
    coldStart: false,
    logs: [{ t: 1, level: "info", message: `line ${counter}` }],
  };
  for (const option of options) option(r);
  return r;
}
const ofFunction =
  (fn: string, namespace = "default"): RecordOption =>
  (r) => {
    r.function = fn;
    r.namespace = namespace;
  };
const withId =
  (id: string): RecordOption =>
  (r) => {
    r.id = id;
  };

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("SqliteInvocationLog", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function open(options: Partial<InvocationLogOptions> = {}): Promise<{ log: SqliteInvocationLog; db: DatabaseSync; clock: FakeClock; dir: string }> {
    const dir = await mkdtemp(join(tmpdir(), "kumo-log-"));
    const db = openDatabase(dir);
    const clock = new FakeClock(1_000_000);
    const log = openInvocationLog({ db, clock, ...options });
    cleanups.push(async () => {
      await log.close();
      if (db.isOpen) db.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { log, db, clock, dir };
  }

  // Storage internals: records held in chunk rows (including any awaiting pruning), and the chunks.
  const stored = (db: DatabaseSync): number => Number(db.prepare("SELECT coalesce(sum(count), 0) AS n FROM invocation_chunks").get()?.["n"]);
  const chunks = (db: DatabaseSync, fn = "hello"): { first: number; count: number }[] =>
    db
      .prepare("SELECT first_seq, count FROM invocation_chunks WHERE namespace = 'default' AND function = ? ORDER BY first_seq")
      .all(fn)
      .map((row) => ({ first: Number(row["first_seq"]), count: Number(row["count"]) }));
  const ids = (entries: InvocationEntry[]): string[] => entries.map((e) => e.record.id);

  it("keeps appends in memory until the flush interval passes, then writes them", async () => {
    const { log, db, clock } = await open({ flushIntervalMs: 25 });
    log.append(record());
    log.append(record());
    await nextTurn();
    expect(stored(db)).toBe(0);
    clock.advance(25);
    expect(stored(db)).toBe(2);
  });

  it("writes a full batch on the next turn without waiting for the interval", async () => {
    const { log, db } = await open({ batchSize: 500 });
    for (let i = 0; i < 499; i++) log.append(record());
    await nextTurn();
    expect(stored(db)).toBe(0);
    log.append(record());
    expect(stored(db)).toBe(0);
    await nextTurn();
    expect(stored(db)).toBe(500);
  });

  it("returns one function's records oldest-first with increasing sequence numbers", async () => {
    const { log } = await open();
    log.append(record(withId("a1")));
    log.append(record(ofFunction("other"), withId("o1")));
    log.append(record(withId("a2")));
    log.append(record(ofFunction("hello", "team-b"), withId("b1")));
    log.append(record(withId("a3")));
    const entries = await log.query({ namespace: "default", function: "hello" });
    expect(entries.map((e) => e.record.id)).toEqual(["a1", "a2", "a3"]);
    const seqs = entries.map((e) => e.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(3);
    expect(entries[0]?.record).toEqual(expect.objectContaining({ id: "a1", outcome: "success", logs: [expect.objectContaining({ level: "info" })] }));
    expect((await log.query({ namespace: "team-b", function: "hello" })).map((e) => e.record.id)).toEqual(["b1"]);
    expect(await log.query({ namespace: "default", function: "nobody" })).toEqual([]);
  });

  it("returns records after a sequence number, and the newest ones with a limit", async () => {
    const { log } = await open();
    for (const id of ["r1", "r2", "r3", "r4", "r5"]) log.append(record(withId(id)));
    const all = await log.query({ namespace: "default", function: "hello" });
    const third = all[2]?.seq ?? -1;
    expect((await log.query({ namespace: "default", function: "hello", afterSeq: third })).map((e) => e.record.id)).toEqual(["r4", "r5"]);
    expect((await log.query({ namespace: "default", function: "hello", afterSeq: all[0]?.seq ?? -1, limit: 2 })).map((e) => e.record.id)).toEqual(["r2", "r3"]);
    expect((await log.query({ namespace: "default", function: "hello", limit: 2 })).map((e) => e.record.id)).toEqual(["r4", "r5"]);
    expect(await log.query({ namespace: "default", function: "hello", afterSeq: all[4]?.seq ?? -1 })).toEqual([]);
  });

  it("keeps at most retentionPerFunction records per function after a prune", async () => {
    const { log, db, clock } = await open({ retentionPerFunction: 3, pruneIntervalMs: 1000 });
    for (let i = 1; i <= 5; i++) {
      log.append(record(withId(`h${i}`)));
      await log.flush();
    }
    log.append(record(ofFunction("other"), withId("o1")));
    await log.flush();
    // Pruning is periodic, not on every write; queries see only the retained newest meanwhile.
    expect(stored(db)).toBe(6);
    expect(ids(await log.query({ namespace: "default", function: "hello" }))).toEqual(["h3", "h4", "h5"]);
    clock.advance(1000);
    log.append(record(withId("h6")));
    await log.flush();
    expect((await log.query({ namespace: "default", function: "hello" })).map((e) => e.record.id)).toEqual(["h4", "h5", "h6"]);
    expect((await log.query({ namespace: "default", function: "other" })).map((e) => e.record.id)).toEqual(["o1"]);
    expect(stored(db)).toBe(4);
  });

  it("prunes whole oldest chunks, never leaving fewer than retentionPerFunction records", async () => {
    const { log, db } = await open({ retentionPerFunction: 5, pruneIntervalMs: 0 });
    let n = 0;
    for (let flush = 1; flush <= 10; flush++) {
      for (let i = 0; i < 3; i++) log.append(record(withId(`h${++n}`)));
      await log.flush();
      expect(stored(db)).toBeGreaterThanOrEqual(Math.min(n, 5));
      // At most one chunk beyond what retention needs.
      expect(stored(db)).toBeLessThan(5 + 3);
      expect(ids(await log.query({ namespace: "default", function: "hello" }))).toEqual(
        Array.from({ length: Math.min(n, 5) }, (_, i) => `h${n - Math.min(n, 5) + 1 + i}`),
      );
    }
    // 30 records in chunks of 3: the two newest chunks hold the newest 5; the other 8 are gone.
    expect(chunks(db).map((c) => c.count)).toEqual([3, 3]);
    expect(ids(await log.query({ namespace: "default", function: "hello", afterSeq: 0 }))).toEqual(["h26", "h27", "h28", "h29", "h30"]);
  });

  it("writes only the newest retentionPerFunction records of a flush, but subscribers see all", async () => {
    const { log, db } = await open({ retentionPerFunction: 3 });
    const streamed: InvocationEntry[] = [];
    log.subscribe("default", "hello", (entries) => streamed.push(...entries));
    for (let i = 1; i <= 10; i++) log.append(record(withId(`h${i}`)));
    log.append(record(ofFunction("other"), withId("o1")));
    await log.flush();

    expect(ids(streamed)).toEqual(["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10"]);
    const seqs = streamed.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 0) + i));
    expect(chunks(db).map((c) => c.count)).toEqual([3]);
    const queried = await log.query({ namespace: "default", function: "hello" });
    expect(queried).toEqual(streamed.slice(-3));
    expect(ids(await log.query({ namespace: "default", function: "other" }))).toEqual(["o1"]);
  });

  it("pages after a sequence number that falls inside a chunk", async () => {
    const { log, db } = await open();
    for (const id of ["a1", "a2", "a3", "a4", "a5"]) log.append(record(withId(id)));
    await log.flush();
    for (const id of ["b1", "b2", "b3"]) log.append(record(withId(id)));
    await log.flush();
    expect(chunks(db)).toHaveLength(2);
    const all = await log.query({ namespace: "default", function: "hello" });
    const seqOf = (id: string): number => all.find((e) => e.record.id === id)?.seq ?? -1;
    const after = (afterSeq: number, limit?: number): Promise<InvocationEntry[]> =>
      log.query(limit === undefined ? { namespace: "default", function: "hello", afterSeq } : { namespace: "default", function: "hello", afterSeq, limit });
    expect(ids(await after(seqOf("a2")))).toEqual(["a3", "a4", "a5", "b1", "b2", "b3"]);
    expect(ids(await after(seqOf("a2"), 2))).toEqual(["a3", "a4"]);
    expect(ids(await after(seqOf("a4"), 3))).toEqual(["a5", "b1", "b2"]);
    expect(ids(await after(seqOf("b1")))).toEqual(["b2", "b3"]);
    expect((await after(seqOf("a3"))).map((e) => e.seq)).toEqual(all.slice(3).map((e) => e.seq));
    expect(ids(await log.query({ namespace: "default", function: "hello", limit: 4 }))).toEqual(["a5", "b1", "b2", "b3"]);
    expect(await after(seqOf("b3"))).toEqual([]);
  });

  it("prunes records left by an earlier run when it opens", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, retentionPerFunction: 10 });
    for (let i = 1; i <= 6; i++) first.append(record(withId(`h${i}`)));
    await first.close();
    const second = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, retentionPerFunction: 2 });
    cleanups.push(() => second.close());
    expect((await second.query({ namespace: "default", function: "hello" })).map((e) => e.record.id)).toEqual(["h5", "h6"]);
  });

  it("writes everything queued on close, and sequence numbers keep increasing after a reopen", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const clock = new FakeClock(0);
    const first = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, clock });
    first.append(record(withId("before-1")));
    first.append(record(withId("before-2")));
    await first.close();

    const second = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, clock });
    cleanups.push(() => second.close());
    const before = await second.query({ namespace: "default", function: "hello" });
    expect(before.map((e) => e.record.id)).toEqual(["before-1", "before-2"]);
    second.append(record(withId("after")));
    const after = await second.query({ namespace: "default", function: "hello", afterSeq: before[1]?.seq ?? -1 });
    expect(after.map((e) => e.record.id)).toEqual(["after"]);
  });

  it("continues sequence numbers after a reopen even when the newest records were of another function", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, retentionPerFunction: 2 });
    for (let i = 1; i <= 5; i++) first.append(record(withId(`h${i}`)));
    await first.flush();
    for (let i = 1; i <= 4; i++) first.append(record(ofFunction("other"), withId(`o${i}`)));
    const highest = Math.max(...(await first.query({ namespace: "default", function: "other" })).map((e) => e.seq));
    await first.close();

    const second = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true, retentionPerFunction: 2 });
    cleanups.push(() => second.close());
    second.append(record(withId("h6")));
    const entries = await second.query({ namespace: "default", function: "hello" });
    expect(ids(entries)).toEqual(["h5", "h6"]);
    expect(entries[1]?.seq).toBe(highest + 1);
  });

  it("gives distinct sequence numbers when two connections write to one database", async () => {
    const { log, dir } = await open();
    const other = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true });
    cleanups.push(() => other.close());
    for (let i = 1; i <= 3; i++) {
      log.append(record(withId(`x${i}`)));
      await log.flush();
      other.append(record(withId(`y${i}`)));
      await other.flush();
    }
    const entries = await log.query({ namespace: "default", function: "hello" });
    expect(ids(entries)).toEqual(["x1", "y1", "x2", "y2", "x3", "y3"]);
    expect(new Set(entries.map((e) => e.seq)).size).toBe(6);
  });

  it("opens a database written by the previous layout (one row per record), keeping records and seqs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const old = openDatabase(dir);
    migrate(old, "invocations", [
      `CREATE TABLE invocations (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         namespace TEXT NOT NULL,
         function TEXT NOT NULL,
         body TEXT NOT NULL
       );
       CREATE INDEX invocations_by_function ON invocations (namespace, function, seq);`,
    ]);
    const insert = old.prepare("INSERT INTO invocations (namespace, function, body) VALUES (?, ?, ?)");
    const written = [record(withId("h1")), record(withId("h2")), record(ofFunction("other"), withId("o1")), record(withId("h3")), record(ofFunction("hello", "team-b"), withId("b1"))];
    const seqs = written.map((r) => Number(insert.run(r.namespace, r.function, JSON.stringify(r)).lastInsertRowid));
    old.close();

    const log = openInvocationLog({ db: openDatabase(dir), ownsDatabase: true });
    cleanups.push(() => log.close());
    const hello = await log.query({ namespace: "default", function: "hello" });
    expect(hello).toEqual([0, 1, 3].map((i) => ({ seq: seqs[i], record: written[i] })));
    expect(ids(await log.query({ namespace: "default", function: "hello", afterSeq: seqs[0] ?? -1, limit: 1 }))).toEqual(["h2"]);
    expect(ids(await log.query({ namespace: "default", function: "other" }))).toEqual(["o1"]);
    expect(ids(await log.query({ namespace: "team-b", function: "hello" }))).toEqual(["b1"]);
    log.append(record(withId("h4")));
    const after = await log.query({ namespace: "default", function: "hello", afterSeq: Math.max(...seqs) });
    expect(ids(after)).toEqual(["h4"]);
  });

  it("tells subscribers of a function about its new records once written", async () => {
    const { log, clock } = await open({ flushIntervalMs: 25 });
    const got: InvocationEntry[][] = [];
    const unsubscribe = log.subscribe("default", "hello", (entries) => got.push(entries));
    log.append(record(withId("x1")));
    log.append(record(ofFunction("other")));
    log.append(record(withId("x2")));
    expect(got).toEqual([]);
    clock.advance(25);
    expect(got.map((batch) => batch.map((e) => e.record.id))).toEqual([["x1", "x2"]]);
    const queried = await log.query({ namespace: "default", function: "hello" });
    expect(got[0]?.map((e) => e.seq)).toEqual(queried.map((e) => e.seq));

    unsubscribe();
    log.append(record(withId("x3")));
    await log.flush();
    expect(got).toHaveLength(1);
  });

  it("keeps records queued when a write fails and retries them in the background", async () => {
    const { db, clock, dir } = await open();
    const errors: string[] = [];
    // Another connection holding the write lock makes the flush fail with SQLITE_BUSY.
    const blocker = openDatabase(dir, { busyTimeoutMs: 0 });
    cleanups.push(async () => blocker.close());
    const busy = openInvocationLog({ db: openDatabase(dir, { busyTimeoutMs: 0 }), ownsDatabase: true, clock, flushIntervalMs: 25, onError: (err) => errors.push(err.message) });
    cleanups.push(() => busy.close());
    blocker.exec("BEGIN IMMEDIATE");
    busy.append(record(withId("held")));
    clock.advance(25);
    expect(errors).toEqual([expect.stringMatching(/locked|busy/i)]);
    blocker.exec("COMMIT");
    expect(stored(db)).toBe(0);
    clock.advance(1000);
    expect(stored(db)).toBe(1);
    expect((await busy.query({ namespace: "default", function: "hello" })).map((e) => e.record.id)).toEqual(["held"]);
  });
});
