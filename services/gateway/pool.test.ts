import { describe, expect, it } from "vitest";
import { FakeClock, KumoError, systemClock, type Instance, type InstanceBackend, type InvokeRequest, type InvokeResult, type LoadSpec } from "../model/index.ts";
import { RevisionPool, type PoolOptions } from "./pool.ts";

/** A backend whose instances answer when the test says so. */
function fakeBackend(opts: { failStart?: string; startDelayMs?: number } = {}) {
  const started: FakeInstance[] = [];
  class FakeInstance implements Instance {
    readonly id = `i${started.length}`;
    readonly revision = "r";
    healthy = true;
    disposed = false;
    readonly pending: { req: InvokeRequest; done: (r: InvokeResult) => void }[] = [];
    invoke(req: InvokeRequest): Promise<InvokeResult> {
      return new Promise((done) => this.pending.push({ req, done }));
    }
    async dispose(): Promise<void> {
      this.disposed = true;
    }
  }
  const backend: InstanceBackend = {
    runtime: "fake",
    async start(_spec: LoadSpec) {
      if (opts.startDelayMs !== undefined) await new Promise((r) => setTimeout(r, opts.startDelayMs));
      if (opts.failStart !== undefined) throw new KumoError("KUMO_E_LOAD_FAILED", opts.failStart);
      const i = new FakeInstance();
      started.push(i);
      return i;
    },
    async close() {},
  };
  const ok = (body: string): InvokeResult => ({ outcome: "success", status: 200, headers: {}, body, logs: [] });
  const answerAll = () => {
    for (const i of started) for (const p of i.pending.splice(0)) p.done(ok(p.req.requestId));
  };
  return { backend, started, answerAll, ok };
}

const spec: LoadSpec = { namespace: "default", function: "f", revision: "f-00001", code: "", env: {}, timeoutMs: 1000, memoryMb: 64 };
const options = (o: Partial<PoolOptions> = {}): PoolOptions => ({ concurrency: 2, maxInstances: 3, minInstances: 0, queueLimit: 100, queueTimeoutMs: 5000, ...o });
const req = (n: number): InvokeRequest => ({ requestId: `r${n}`, kind: "http", input: { method: "GET", path: "/", rawQuery: "", headers: {}, body: String(n) }, deadline: Date.now() + 5000 });
const tick = () => new Promise((r) => setTimeout(r, 5));

