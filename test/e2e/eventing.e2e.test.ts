// Eventing end to end with the CLI, as a user does it: a cron trigger fires a function through
// the bus and stops when deleted; `kumo events publish` reaches an event trigger; a delivery that
// keeps failing lands in `kumo events dlq` and `kumo events replay` sends it again.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, runKumo, startKumoServer, tempDir, type ServerProcess } from "../support/kumo.ts";

let server: ServerProcess;
let env: Record<string, string>;

async function logsUntil(fn: string, needle: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let out = "";
  while (Date.now() < deadline) {
    out = (await runKumo(["logs", fn, "--limit", "200"], env)).stdout;
    if (out.includes(needle)) return out;
    await new Promise((r) => setTimeout(r, 250));
  }
  return out;
}

beforeAll(async () => {
  server = await startKumoServer();
  env = { KUMO_SERVER: server.url };
  const r = await runKumo(["deploy", join(repoRoot, "examples/hello-http"), "--name", "hello"], env);
  expect(r.code, r.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe("cron triggers", () => {
  it("fire the function through the bus with dev.kumo.cron.fired, and stop when deleted", async () => {
    const c = await runKumo(["trigger", "create", "tick", "--function", "hello", "--cron", "* * * * * *", "--timezone", "UTC"], env);
    expect(c.code, c.stderr).toBe(0);
    const out = await logsUntil("hello", "received dev.kumo.cron.fired");
    expect(out).toContain("received dev.kumo.cron.fired from kumo/cron/default/tick");
    expect(out).toContain("trigger=");
    const d = await runKumo(["trigger", "delete", "tick"], env);
    expect(d.code, d.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    const count = async () => ((await runKumo(["logs", "hello", "--limit", "500"], env)).stdout.match(/received dev\.kumo\.cron\.fired/g) ?? []).length;
    const before = await count();
    await new Promise((r) => setTimeout(r, 2500));
    expect(await count()).toBe(before);
  });

  it("rejects an invalid expression at create time with the reason", async () => {
    const r = await runKumo(["trigger", "create", "bad", "--function", "hello", "--cron", "0 99 * * *"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"0 99 * * *" is not a cron expression');
  });
});

describe("event triggers, dead letters and replay", () => {
  it("delivers a published event to its trigger", async () => {
    expect((await runKumo(["trigger", "create", "on-order", "--function", "hello", "--event-type", "com.example.order.created"], env)).code).toBe(0);
    const p = await runKumo(["events", "publish", "--type", "com.example.order.created", "--source", "shop", "--id", "order-1", "--data", '{"id":1}'], env);
    expect(p.code, p.stderr).toBe(0);
    const out = await logsUntil("hello", "(order-1)");
    expect(out).toContain("received com.example.order.created from shop (order-1)");
    expect(out).toContain("event=order-1");
  });

  it("dead-letters a delivery that keeps failing, and replays it once the function is fixed", async () => {
    const dir = await tempDir("kumo-picky-");
    await writeFile(join(dir, "index.ts"), `export default () => { throw new Error("inventory service down"); };\n`);
    expect((await runKumo(["deploy", dir, "--name", "picky"], env)).code).toBe(0);
    expect((await runKumo(["trigger", "create", "on-stock", "--function", "picky", "--event-type", "com.example.stock.low", "--retries", "1", "--backoff-delay", "50ms"], env)).code).toBe(0);
    expect((await runKumo(["events", "publish", "--type", "com.example.stock.low", "--source", "shop", "--id", "stock-1"], env)).code).toBe(0);

    let dlq = "";
    for (let i = 0; i < 60 && !dlq.includes("stock-1"); i++) {
      dlq = (await runKumo(["events", "dlq"], env)).stdout;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(dlq).toContain("stock-1");
    expect(dlq).toContain("inventory service down");
    const id = /^(\d+:\d+)\s.*stock-1/m.exec(dlq)?.[1];
    expect(id).toBeDefined();

    await writeFile(join(dir, "index.ts"), `export default (event: { id: string }) => ({ restocked: event.id });\n`);
    expect((await runKumo(["deploy", dir, "--name", "picky"], env)).code).toBe(0);
    const replay = await runKumo(["events", "replay", id!], env);
    expect(replay.code, replay.stderr).toBe(0);
    let logs = "";
    for (let i = 0; i < 60 && !/success.*event=stock-1/.test(logs); i++) {
      logs = (await runKumo(["logs", "picky"], env)).stdout;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(logs).toMatch(/picky-00002\s+success.*event=stock-1/);
  });
});
