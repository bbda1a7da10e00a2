import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { API_VERSION, KumoError, systemClock, getCondition, type FunctionSpec, type InstanceBackend, type KumoFunction } from "../model/index.ts";
import { FileBlobStore, openDatabase, openSqliteStore, type Store } from "../store/index.ts";
import { Controller, type Builder } from "./controller.ts";

let dir: string;
let store: Store;
let blobs: FileBlobStore;
let builds: number;
let loads: number;

/** A builder that "bundles" the archive's text; `fail` makes it report a syntax error. */
function fakeBuilder(): Builder {
  return {
    async unpackSource(bytes, _dest) {
      return { files: bytes.length > 0 ? 1 : 0 };
    },
    async buildFunction(_opts) {
      builds++;
      if (sourceText.includes("SYNTAX")) {
        throw new KumoError("KUMO_E_BUILD_FAILED", "index.ts:2:13: Unexpected \";\"", { details: [{ field: "index.ts:2:13", message: "Unexpected \";\"" }] });
      }
      return { code: `export default () => ${JSON.stringify(sourceText)}`, digest: "", entry: "index.ts", durationMs: 3, warnings: [] };
    },
  };
}
let sourceText = "v1";

const backend: InstanceBackend = {
  runtime: "isolate",
  async start(spec) {
    loads++;
    if (spec.code.includes("THROWS")) throw new KumoError("KUMO_E_LOAD_FAILED", "bundle threw at load time: Error: THROWS");
    return { id: "i", revision: spec.revision, healthy: true, invoke: () => Promise.reject(new Error("unused")), dispose: async () => {} };
  },
  async close() {},
};

async function upload(text: string): Promise<string> {
  sourceText = text;
  return blobs.put(Buffer.from(text));
}

function controller(): Controller {
  return new Controller({ store, blobs, builder: fakeBuilder(), backends: { isolate: backend, process: undefined }, clock: systemClock, functionUrl: (ns, n) => `http://kumo/${ns}/${n}` });
}

async function createFunction(digest: string, spec: Partial<FunctionSpec> = {}): Promise<KumoFunction> {
  return store.create("Function", {
    apiVersion: API_VERSION,
    kind: "Function",
    metadata: { name: "hello", namespace: "default" },
    spec: { source: { digest }, runtime: "isolate", env: {}, limits: { timeoutMs: 1000, memoryMb: 64 }, concurrency: 10, scale: { min: 0, max: 3, target: 10, scaleToZeroGraceSeconds: 30 }, ...spec },
    status: {},
  });
}

async function updateSpec(change: (s: FunctionSpec) => FunctionSpec): Promise<void> {
  const fn = (await store.get("Function", "default", "hello"))!;
  await store.update("Function", { ...fn, spec: change(fn.spec) });
}

const current = async () => (await store.get("Function", "default", "hello"))!;
const revisions = async () => (await store.list("Revision", "default")).map((r) => r.metadata.name);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kumo-controller-"));
  const db = openDatabase(dir);
  store = openSqliteStore({ db, ownsDatabase: true });
  blobs = new FileBlobStore(dir);
  builds = 0;
  loads = 0;
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("Controller.reconcile", () => {
  it("builds a new function into revision 1, checks it loads, and marks it Ready with its URL", async () => {
    await createFunction(await upload("v1"));
    await controller().reconcile("default", "hello");
    const fn = await current();
    expect(await revisions()).toEqual(["hello-00001"]);
    expect(fn.status).toMatchObject({ observedGeneration: 1, latestReadyRevision: "hello-00001", latestCreatedRevision: "hello-00001", url: "http://kumo/default/hello" });
    expect(getCondition(fn.status.conditions, "Ready")).toMatchObject({ status: "True", reason: "RevisionReady" });
    expect(getCondition(fn.status.conditions, "Built")?.message).toMatch(/^built index\.ts into sha256:/);
    expect(loads).toBe(1);
  });

  it("is idempotent: a second pass changes nothing", async () => {
    await createFunction(await upload("v1"));
    const c = controller();
    await c.reconcile("default", "hello");
    const before = await current();
    await c.reconcile("default", "hello");
    expect((await current()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(builds).toBe(1);
  });

  it("reports a build failure with file and line, makes no revision, and keeps the old one serving", async () => {
    await createFunction(await upload("v1"));
    const c = controller();
    await c.reconcile("default", "hello");
    const digest = await upload("SYNTAX");
    await updateSpec((s) => ({ ...s, source: { digest } }));
    await c.reconcile("default", "hello");
    const fn = await current();
    expect(await revisions()).toEqual(["hello-00001"]);
    expect(fn.status.observedGeneration).toBe(2);
    expect(fn.status.latestReadyRevision).toBe("hello-00001");
    const ready = getCondition(fn.status.conditions, "Ready")!;
    expect(ready).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(ready.message).toContain("index.ts:2:13");
    expect(ready.message).toContain("revision hello-00001 keeps serving");
  });

  it("reports a bundle that fails to load as LoadFailed", async () => {
    await createFunction(await upload("THROWS"));
    await controller().reconcile("default", "hello");
    const ready = getCondition((await current()).status.conditions, "Ready")!;
    expect(ready).toMatchObject({ status: "False", reason: "LoadFailed", message: expect.stringContaining("THROWS") });
    expect(await revisions()).toEqual([]);
  });

  it("reports a source archive that was never uploaded", async () => {
    await createFunction("sha256:" + "0".repeat(64));
    await controller().reconcile("default", "hello");
    expect(getCondition((await current()).status.conditions, "Ready")).toMatchObject({ status: "False", reason: "SourceNotFound" });
  });

  it("makes a new revision for an env change without rebuilding", async () => {
    await createFunction(await upload("v1"));
    const c = controller();
    await c.reconcile("default", "hello");
    await updateSpec((s) => ({ ...s, env: { GREETING: "hi" } }));
    await c.reconcile("default", "hello");
    expect(await revisions()).toEqual(["hello-00001", "hello-00002"]);
    expect(builds).toBe(1);
    const [r1, r2] = await store.list("Revision", "default");
    expect(r2!.spec.artifact).toBe(r1!.spec.artifact);
    expect(r2!.spec.env).toEqual({ GREETING: "hi" });
    expect((await current()).status.latestReadyRevision).toBe("hello-00002");
  });

  it("makes no revision when only traffic changed", async () => {
    await createFunction(await upload("v1"));
    const c = controller();
    await c.reconcile("default", "hello");
    await updateSpec((s) => ({ ...s, traffic: [{ revision: "hello-00001", percent: 100, tag: "stable" }] }));
    await c.reconcile("default", "hello");
    const fn = await current();
    expect(await revisions()).toEqual(["hello-00001"]);
    expect(fn.status.observedGeneration).toBe(2);
    expect(getCondition(fn.status.conditions, "Ready")).toMatchObject({ status: "True", reason: "TrafficUpdated" });
  });

  it("follows the store: a created function becomes Ready without calling reconcile", async () => {
    const c = controller();
    await c.start();
    await createFunction(await upload("v1"));
    for (let i = 0; i < 100 && (await current()).status.observedGeneration !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    await c.idle();
    await c.stop();
    expect(getCondition((await current()).status.conditions, "Ready")?.status).toBe("True");
  });
});