describe("RevisionPool", () => {
  it("starts an instance for the first request (a cold start) and reuses it when warm", async () => {
    const f = fakeBackend();
    const pool = new RevisionPool(spec, f.backend, options(), systemClock);
    const first = pool.invoke(req(1));
    await tick();
    expect(f.started).toHaveLength(1);
    f.answerAll();
    expect((await first).coldStart).toBe(true);
    const second = pool.invoke(req(2));
    await tick();
    f.answerAll();
    expect((await second).coldStart).toBe(false);
    expect(f.started).toHaveLength(1);
  });

  it("admits at most `concurrency` requests per instance and starts more up to maxInstances", async () => {
    const f = fakeBackend();
    const pool = new RevisionPool(spec, f.backend, options({ concurrency: 2, maxInstances: 2 }), systemClock);
    const all = [1, 2, 3, 4, 5].map((n) => pool.invoke(req(n)));
    await tick();
    expect(f.started).toHaveLength(2);
    expect(f.started.map((i) => i.pending.length)).toEqual([2, 2]);
    expect(pool.stats().queued).toBe(1);
    f.answerAll();
    await tick();
    f.answerAll();
    const results = await Promise.all(all);
    expect(results.map((r) => r.result.body).sort()).toEqual(["r1", "r2", "r3", "r4", "r5"]);
    expect(pool.stats()).toMatchObject({ inflight: 0, queued: 0, instances: 2 });
  });

  it("answers 503 when the queue is full and 504 when a request waits past its deadline", async () => {
    const f = fakeBackend();
    const rejected: string[] = [];
    const pool = new RevisionPool(spec, f.backend, options({ concurrency: 1, maxInstances: 1, queueLimit: 1, queueTimeoutMs: 30 }), systemClock, { onRejected: (r) => rejected.push(r) });
    const running = pool.invoke(req(1));
    await tick();
    const waiting = pool.invoke(req(2));
    await expect(pool.invoke(req(3))).rejects.toMatchObject({ code: "KUMO_E_QUEUE_FULL", status: 503 });
    await expect(waiting).rejects.toMatchObject({ code: "KUMO_E_QUEUE_TIMEOUT", status: 504 });
    expect(rejected).toEqual(["queue_full", "queue_timeout"]);
    f.answerAll();
    await running;
  });

  it("fails held requests with the load error and does not retry in a loop", async () => {
    const f = fakeBackend({ failStart: "bundle threw at load: ReferenceError: x is not defined", startDelayMs: 10 });
    let failures = 0;
    const pool = new RevisionPool(spec, f.backend, options(), systemClock, { onStartFailed: () => failures++ });
    const held = [pool.invoke(req(1)), pool.invoke(req(2)), pool.invoke(req(3))];
    for (const h of held) await expect(h).rejects.toMatchObject({ code: "KUMO_E_LOAD_FAILED", message: expect.stringContaining("ReferenceError") });
    expect(failures).toBe(2); // 3 requests with concurrency 2 want 2 instances, each tried once
    await expect(pool.invoke(req(4))).rejects.toMatchObject({ code: "KUMO_E_LOAD_FAILED" });
    expect(failures).toBe(2);
  });

  it("tries a failed start again only after a backoff, and recovers", async () => {
    let fail = true;
    let starts = 0;
    const backend: InstanceBackend = {
      runtime: "fake",
      async start() {
        starts++;
        if (fail) throw new KumoError("KUMO_E_LOAD_FAILED", "dependency not ready");
        return { id: "ok", revision: "r", healthy: true, invoke: async () => ({ outcome: "success", status: 200, headers: {}, body: "fine", logs: [] }), dispose: async () => {} };
      },
      async close() {},
    };
    const clock = new FakeClock(Date.now());
    const pool = new RevisionPool(spec, backend, options({ queueTimeoutMs: 60_000 }), clock);
    await expect(pool.invoke(req(1))).rejects.toMatchObject({ code: "KUMO_E_LOAD_FAILED" });
    pool.scaleTo(1); // the autoscaler asking again does not start anything during the backoff
    await expect(pool.invoke(req(2))).rejects.toMatchObject({ code: "KUMO_E_LOAD_FAILED" });
    expect(starts).toBe(1);
    fail = false;
    clock.advance(1000);
    const ok = await pool.invoke(req(3));
    expect(ok.result.body).toBe("fine");
    expect(starts).toBe(2);
  });

  it("replaces an instance that became unhealthy", async () => {
    const f = fakeBackend();
    const pool = new RevisionPool(spec, f.backend, options({ concurrency: 1, maxInstances: 1 }), systemClock);
    const first = pool.invoke(req(1));
    await tick();
    f.started[0]!.healthy = false;
    f.answerAll();
    await first;
    expect(f.started[0]!.disposed).toBe(true);
    const second = pool.invoke(req(2));
    await tick();
    expect(f.started).toHaveLength(2);
    f.answerAll();
    expect((await second).coldStart).toBe(true);
  });

  it("drains: waits for in-flight requests, then disposes instances", async () => {
    const f = fakeBackend();
    const pool = new RevisionPool(spec, f.backend, options(), systemClock);
    const inflight = pool.invoke(req(1));
    await tick();
    let drained = false;
    const draining = pool.drain().then(() => (drained = true));
    await tick();
    expect(drained).toBe(false);
    f.answerAll();
    await inflight;
    await draining;
    expect(f.started[0]!.disposed).toBe(true);
    await expect(pool.invoke(req(2))).rejects.toMatchObject({ code: "KUMO_E_UNAVAILABLE" });
  });

  it("scaleTo stops idle instances above the target and keeps minInstances", async () => {
    const f = fakeBackend();
    const pool = new RevisionPool(spec, f.backend, options({ minInstances: 1, concurrency: 1 }), systemClock);
    await tick();
    expect(f.started).toHaveLength(1);
    pool.scaleTo(3);
    await tick();
    expect(pool.stats().instances).toBe(3);
    pool.scaleTo(0);
    expect(pool.stats().instances).toBe(1);
  });
});
