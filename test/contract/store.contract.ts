// The Store contract: what every Store (SQLite on one machine, the Kubernetes API in a cluster)
// must do, asserted through the interface only. Each implementation's test calls
// runStoreContract with a factory for a fresh, empty store.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { API_VERSION, KumoError } from "../../services/model/index.ts";
import type { ErrorCode, Kind, KumoFunction } from "../../services/model/index.ts";
import type { NewResource, Store, Watch, WatchEvent } from "../../services/store/index.ts";

/** A fresh store; `reopen` closes it and opens a new one on the same data; `cleanup` closes whatever is open and removes the data. */
export interface StoreUnderTest {
  store: Store;
  reopen?: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

type FunctionOption = (f: NewResource<"Function">) => void;

/** A new Function named `name` in namespace "default", changed by options. */
export function newFunction(name: string, ...options: FunctionOption[]): NewResource<"Function"> {
  const f: NewResource<"Function"> = {
    apiVersion: API_VERSION,
    kind: "Function",
    metadata: { name, namespace: "default" },
    spec: {
      source: { digest: `sha256:${"ab".repeat(32)}` },
      runtime: "isolate",
      env: {},
      limits: { timeoutMs: 30_000, memoryMb: 128 },
      concurrency: 10,
      scale: { min: 0, max: 10, target: 10, scaleToZeroGraceSeconds: 30 },
    },
    status: {},
  };
  for (const option of options) option(f);
  return f;
}

/** Puts the function in another namespace. */
export const inNamespace =
  (namespace: string): FunctionOption =>
  (f) => {
    f.metadata.namespace = namespace;
  };

/** Sets labels. */
export const withLabels =
  (labels: Record<string, string>): FunctionOption =>
  (f) => {
    f.metadata.labels = labels;
  };

/** Sets one environment variable. */
export const withEnv =
  (key: string, value: string): FunctionOption =>
  (f) => {
    f.spec.env = { ...f.spec.env, [key]: value };
  };

/** A new Trigger firing `fn` on a cron schedule. */
export function newTrigger(name: string, fn: string): NewResource<"Trigger"> {
  return {
    apiVersion: API_VERSION,
    kind: "Trigger",
    metadata: { name, namespace: "default" },
    spec: {
      function: fn,
      source: { kind: "cron", schedule: "0 2 * * *", timezone: "UTC" },
      delivery: { retries: 3, backoff: "exponential", backoffDelayMs: 100, maxBackoffMs: 10_000, concurrency: 1, ordered: false, deadLetter: true },
    },
    status: {},
  };
}

/** A new Revision of `fn`. */
export function newRevision(name: string, fn: string): NewResource<"Revision"> {
  return {
    apiVersion: API_VERSION,
    kind: "Revision",
    metadata: { name, namespace: "default", ownerName: fn },
    spec: {
      functionName: fn,
      generation: 1,
      artifact: `sha256:${"cd".repeat(32)}`,
      sourceDigest: `sha256:${"ab".repeat(32)}`,
      runtime: "isolate",
      env: {},
      limits: { timeoutMs: 30_000, memoryMb: 128 },
      concurrency: 10,
      scale: { min: 0, max: 10, target: 10, scaleToZeroGraceSeconds: 30 },
    },
    status: {},
  };
}

async function expectKumoError(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<KumoError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(KumoError);
  const kumo = err as KumoError;
  expect(kumo.code).toBe(code);
  if (message !== undefined) expect(kumo.message).toContain(message);
  return kumo;
}

/** The next `n` events of a watch. */
async function take<K extends Kind>(iterator: AsyncIterator<WatchEvent<K>>, n: number): Promise<WatchEvent<K>[]> {
  const out: WatchEvent<K>[] = [];
  while (out.length < n) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`watch ended after ${out.length} of ${n} events`);
    out.push(next.value);
  }
  return out;
}

function summary(events: readonly WatchEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.object.metadata.name}`);
}

/** Runs the Store contract against the stores `factory` makes. */
export function runStoreContract(name: string, factory: () => Promise<StoreUnderTest>): void {
  describe(`Store contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: Store;
    const watches: Watch[] = [];

    const watch = <K extends Kind>(kind: K, options?: { sinceResourceVersion?: string }): AsyncIterator<WatchEvent<K>> => {
      const w = store.watch(kind, options);
      watches.push(w);
      return w[Symbol.asyncIterator]();
    };

    beforeEach(async () => {
      sut = await factory();
      store = sut.store;
    });

    afterEach(async () => {
      for (const w of watches.splice(0)) w.close();
      await sut.cleanup();
    });

    describe("create, get, list", () => {
      it("fills in uid, resourceVersion, generation 1 and creationTimestamp, and get returns the same object", async () => {
        const created = await store.create("Function", newFunction("hello", withLabels({ team: "infra" })));
        expect(created.metadata.uid).not.toBe("");
        expect(created.metadata.resourceVersion).not.toBe("");
        expect(created.metadata.generation).toBe(1);
        expect(Number.isNaN(Date.parse(created.metadata.creationTimestamp))).toBe(false);
        expect(created.metadata.labels).toEqual({ team: "infra" });
        expect(created.spec).toEqual(newFunction("hello").spec);
        expect(await store.get("Function", "default", "hello")).toEqual(created);
      });

      it("gives every object its own uid", async () => {
        const a = await store.create("Function", newFunction("a"));
        const b = await store.create("Function", newFunction("b"));
        expect(a.metadata.uid).not.toBe(b.metadata.uid);
      });

      it("returns undefined from get for a missing object", async () => {
        await store.create("Function", newFunction("hello"));
        expect(await store.get("Function", "default", "nope")).toBeUndefined();
        expect(await store.get("Function", "other", "hello")).toBeUndefined();
        expect(await store.get("Trigger", "default", "hello")).toBeUndefined();
      });

      it("lists one namespace in name order, and every namespace when none is given", async () => {
        for (const n of ["charlie", "alpha", "bravo"]) await store.create("Function", newFunction(n));
        await store.create("Function", newFunction("delta", inNamespace("team-b")));
        await store.create("Trigger", newTrigger("nightly", "alpha"));

        expect((await store.list("Function", "default")).map((f) => f.metadata.name)).toEqual(["alpha", "bravo", "charlie"]);
        expect((await store.list("Function", "team-b")).map((f) => f.metadata.name)).toEqual(["delta"]);
        expect(await store.list("Function", "empty")).toEqual([]);
        const all = await store.list("Function");
        expect(all.map((f) => `${f.metadata.namespace}/${f.metadata.name}`).sort()).toEqual(["default/alpha", "default/bravo", "default/charlie", "team-b/delta"]);
        expect((await store.list("Trigger")).map((t) => t.metadata.name)).toEqual(["nightly"]);
      });

      it("refuses to create a name that is taken, and leaves the stored object alone", async () => {
        const first = await store.create("Function", newFunction("x"));
        await expectKumoError(store.create("Function", newFunction("x", withEnv("A", "1"))), "KUMO_E_ALREADY_EXISTS", 'function "x" already exists in namespace "default"');
        expect(await store.get("Function", "default", "x")).toEqual(first);
      });

      it("allows the same name in another namespace and in another kind", async () => {
        await store.create("Function", newFunction("x"));
        await store.create("Function", newFunction("x", inNamespace("team-b")));
        await store.create("Trigger", newTrigger("x", "x"));
        expect(await store.get("Function", "team-b", "x")).toBeDefined();
        expect(await store.get("Trigger", "default", "x")).toBeDefined();
      });

      it("keeps the owner of a revision", async () => {
        const rev = await store.create("Revision", newRevision("hello-00001", "hello"));
        expect(rev.metadata.ownerName).toBe("hello");
        expect((await store.get("Revision", "default", "hello-00001"))?.metadata.ownerName).toBe("hello");
      });
    });

    describe("update and updateStatus", () => {
      it("replaces the spec, bumps generation and resourceVersion when the spec changes", async () => {
        const created = await store.create("Function", newFunction("f"));
        const updated = await store.update("Function", { ...created, spec: { ...created.spec, concurrency: 1 } });
        expect(updated.spec.concurrency).toBe(1);
        expect(updated.metadata.generation).toBe(2);
        expect(updated.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
        expect(updated.metadata.uid).toBe(created.metadata.uid);
        expect(updated.metadata.creationTimestamp).toBe(created.metadata.creationTimestamp);
        expect(await store.get("Function", "default", "f")).toEqual(updated);
      });

      it("rejects an update with a stale resourceVersion and keeps the newer object", async () => {
        const created = await store.create("Function", newFunction("f"));
        const first = await store.update("Function", { ...created, spec: { ...created.spec, concurrency: 2 } });
        const err = await expectKumoError(store.update("Function", { ...created, spec: { ...created.spec, concurrency: 3 } }), "KUMO_E_CONFLICT");
        expect(err.message).toMatch(/read it again and retry/);
        expect(await store.get("Function", "default", "f")).toEqual(first);
      });

      it("does not bump generation when only labels change, but stores the labels", async () => {
        const created = await store.create("Function", newFunction("f", withLabels({ a: "1" })));
        const relabelled = await store.update("Function", { ...created, metadata: { ...created.metadata, labels: { b: "2" } } });
        expect(relabelled.metadata.labels).toEqual({ b: "2" });
        expect(relabelled.metadata.generation).toBe(1);
        expect(relabelled.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
      });

      it("treats an update that changes nothing as no write: same resourceVersion and generation", async () => {
        const created = await store.create("Function", newFunction("f"));
        // Same spec with keys in another order is still the same spec.
        const reordered = JSON.parse(JSON.stringify({ ...created, spec: Object.fromEntries(Object.entries(created.spec).reverse()) })) as KumoFunction;
        const again = await store.update("Function", reordered);
        expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
        expect(again.metadata.generation).toBe(1);
      });

      it("leaves status as stored on update", async () => {
        const created = await store.create("Function", newFunction("f"));
        const withStatus = await store.updateStatus("Function", { ...created, status: { url: "http://x/default/f" } });
        const updated = await store.update("Function", { ...withStatus, spec: { ...withStatus.spec, concurrency: 5 }, status: { url: "http://forged" } });
        expect(updated.status).toEqual({ url: "http://x/default/f" });
      });

      it("writes status only with updateStatus, keeping spec and generation", async () => {
        const created = await store.create("Function", newFunction("f"));
        const next = await store.updateStatus("Function", {
          ...created,
          spec: { ...created.spec, concurrency: 99 },
          status: { observedGeneration: 1, latestReadyRevision: "f-00001" },
        });
        expect(next.status).toEqual({ observedGeneration: 1, latestReadyRevision: "f-00001" });
        expect(next.spec.concurrency).toBe(10);
        expect(next.metadata.generation).toBe(1);
        expect(next.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
        expect(await store.get("Function", "default", "f")).toEqual(next);
      });

      it("rejects updateStatus with a stale resourceVersion", async () => {
        const created = await store.create("Function", newFunction("f"));
        await store.update("Function", { ...created, spec: { ...created.spec, concurrency: 2 } });
        await expectKumoError(store.updateStatus("Function", { ...created, status: { url: "u" } }), "KUMO_E_CONFLICT");
        expect((await store.get("Function", "default", "f"))?.status).toEqual({});
      });

      it("reports a missing object by kind", async () => {
        const fn = await store.create("Function", newFunction("f"));
        const trig = await store.create("Trigger", newTrigger("t", "f"));
        const rev = await store.create("Revision", newRevision("f-00001", "f"));
        await store.delete("Function", "default", "f");
        await store.delete("Trigger", "default", "t");
        await store.delete("Revision", "default", "f-00001");
        await expectKumoError(store.update("Function", fn), "KUMO_E_FUNCTION_NOT_FOUND", '"f"');
        await expectKumoError(store.updateStatus("Trigger", trig), "KUMO_E_TRIGGER_NOT_FOUND", '"t"');
        await expectKumoError(store.update("Revision", rev), "KUMO_E_REVISION_NOT_FOUND", '"f-00001"');
      });
    });

    describe("delete", () => {
      it("removes the object and returns it; a second delete is NOT_FOUND", async () => {
        await store.create("Function", newFunction("f"));
        const deleted = await store.delete("Function", "default", "f");
        expect(deleted.metadata.name).toBe("f");
        expect(await store.get("Function", "default", "f")).toBeUndefined();
        expect(await store.list("Function", "default")).toEqual([]);
        await expectKumoError(store.delete("Function", "default", "f"), "KUMO_E_FUNCTION_NOT_FOUND", 'function "f"');
        await expectKumoError(store.delete("Trigger", "default", "t"), "KUMO_E_TRIGGER_NOT_FOUND");
        await expectKumoError(store.delete("Revision", "default", "r"), "KUMO_E_REVISION_NOT_FOUND");
      });

      it("deletes only with a matching resourceVersion when one is given", async () => {
        const created = await store.create("Function", newFunction("f"));
        const updated = await store.update("Function", { ...created, spec: { ...created.spec, concurrency: 2 } });
        await expectKumoError(store.delete("Function", "default", "f", created.metadata.resourceVersion), "KUMO_E_CONFLICT");
        expect(await store.get("Function", "default", "f")).toEqual(updated);
        await store.delete("Function", "default", "f", updated.metadata.resourceVersion);
        expect(await store.get("Function", "default", "f")).toBeUndefined();
      });

      it("lets a deleted name be created again, as a new object", async () => {
        const first = await store.create("Function", newFunction("f"));
        await store.delete("Function", "default", "f");
        const second = await store.create("Function", newFunction("f"));
        expect(second.metadata.uid).not.toBe(first.metadata.uid);
        expect(second.metadata.generation).toBe(1);
      });
    });

    describe("watch", () => {
      it("first emits ADDED for every existing object of the kind, then live changes in order", async () => {
        await store.create("Function", newFunction("b"));
        await store.create("Function", newFunction("a"));
        await store.create("Trigger", newTrigger("t", "a"));
        const events = watch("Function");
        const initial = await take(events, 2);
        expect(summary(initial).sort()).toEqual(["ADDED a", "ADDED b"]);

        const c = await store.create("Function", newFunction("c"));
        const c2 = await store.update("Function", { ...c, spec: { ...c.spec, concurrency: 1 } });
        const c3 = await store.updateStatus("Function", { ...c2, status: { url: "http://c" } });
        await store.create("Trigger", newTrigger("t2", "c"));
        await store.delete("Function", "default", "c");
        const live = await take(events, 4);
        expect(summary(live)).toEqual(["ADDED c", "MODIFIED c", "MODIFIED c", "DELETED c"]);
        expect(live[0]?.object).toEqual(c);
        expect(live[1]?.object).toEqual(c2);
        expect(live[2]?.object).toEqual(c3);
        expect(live[3]?.object.status).toEqual({ url: "http://c" });
      });

      it("emits nothing for an update that changes nothing", async () => {
        const f = await store.create("Function", newFunction("f"));
        const events = watch("Function");
        await take(events, 1);
        await store.update("Function", f);
        await store.updateStatus("Function", f);
        await store.update("Function", { ...f, spec: { ...f.spec, concurrency: 4 } });
        const [next] = await take(events, 1);
        expect(next?.type).toBe("MODIFIED");
        expect(next?.object.spec.concurrency).toBe(4);
      });

      it("replays the changes after sinceResourceVersion, then continues live", async () => {
        const a = await store.create("Function", newFunction("a"));
        const a2 = await store.update("Function", { ...a, spec: { ...a.spec, concurrency: 2 } });
        const b = await store.create("Function", newFunction("b"));
        await store.create("Trigger", newTrigger("t", "b"));
        await store.delete("Function", "default", "a");

        const events = watch("Function", { sinceResourceVersion: a.metadata.resourceVersion });
        const replayed = await take(events, 3);
        expect(summary(replayed)).toEqual(["MODIFIED a", "ADDED b", "DELETED a"]);
        expect(replayed[0]?.object).toEqual(a2);
        expect(replayed[1]?.object).toEqual(b);

        await store.create("Function", newFunction("c"));
        expect(summary(await take(events, 1))).toEqual(["ADDED c"]);
      });

      it("resumes from the version of the last event seen without repeating it", async () => {
        await store.create("Function", newFunction("a"));
        const first = watch("Function");
        await store.create("Function", newFunction("b"));
        const seen = await take(first, 2);
        const lastVersion = seen[1]?.object.metadata.resourceVersion ?? "";

        await store.create("Function", newFunction("c"));
        const resumed = watch("Function", { sinceResourceVersion: lastVersion });
        expect(summary(await take(resumed, 1))).toEqual(["ADDED c"]);
      });

      it("resumes past a deletion using the DELETED event's version", async () => {
        await store.create("Function", newFunction("a"));
        const events = watch("Function");
        await take(events, 1);
        await store.delete("Function", "default", "a");
        const [deleted] = await take(events, 1);
        expect(deleted?.type).toBe("DELETED");

        await store.create("Function", newFunction("b"));
        const resumed = watch("Function", { sinceResourceVersion: deleted?.object.metadata.resourceVersion ?? "" });
        expect(summary(await take(resumed, 1))).toEqual(["ADDED b"]);
      });

      it("feeds two watchers the same events, and closing one leaves the other running", async () => {
        const w1 = store.watch("Function");
        const w2 = store.watch("Function");
        watches.push(w1, w2);
        const it1 = w1[Symbol.asyncIterator]();
        const it2 = w2[Symbol.asyncIterator]();
        const f = await store.create("Function", newFunction("f"));
        await store.update("Function", { ...f, spec: { ...f.spec, concurrency: 3 } });
        expect(summary(await take(it1, 2))).toEqual(["ADDED f", "MODIFIED f"]);
        expect(summary(await take(it2, 2))).toEqual(["ADDED f", "MODIFIED f"]);

        w1.close();
        expect((await it1.next()).done).toBe(true);
        await store.delete("Function", "default", "f");
        expect(summary(await take(it2, 1))).toEqual(["DELETED f"]);
      });

      it("ends a for-await loop when closed", async () => {
        await store.create("Function", newFunction("a"));
        const w = store.watch("Function");
        watches.push(w);
        const seen: string[] = [];
        const loop = (async () => {
          for await (const event of w) {
            seen.push(`${event.type} ${event.object.metadata.name}`);
            if (seen.length === 2) w.close();
          }
        })();
        await store.create("Function", newFunction("b"));
        await loop;
        expect(seen).toEqual(["ADDED a", "ADDED b"]);
      });

      it("gives each watcher its own copy of an object", async () => {
        const it1 = watch("Function");
        const it2 = watch("Function");
        await store.create("Function", newFunction("f"));
        const [e1] = await take(it1, 1);
        const [e2] = await take(it2, 1);
        if (e1 !== undefined) e1.object.spec.concurrency = 1234;
        expect(e2?.object.spec.concurrency).toBe(10);
      });
    });

    describe("persistence", () => {
      it("keeps every object, version and status across a reopen", async (ctx) => {
        if (sut.reopen === undefined) {
          ctx.skip("this store has no reopen: its data lives outside the test");
          return;
        }
        const f = await store.create("Function", newFunction("f", withLabels({ a: "b" })));
        const f2 = await store.update("Function", { ...f, spec: { ...f.spec, concurrency: 7 } });
        const f3 = await store.updateStatus("Function", { ...f2, status: { url: "http://f" } });
        const t = await store.create("Trigger", newTrigger("t", "f"));
        await store.create("Function", newFunction("gone"));
        await store.delete("Function", "default", "gone");

        store = await sut.reopen();
        expect(await store.get("Function", "default", "f")).toEqual(f3);
        expect(await store.get("Trigger", "default", "t")).toEqual(t);
        expect(await store.get("Function", "default", "gone")).toBeUndefined();
        expect((await store.list("Function")).map((x) => x.metadata.name)).toEqual(["f"]);

        // Versions keep moving after a reopen, and the old one is still a conflict.
        const f4 = await store.update("Function", { ...f3, spec: { ...f3.spec, concurrency: 8 } });
        for (const old of [f, f2, f3]) expect(f4.metadata.resourceVersion).not.toBe(old.metadata.resourceVersion);
        expect(f4.metadata.generation).toBe(3);
        await expectKumoError(store.update("Function", f2), "KUMO_E_CONFLICT");
      });

      it("replays changes from before a reopen to a watch that resumes", async (ctx) => {
        if (sut.reopen === undefined) {
          ctx.skip("this store has no reopen: its data lives outside the test");
          return;
        }
        const a = await store.create("Function", newFunction("a"));
        await store.create("Function", newFunction("b"));
        store = await sut.reopen();
        const events = watch("Function", { sinceResourceVersion: a.metadata.resourceVersion });
        expect(summary(await take(events, 1))).toEqual(["ADDED b"]);
      });
    });
  });
}
